import { MAX_PARTS, type PartBudget } from './parts.js';

/** MultipartUpload names one started multipart upload and its journal entry. */
export interface MultipartUpload {
  id: string;
  journal: string;
}

/** UploadedPart is one part of a multipart upload, as completing the upload lists it. */
export interface UploadedPart {
  part: number;
  etag: string;
}

/**
 * MultipartOps is what a {@link PartWriter} needs of a store for one object. `start` begins
 * an upload (recording it in a journal); `complete` finishes it and drops the journal entry;
 * `abort` never throws; `putWhole` writes an object that never needed a part in one request.
 */
export interface MultipartOps {
  start(): Promise<MultipartUpload>;
  uploadPart(upload: MultipartUpload, part: number, body: Buffer): Promise<string>;
  complete(upload: MultipartUpload, parts: UploadedPart[]): Promise<void>;
  abort(upload: MultipartUpload): Promise<void>;
  putWhole(body: Buffer): Promise<void>;
}

/**
 * PartWriter cuts one stream into the parts of a multipart upload, which it starts with the
 * first full part, and keeps as many parts in flight as the shared {@link PartBudget} allows.
 * The first part upload to fail fails the next `write` or `finish`. Call `release` once done,
 * whatever happened, and `abort` after a failure.
 */
export class PartWriter {
  /** buf is the part being filled (a recycled buffer of `size` bytes), `filled` of it used. */
  private buf: Buffer | undefined;
  private size = 0;
  private filled = 0;
  private upload: MultipartUpload | undefined;
  private readonly parts: UploadedPart[] = [];
  private partCount = 0;
  private readonly inflight = new Set<Promise<void>>();
  private failure: { err: unknown } | undefined;

  /**
   * @param atLeast the least part size, for a stream known to need it to fit in MAX_PARTS
   * @param key the object's key, for error messages
   */
  constructor(
    private readonly ops: MultipartOps,
    private readonly budget: PartBudget,
    private readonly atLeast: number,
    private readonly key: string,
  ) {}

  /** write copies `chunk` into parts, sending each part that fills up. */
  async write(chunk: Buffer): Promise<void> {
    this.rethrow();
    let rest = chunk;
    while (rest.length > 0) {
      if (!this.buf) {
        this.size = this.budget.partSize(this.partCount + 1, this.atLeast);
        this.buf = this.budget.take(this.size);
        this.filled = 0;
      }
      const full = this.buf;
      const n = rest.copy(full, this.filled, 0, Math.min(rest.length, this.size - this.filled));
      this.filled += n;
      rest = rest.subarray(n);
      if (this.filled === this.size) {
        await this.room();
        this.buf = undefined;
        await this.sendPart(full, full);
        await this.settle();
      }
    }
  }

  /** finish completes the upload, or puts the object in one request if it fit in one part. */
  async finish(): Promise<void> {
    if (!this.upload) {
      const body = this.buf ? this.buf.subarray(0, this.filled) : Buffer.alloc(0);
      await this.ops.putWhole(body);
      return;
    }
    if (this.buf && this.filled > 0) {
      await this.room();
      const last = this.buf;
      this.buf = undefined;
      await this.sendPart(last.subarray(0, this.filled), last);
    }
    await Promise.all(this.inflight);
    this.rethrow();
    this.parts.sort((a, b) => a.part - b.part);
    await this.ops.complete(this.upload, this.parts);
  }

  /** abort lets the parts in flight land, so that none arrives after it, then aborts the upload. */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    if (this.upload) await this.ops.abort(this.upload);
  }

  /** release gives the part being filled back to the budget. */
  release(): void {
    if (this.buf) this.budget.give(this.buf);
  }

  /** sendPart uploads `body` (a view of `owner`) as the next part; `owner` is recycled after. */
  private async sendPart(body: Buffer, owner: Buffer): Promise<void> {
    let upload: MultipartUpload;
    try {
      upload = this.upload ??= await this.ops.start();
    } catch (err) {
      this.budget.give(owner);
      throw err;
    }
    const part = ++this.partCount;
    if (part > MAX_PARTS) {
      this.budget.give(owner);
      throw new Error(`s3: stream for ${this.key} needs more than ${MAX_PARTS} parts`);
    }
    const p = this.ops.uploadPart(upload, part, body).then(
      (etag) => {
        this.parts.push({ part, etag });
      },
      (err: unknown) => {
        this.failure ??= { err };
      },
    );
    const tracked = p.finally(() => {
      this.inflight.delete(tracked);
      this.budget.give(owner);
    });
    this.inflight.add(tracked);
  }

  /** rethrow throws the first part upload failure, if any. */
  private rethrow(): void {
    if (this.failure) throw this.failure.err;
  }

  /** room waits until this writer may put one more part in flight. */
  private async room(): Promise<void> {
    while (this.inflight.size >= Math.max(1, this.budget.inFlight())) {
      await Promise.race(this.inflight);
    }
    this.rethrow();
  }

  /** settle waits for the part just sent when the budget allows none in flight. */
  private async settle(): Promise<void> {
    if (this.budget.inFlight() > 0) return;
    await Promise.allSettled([...this.inflight]);
    this.rethrow();
  }
}
