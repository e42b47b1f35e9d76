import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { Readable } from 'node:stream';
import { Client } from 'minio';
import type { S3Config } from '../../config/types.js';
import { systemClock, type Clock } from '../../util/clock.js';
import {
  PathNotFoundError,
  isNotFound,
  validateKey,
  type ByteSource,
  type ListOptions,
  type ListPage,
  type StorageDriver,
  type Versioned,
} from '../driver.js';
import { byteOrder } from './list.js';
import { MAX_PARTS, MIN_PART, PartBudget } from './parts.js';
import { PartWriter, type MultipartOps } from './partwriter.js';
import { HttpRelay, relayable } from './relay.js';
import { listV2Query, parseListV2, type ListV2Request, type ListV2Result } from './s3list.js';
import { SigV4 } from './sigv4.js';

const MiB = 1024 * 1024;
/** S3 rules: every part but the last is 5 MiB .. 5 GiB (MIN_PART, MAX_PARTS: ./parts.ts). */
const MAX_PART = 5 * 1024 * MiB;
/** ListObjectsV2 and DeleteObjects both take at most 1,000 keys per call. */
const PAGE = 1000;
/** presignedGetObject accepts at most 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
/**
 * MULTIPART is a folder below the driver root holding one small journal object per
 * multipart upload in flight (`.multipart/<upload-id>` → the object key). MinIO cannot
 * list multipart uploads by prefix (only by exact key, or from a per-node in-memory
 * cache), so the journal is how {@link S3Driver.abortStaleMultipartUploads} finds uploads
 * left behind by a crashed writer. Hidden from `list('')`, like the filesystem's `.tmp`.
 */
const MULTIPART = '.multipart';
/** Characters below '/' allowed in a key segment: a name `D` followed by one of these
 * sorts before directory `D` in S3 key order (`D/`), but after it in name order. */
const BEFORE_SLASH = new Set(['+', ',', '-', '.']);

/** RELAY_URL_SECONDS is how long the presigned URL of a relayed read is valid to start. */
const RELAY_URL_SECONDS = 300;

/**
 * S3Driver stores objects in an S3 bucket (MinIO in practice) below an optional key
 * prefix. Streams are uploaded with our own multipart writer: parts of up to
 * `partSizeMiB` MiB buffered in memory while earlier parts upload, all writers of the
 * process sharing a `bufferMiB` budget ({@link PartBudget}), so memory stays bounded
 * whatever the streams' lengths and number (minio-js's own unknown-size path buffers
 * 528 MiB parts). An object is visible only after CompleteMultipartUpload, so a failed stream
 * leaves nothing under its key.
 */
export class S3Driver implements StorageDriver {
  readonly name = 's3';
  private readonly client: Client;
  private readonly agent: http.Agent;
  private readonly bucket: string;
  private readonly root: string;
  private readonly partSize: number;
  private readonly parts: PartBudget;
  private readonly endpoint: string;
  private readonly relay: HttpRelay;
  private readonly https: boolean;
  /** signer of the driver's own small-object GETs; dropped if storage refuses a signature. */
  private signer: SigV4 | undefined;
  /** where ownGet connects, and the Host header it signs. */
  private readonly target: { host: string; port: number; header: string };
  /** ownGets counts the objects `get` read without minio-js (for tests). */
  ownGets = 0;

  constructor(
    private readonly cfg: S3Config,
    /** clock paces the retries of calls that met a stale socket (default systemClock). */
    private readonly clock: Clock = systemClock,
  ) {
    const { client, agent, host, port } = makeClient(cfg);
    this.client = client;
    this.agent = agent;
    this.target = { host, port, header: new URL(cfg.endpoint).host };
    this.bucket = cfg.bucket;
    this.root = rootOf(cfg.prefix);
    this.partSize = partSizeOf(cfg.partSizeMiB);
    this.parts = new PartBudget(cfg.bufferMiB * MiB, this.partSize);
    this.endpoint = cfg.endpoint;
    this.relay = new HttpRelay();
    this.https = cfg.endpoint.startsWith('https:');
    if (!this.https && cfg.pathStyle) {
      this.signer = new SigV4(cfg.accessKey, cfg.secretKey, cfg.region);
    }
  }

  /** ensureBucket creates the configured bucket if it does not exist yet. */
  static async ensureBucket(cfg: S3Config): Promise<void> {
    const { client, agent } = makeClient(cfg);
    try {
      if (await client.bucketExists(cfg.bucket)) return;
      try {
        await client.makeBucket(cfg.bucket, cfg.region);
      } catch (err) {
        const code = errCode(err);
        if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw err;
      }
    } finally {
      agent.destroy();
    }
  }

  private k(key: string): string {
    return this.root + key;
  }

  async get(key: string): Promise<Buffer> {
    validateKey(key);
    const obj = this.k(key);
    if (this.signer) {
      const own = await this.ownGet(this.signer, obj);
      if (own === 'missing') throw new PathNotFoundError(key);
      if (own) return own.data;
    }
    return retrying(this.clock, async () => {
      const res = await notFound(key, this.client.getObject(this.bucket, obj));
      return collect(res);
    });
  }

  async put(key: string, data: Buffer | string): Promise<void> {
    validateKey(key);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (buf.length >= this.partSize) {
      // Never hand minio-js a body above its part size: it would switch to its own
      // multipart path (ListMultipartUploads + resume by key).
      await this.writeStream(key, Readable.from([buf]), buf.length);
      return;
    }
    const obj = this.k(key);
    await retrying(this.clock, () => this.putBuffer(obj, buf));
  }

  /**
   * ownGet reads a whole object with one signed GET on the driver's agent (http, path
   * style): a small read's cost is mostly minio-js's per-request work, its signing key
   * derivation above all, and `get` serves tags and manifests on every pull (`getVersioned`
   * every upload request). 'missing' for NoSuchKey; undefined for anything else, which the
   * caller retries through minio-js (with its error mapping and retries). A refused
   * signature turns this path off for good.
   */
  private ownGet(
    signer: SigV4,
    obj: string,
  ): Promise<{ data: Buffer; etag?: string } | 'missing' | undefined> {
    const path = `/${this.bucket}/${obj.split('/').map(encodeURIComponent).join('/')}`;
    return new Promise((resolve) => {
      const req = http.request(
        {
          host: this.target.host,
          port: this.target.port,
          path,
          method: 'GET',
          headers: signer.sign('GET', this.target.header, path),
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', () => resolve(undefined));
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            if (res.statusCode === 200) {
              const declared = Number(res.headers['content-length']);
              if (Number.isNaN(declared) || declared === body.length) {
                this.ownGets++;
                const etag = res.headers.etag;
                resolve({ data: body, etag: typeof etag === 'string' ? etag : undefined });
                return;
              }
            } else if (res.statusCode === 404 && body.includes('<Code>NoSuchKey</Code>')) {
              resolve('missing');
              return;
            } else if (res.statusCode === 403) {
              this.signer = undefined;
            }
            resolve(undefined);
          });
        },
      );
      req.on('error', () => resolve(undefined));
      req.end();
    });
  }

  /**
   * putBuffer PUTs a body smaller than a part. minio-js's putObject MD5-hashes every body
   * and, on http, sends only the SHA-256 it signs; here the body is hashed once: SHA-256
   * (signed) on http, Content-MD5 on https, where the payload is not signed.
   */
  private async putBuffer(obj: string, body: Buffer, headers: Record<string, string> = {}) {
    const h: Record<string, string> = { ...headers };
    if (this.https) h['Content-MD5'] = createHash('md5').update(body).digest('base64');
    const res = await this.client.makeRequestAsync(
      { method: 'PUT', bucketName: this.bucket, objectName: obj, headers: h },
      body,
      [200],
    );
    res.resume();
    await once(res, 'end');
  }

  async putIfAbsent(key: string, data: Buffer | string): Promise<boolean> {
    validateKey(key);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (buf.length >= this.partSize) throw new Error('s3: putIfAbsent takes small objects only');
    const obj = this.k(key);
    try {
      await retrying(this.clock, () => this.putBuffer(obj, buf, { 'If-None-Match': '*' }));
      return true;
    } catch (err) {
      const code = errCode(err);
      if (code === 'PreconditionFailed' || code === 'ConditionalRequestConflict') return false;
      throw err;
    }
  }

  async getVersioned(key: string): Promise<Versioned> {
    validateKey(key);
    const obj = this.k(key);
    if (this.signer) {
      const own = await this.ownGet(this.signer, obj);
      if (own === 'missing') throw new PathNotFoundError(key);
      if (own?.etag !== undefined) return { data: own.data, version: own.etag };
    }
    return retrying(this.clock, async () => {
      const res = await notFound(
        key,
        this.client.makeRequestAsync({ method: 'GET', bucketName: this.bucket, objectName: obj }),
      );
      const data = await collect(res);
      const etag = res.headers.etag;
      if (typeof etag !== 'string') throw new Error(`s3: no ETag on ${key}`);
      return { data, version: etag };
    });
  }

  async putIfVersion(
    key: string,
    data: Buffer | string,
    expected: string | null,
  ): Promise<boolean> {
    validateKey(key);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    if (buf.length >= this.partSize) throw new Error('s3: putIfVersion takes small objects only');
    const obj = this.k(key);
    const condition: Record<string, string> =
      expected === null ? { 'If-None-Match': '*' } : { 'If-Match': expected };
    try {
      await retrying(this.clock, () => this.putBuffer(obj, buf, condition));
      return true;
    } catch (err) {
      const code = errCode(err);
      if (
        code === 'PreconditionFailed' ||
        code === 'ConditionalRequestConflict' ||
        code === 'NoSuchKey'
      )
        return false;
      throw err;
    }
  }

  async writeStream(key: string, source: Readable, sizeHint?: number): Promise<number> {
    validateKey(key);
    const obj = this.k(key);
    const atLeast = partFloor(this.partSize, sizeHint);
    if (atLeast > MAX_PART) {
      source.destroy();
      throw new Error(`s3: object of ${sizeHint} bytes exceeds the S3 limit`);
    }
    const leave = this.parts.enter();
    const writer = new PartWriter(this.multipartOps(obj), this.parts, atLeast, key);
    let total = 0;
    try {
      for await (const chunk of source) {
        const buf = toBuffer(chunk);
        total += buf.length;
        await writer.write(buf);
      }
      await writer.finish();
      return total;
    } catch (err) {
      if (!source.destroyed) source.destroy();
      await writer.abort();
      throw err;
    } finally {
      writer.release();
      leave();
    }
  }

  /**
   * multipartOps are the S3 requests of a {@link PartWriter} for `obj`. An abort that fails
   * leaves the journal entry, which keeps the upload for abortStaleMultipartUploads.
   */
  private multipartOps(obj: string): MultipartOps {
    return {
      start: () => this.startMultipart(obj),
      uploadPart: async (upload, part, body) => {
        const r = await retrying(this.clock, () =>
          this.client.uploadPart(
            {
              bucketName: this.bucket,
              objectName: obj,
              uploadID: upload.id,
              partNumber: part,
              headers: {},
            },
            body,
          ),
        );
        return r.etag;
      },
      complete: async (upload, parts) => {
        await this.client.completeMultipartUpload(this.bucket, obj, upload.id, parts);
        await this.client.removeObject(this.bucket, upload.journal).catch(() => undefined);
      },
      abort: async (upload) => {
        await this.abortUpload(obj, upload.id, upload.journal).catch(() => undefined);
      },
      putWhole: (body) => retrying(this.clock, () => this.putBuffer(obj, body)),
    };
  }

  /** startMultipart initiates an upload and records it in the journal. */
  private async startMultipart(obj: string): Promise<{ id: string; journal: string }> {
    const id = await this.client.initiateNewMultipartUpload(this.bucket, obj, {});
    const journal = `${this.root}${MULTIPART}/${encodeURIComponent(id)}`;
    try {
      const body = Buffer.from(JSON.stringify({ key: obj, uploadId: id }));
      await retrying(this.clock, () => this.putBuffer(journal, body));
    } catch (err) {
      await this.client.abortMultipartUpload(this.bucket, obj, id).catch(() => undefined);
      throw err;
    }
    return { id, journal };
  }

  /**
   * abortUpload aborts one upload and drops its journal entry. An upload already
   * completed or aborted is fine: it resolves false then.
   */
  private async abortUpload(obj: string, uploadId: string, journal?: string): Promise<boolean> {
    let aborted = true;
    try {
      await retrying(this.clock, () =>
        this.client.abortMultipartUpload(this.bucket, obj, uploadId),
      );
    } catch (err) {
      const code = errCode(err);
      if (code !== 'NoSuchUpload' && code !== 'NotFound') throw err;
      aborted = false;
    }
    if (journal) {
      await retrying(this.clock, () => this.client.removeObject(this.bucket, journal)).catch(
        () => undefined,
      );
    }
    return aborted;
  }

  async read(key: string, offset = 0, length?: number): Promise<Readable> {
    validateKey(key);
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`bad offset ${offset}`);
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) {
      throw new RangeError(`bad length ${length}`);
    }
    const obj = this.k(key);
    if (length === 0) {
      // minio-js reads length 0 as "to the end".
      await this.stat(key);
      return Readable.from([]);
    }
    try {
      return await retrying(this.clock, () =>
        notFound(
          key,
          offset === 0 && length === undefined
            ? this.client.getObject(this.bucket, obj)
            : this.client.getPartialObject(this.bucket, obj, offset, length),
        ),
      );
    } catch (err) {
      if (errCode(err) !== 'InvalidRange') throw err;
      // Offset at or past the end (or a zero-byte object): nothing to read.
      const { size } = await this.stat(key);
      if (offset >= size) return Readable.from([]);
      throw err;
    }
  }

  /**
   * openSource relays a read of at least RELAY_MIN_BYTES from an http endpoint over the
   * driver's own connections (./relay.ts), GETting a presigned URL. Anything but a plain
   * answer, or a failure before it, leaves the read to `read` (which retries and maps
   * errors): only a missing object throws. https endpoints are not relayed at all.
   */
  async openSource(key: string, offset: number, length: number): Promise<ByteSource | undefined> {
    validateKey(key);
    if (this.https || !relayable(offset, length)) return undefined;
    try {
      const url = await this.client.presignedGetObject(this.bucket, this.k(key), RELAY_URL_SECONDS);
      return await this.relay.open(new URL(url), offset, length, key);
    } catch (err) {
      if (isNotFound(err)) throw err;
      return undefined;
    }
  }

  async stat(key: string): Promise<{ size: number; modified: Date }> {
    validateKey(key);
    const obj = this.k(key);
    const st = await retrying(this.clock, () =>
      notFound(key, this.client.statObject(this.bucket, obj)),
    );
    return { size: st.size, modified: st.lastModified };
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validateKey(prefix, true);
    const full = this.k(prefix);
    const after = opts.startAfter;
    const limit = opts.limit ?? Infinity;
    if (limit <= 0) {
      const probe = await this.list(prefix, { startAfter: after, limit: 1 });
      return { names: [], truncated: probe.names.length > 0 };
    }
    const hidden = prefix === '' ? MULTIPART : undefined;
    // A flat folder's keys are its names, in the same order: storage saying that keys
    // follow the page is enough to know that names do.
    const flat = opts.flat === true && hidden === undefined;
    const want = flat ? limit : limit + 1;
    const names = new Set<string>();
    let token = '';
    let lastKey = '';
    let exhausted = false;
    // Read pages in S3 key order until one name past the page is known (or the end). Each
    // asks only for the names still missing: after a full page of 1000, the one name that
    // says whether another page follows costs a listing of one, not of a thousand.
    while (names.size < want) {
      const maxKeys = Number.isFinite(limit) ? Math.min(PAGE, want - names.size) : PAGE;
      const res = await this.listV2({
        prefix: full,
        delimiter: '/',
        continuationToken: token,
        maxKeys,
        startAfter: token === '' && after !== undefined ? full + after : '',
      });
      for (const k of [...res.keys, ...res.prefixes]) {
        if (k > lastKey) lastKey = k;
        const rest = k.slice(full.length);
        const name = rest.endsWith('/') ? rest.slice(0, -1) : rest;
        if (name === '' || name === hidden) continue;
        if (after !== undefined && name <= after) continue;
        names.add(name);
      }
      if (!res.isTruncated || !res.nextContinuationToken) {
        exhausted = true;
        break;
      }
      token = res.nextContinuationToken;
    }
    let sorted = [...names].sort(byteOrder);
    if (flat) return { names: sorted.slice(0, limit), truncated: !exhausted };
    if (!exhausted)
      sorted = await this.settleDirectoryOrder(sorted, { full, names, limit, after, lastKey });
    return { names: sorted.slice(0, limit), truncated: sorted.length > limit };
  }

  /**
   * settleDirectoryOrder makes the first `limit` names exact when listing stopped early.
   * S3 orders a directory `D` as `D/`, after names such as `D-x` or `D.x`, while names
   * sort `D` first (`math` before `math-voila`). So a directory not read yet may still
   * belong in the page: only one whose name is a prefix of the page's last name, cut
   * just before one of `+,-.`. Each such candidate costs one probe (max-keys 1).
   */
  private async settleDirectoryOrder(sorted: string[], page: PartialPage): Promise<string[]> {
    const probed = new Set<string>();
    for (;;) {
      const last = sorted[Math.min(page.limit, sorted.length) - 1];
      if (last === undefined) return sorted;
      const candidates = directoryCandidates(last, page, probed);
      if (candidates.length === 0) return sorted;
      let found = false;
      for (const d of candidates) {
        probed.add(d);
        const res = await this.listV2({
          prefix: page.full + d + '/',
          delimiter: '',
          continuationToken: '',
          maxKeys: 1,
          startAfter: '',
        });
        if (res.keys.length > 0) {
          page.names.add(d);
          found = true;
        }
      }
      if (!found) return sorted;
      sorted = [...page.names].sort(byteOrder);
    }
  }

  /**
   * listV2 makes one ListObjectsV2 request through minio-js's signed transport and reads the
   * answer with the driver's own parser (server/storage/drivers/s3list.ts).
   */
  private listV2(r: ListV2Request): Promise<ListV2Result> {
    return retrying(this.clock, async () => {
      const res = await this.client.makeRequestAsync({
        method: 'GET',
        bucketName: this.bucket,
        query: listV2Query(r),
      });
      return parseListV2((await collect(res)).toString('utf8'));
    });
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    const obj = this.k(key);
    await retrying(this.clock, () => this.client.removeObject(this.bucket, obj));
  }

  async deletePrefix(prefix: string): Promise<void> {
    validateKey(prefix, true);
    const full = this.k(prefix);
    let token = '';
    for (;;) {
      const res = await this.listV2({
        prefix: full,
        delimiter: '',
        continuationToken: token,
        maxKeys: PAGE,
        startAfter: '',
      });
      if (res.keys.length > 0) await this.removeBatch(res.keys);
      if (!res.isTruncated || !res.nextContinuationToken) return;
      token = res.nextContinuationToken;
    }
  }

  private async removeBatch(keys: string[]): Promise<void> {
    const results = await retrying(this.clock, () => this.client.removeObjects(this.bucket, keys));
    // minio-js's types say `{ Error: {...} }[]`, but at run time it returns the
    // DeleteResult <Error> elements themselves (`{ Key, Code, Message }[]`): accept both.
    const failed = results.flatMap((r) => {
      if (typeof r !== 'object' || r === null) return [];
      const entry: { Error?: DeleteError } & DeleteError = r;
      const e = entry.Error ?? entry;
      return e.Code && e.Code !== 'NoSuchKey' ? [e] : [];
    });
    const e = failed[0];
    if (e) {
      throw new Error(
        `s3: deleting ${failed.length} of ${keys.length} objects failed, first ${e.Key ?? '?'}: ${e.Code ?? ''} ${e.Message ?? ''}`,
      );
    }
  }

  async presignGet(key: string, expirySeconds: number): Promise<string> {
    validateKey(key);
    const expiry = Math.max(1, Math.min(MAX_PRESIGN_SECONDS, Math.floor(expirySeconds)));
    return this.client.presignedGetObject(this.bucket, this.k(key), expiry);
  }

  async ping(): Promise<void> {
    let exists: boolean;
    try {
      exists = await retrying(this.clock, () => this.client.bucketExists(this.bucket));
    } catch (err) {
      throw new Error(`s3: ${this.endpoint} is not usable: ${describeErr(err)}`, { cause: err });
    }
    if (!exists) {
      throw new Error(`s3: bucket "${this.bucket}" does not exist at ${this.endpoint}`);
    }
  }

  /**
   * abortStaleMultipartUploads aborts the multipart uploads below this driver's prefix
   * that started before `olderThan`, and returns how many it aborted. It finds them in
   * two places: the driver's journal (works on every S3, survives restarts of MinIO),
   * and ListMultipartUploads over the whole bucket, filtered to the prefix (complete on
   * AWS S3; on MinIO only the uploads its node remembers since it started). An upload a
   * crashed writer started but never journaled is left to MinIO's own 24 h purge.
   */
  async abortStaleMultipartUploads(olderThan: Date): Promise<number> {
    const seen = new Set<string>();
    let aborted = 0;
    const cutoff = olderThan.getTime();

    // 1. The journal.
    const journalRoot = `${this.root}${MULTIPART}/`;
    let token = '';
    for (;;) {
      const res = await retrying(this.clock, () =>
        this.client.listObjectsV2Query(this.bucket, journalRoot, token, '', PAGE, ''),
      );
      for (const o of res.objects) {
        const name = o.name;
        if (name === undefined || o.lastModified.getTime() >= cutoff) continue;
        let entry: { key?: unknown; uploadId?: unknown };
        try {
          const body = await retrying(this.clock, async () =>
            collect(await this.client.getObject(this.bucket, name)),
          );
          entry = JSON.parse(body.toString()) as typeof entry;
        } catch (err) {
          if (isMissingCode(errCode(err))) continue; // finished meanwhile
          if (err instanceof SyntaxError) {
            await this.client.removeObject(this.bucket, name).catch(() => undefined);
            continue;
          }
          throw err;
        }
        if (typeof entry.key !== 'string' || typeof entry.uploadId !== 'string') {
          await this.client.removeObject(this.bucket, name).catch(() => undefined);
          continue;
        }
        seen.add(entry.uploadId);
        if (await this.abortUpload(entry.key, entry.uploadId, name)) aborted++;
      }
      if (!res.isTruncated || !res.nextContinuationToken) break;
      token = res.nextContinuationToken;
    }

    // 2. ListMultipartUploads. minio-js drops NextUploadIdMarker (it reads the wrong
    // field), so paging by key marker alone can skip uploads of one key that straddle a
    // page; listing again until a pass aborts nothing covers them.
    for (;;) {
      let pass = 0;
      let keyMarker = '';
      for (;;) {
        const res = await retrying(this.clock, () =>
          this.client.listIncompleteUploadsQuery(this.bucket, '', keyMarker, '', ''),
        );
        for (const u of res.uploads as MultipartUpload[]) {
          if (seen.has(u.uploadId) || !u.key.startsWith(this.root)) continue;
          if (!(u.initiated instanceof Date) || u.initiated.getTime() >= cutoff) continue;
          seen.add(u.uploadId);
          if (await this.abortUpload(u.key, u.uploadId)) {
            aborted++;
            pass++;
          }
        }
        if (!res.isTruncated || !res.nextKeyMarker || res.nextKeyMarker === keyMarker) break;
        keyMarker = res.nextKeyMarker;
      }
      if (pass === 0) break;
    }
    return aborted;
  }

  async close(): Promise<void> {
    this.relay.close();
    this.agent.destroy();
  }
}

interface DeleteError {
  Key?: string;
  Code?: string;
  Message?: string;
}

interface MultipartUpload {
  key: string;
  uploadId: string;
  initiated?: Date;
}

function rootOf(prefix: string | undefined): string {
  const p = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (p === '') return '';
  validateKey(p);
  return p + '/';
}

function partSizeOf(mib: number): number {
  const size = Math.floor(mib * MiB);
  if (!Number.isFinite(size) || size < MIN_PART || size > MAX_PART) {
    throw new Error(`s3: partSizeMiB must be between 5 and 5120, got ${mib}`);
  }
  return size;
}

/** makeClient builds a minio Client (and the agent it owns) from the config. */
function makeClient(cfg: S3Config): {
  client: Client;
  agent: http.Agent;
  host: string;
  port: number;
} {
  let url: URL;
  try {
    url = new URL(cfg.endpoint);
  } catch {
    throw new Error(`s3: endpoint ${JSON.stringify(cfg.endpoint)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`s3: endpoint ${cfg.endpoint} must be http:// or https://`);
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.username) {
    throw new Error(`s3: endpoint ${cfg.endpoint} must be scheme://host[:port] only`);
  }
  const useSSL = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? (useSSL ? 443 : 80) : Number(url.port);
  let agent: http.Agent;
  if (useSSL) {
    agent = new https.Agent({
      keepAlive: true,
      ca: cfg.tls?.caFile ? readFileSync(cfg.tls.caFile) : undefined,
      rejectUnauthorized: cfg.tls?.insecureSkipVerify !== true,
    });
  } else {
    agent = new http.Agent({ keepAlive: true });
  }
  const client = new Client({
    endPoint: host,
    port,
    useSSL,
    region: cfg.region,
    accessKey: cfg.accessKey,
    secretKey: cfg.secretKey,
    pathStyle: cfg.pathStyle,
    partSize: partSizeOf(cfg.partSizeMiB),
    transportAgent: agent,
  });
  return { client, agent, host, port };
}

/**
 * PartialPage is a directory listing that stopped before the end: `names` read so far (under
 * the full prefix `full`, past `after`), the page's `limit`, and the last S3 key read.
 */
interface PartialPage {
  full: string;
  names: Set<string>;
  limit: number;
  after: string | undefined;
  lastKey: string;
}

/**
 * directoryCandidates are the directories that may sort into the page before `last` without
 * having been read: prefixes of `last` cut just before one of `+,-.`, not yet known or probed.
 */
function directoryCandidates(last: string, page: PartialPage, probed: Set<string>): string[] {
  const candidates: string[] = [];
  for (let i = 1; i < last.length; i++) {
    if (!BEFORE_SLASH.has(last[i]!)) continue;
    const d = last.slice(0, i);
    if (page.names.has(d) || probed.has(d)) continue;
    if (page.after !== undefined && d <= page.after) continue;
    if (page.full + d + '/' <= page.lastKey) continue; // already read past it: it does not exist
    candidates.push(d);
  }
  return candidates;
}

/**
 * partFloor is the least part size for a stream of `sizeHint` bytes: a known length that would
 * need more than 10,000 parts of `partSize` raises every part's floor.
 */
function partFloor(partSize: number, sizeHint: number | undefined): number {
  if (sizeHint === undefined || sizeHint <= partSize * MAX_PARTS) return 0;
  return Math.ceil(sizeHint / MAX_PARTS / MiB) * MiB;
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  if (chunk instanceof Uint8Array)
    return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError('s3: writeStream source must yield bytes');
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function errCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function isMissingCode(code: string | undefined): boolean {
  return code === 'NoSuchKey' || code === 'NotFound';
}

/** notFound maps S3's missing-object errors to {@link PathNotFoundError}. */
async function notFound<T>(key: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (isMissingCode(errCode(err))) throw new PathNotFoundError(key);
    throw err;
  }
}

function describeErr(err: unknown): string {
  const code = errCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}

/**
 * Network errors that mean a pooled keep-alive socket was closed by the server (a MinIO
 * restart, an idle timeout) just as we reused it. minio-js retries only on HTTP status
 * codes, so a request that never reached the server is retried here, for idempotent
 * calls only (every call wrapped is one: GET/HEAD/list/DELETE, PUT of a Buffer).
 */
const STALE_SOCKET = new Set(['ECONNRESET', 'EPIPE', 'ECONNREFUSED']);

async function retrying<T>(clock: Clock, fn: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || !STALE_SOCKET.has(errCode(err) ?? '')) throw err;
      await clock.sleep(50 * i);
    }
  }
}
