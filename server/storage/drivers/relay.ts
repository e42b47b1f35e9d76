import net from 'node:net';
import { systemClock, type Clock, type Timer } from '../../util/clock.js';
import { PathNotFoundError, type ByteSink, type ByteSource } from '../driver.js';

/**
 * A relayed read moves an object's bytes from storage into a client's socket through two
 * lent, reused buffers ("slabs"), with no JS stream in between (ADR 0010). Node's HTTP
 * client copies every body chunk it parses and allocates a new buffer for every socket
 * read; at hundreds of MB/s that churn is most of a proxy's CPU (a major GC every 64 MB
 * of external memory). Here the storage socket reads straight into a slab, the slab is
 * written to the client, and it is filled again only once that write has completed.
 */

/**
 * RELAY_MIN_BYTES: reads at least this long are relayed; shorter ones cost more in
 * request overhead than in copying and stay on the driver's stream path.
 */
export const RELAY_MIN_BYTES = 1024 * 1024;

/** relayable: a read of these bounds is one a driver should relay. */
export function relayable(offset: number, length: number): boolean {
  return length >= RELAY_MIN_BYTES && Number.isSafeInteger(offset) && offset >= 0;
}

/** SLAB_BYTES is the size of one relay buffer: one socket read fills at most this much. */
export const SLAB_BYTES = 256 * 1024;
/** RING is how many slabs one relayed read holds: one being written while one fills. */
const RING = 2;
/**
 * SLAB_WAIT_MS is how long a read waits for slabs when every one is lent (a pull storm):
 * waiting its turn costs less than the stream path's CPU, which would slow every read.
 */
export const SLAB_WAIT_MS = 10_000;
/** MAX_WAITERS: beyond this many reads waiting for slabs, a read takes the stream path. */
const MAX_WAITERS = 4096;

/**
 * SlabPool lends fixed-size buffers within a budget. A slab whose write never completed
 * (the client went away mid-write) is written off, never reused: its bytes may still be
 * referenced by the socket being torn down.
 */
export class SlabPool {
  private readonly free: Buffer[] = [];
  private lent = 0;
  private readonly waiters: {
    n: number;
    resolve: (slabs: Buffer[] | undefined) => void;
    timer: Timer;
  }[] = [];

  constructor(
    readonly slabBytes: number,
    /** max is the number of slabs that may be lent at once. */
    private readonly max: number,
    /** clock times the waits for slabs. */
    private readonly clock: Clock = systemClock,
  ) {}

  /** take lends `n` slabs, or undefined when the budget has no room for them. */
  take(n: number): Buffer[] | undefined {
    if (this.lent + n > this.max) return undefined;
    this.lent += n;
    const out: Buffer[] = [];
    for (let i = 0; i < n; i++) out.push(this.free.pop() ?? Buffer.allocUnsafeSlow(this.slabBytes));
    return out;
  }

  /**
   * acquire lends `n` slabs, waiting in turn (first come, first served) up to `waitMs` for
   * reads to give some back; undefined if none came, or too many reads are waiting.
   */
  acquire(n: number, waitMs = SLAB_WAIT_MS): Promise<Buffer[] | undefined> {
    const now = this.waiters.length === 0 ? this.take(n) : undefined;
    if (now || waitMs <= 0 || this.waiters.length >= MAX_WAITERS) return Promise.resolve(now);
    return new Promise((resolve) => {
      const w = {
        n,
        resolve,
        timer: this.clock.after(waitMs, () => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          resolve(undefined);
          this.wake();
        }),
      };
      this.waiters.push(w);
    });
  }

  /** waiting is the number of reads waiting for slabs (for tests). */
  get waiting(): number {
    return this.waiters.length;
  }

  private wake(): void {
    for (let w = this.waiters[0]; w !== undefined; w = this.waiters[0]) {
      const slabs = this.take(w.n);
      if (!slabs) return;
      this.waiters.shift();
      w.timer.cancel();
      w.resolve(slabs);
    }
  }

  /** give returns a slab no write refers to any more. */
  give(slab: Buffer): void {
    this.lent--;
    this.free.push(slab);
    this.wake();
  }

  /** writeOff forgets a lent slab that may still be referenced. */
  writeOff(): void {
    this.lent--;
    this.wake();
  }

  /** inUse is the number of slabs lent (for tests and metrics). */
  get inUse(): number {
    return this.lent;
  }
}

/** The default pool: 32 MiB of slabs per process, so 64 reads relay at once (more wait). */
export const defaultSlabs = new SlabPool(SLAB_BYTES, 128);

/**
 * Ring is the ordered pair of slabs between a producer and a sink: the producer fills
 * `slab`, then `send(n)` writes its first n bytes and moves to the next slab. A slab is
 * `ready` again once the write that carried it has completed, in whatever order writes complete.
 */
export class Ring {
  private readonly busy: boolean[];
  private i = 0;
  private inflight = 0;
  private sink: ByteSink | undefined;
  private readonly held: [number, number][] = [];
  private waiters: (() => void)[] = [];
  private error: Error | undefined;
  private released = false;

  constructor(
    private readonly pool: SlabPool,
    private readonly slabs: Buffer[],
  ) {
    this.busy = slabs.map(() => false);
  }

  /** slab is the buffer to fill next. */
  get slab(): Buffer {
    return this.slabs[this.i]!;
  }

  /** ready: `slab` carries no write in flight. */
  get ready(): boolean {
    return !this.busy[this.i];
  }

  get failed(): Error | undefined {
    return this.error;
  }

  /** attach names the sink that `send` writes to, and writes what was sent before. */
  attach(sink: ByteSink): void {
    this.sink = sink;
    for (const [k, n] of this.held.splice(0)) this.write(k, n);
  }

  /**
   * send writes the first `n` bytes of `slab` to the sink (once attached) and moves to
   * the next slab.
   */
  send(n: number): void {
    const k = this.i;
    this.busy[k] = true;
    this.inflight++;
    this.i = (k + 1) % this.slabs.length;
    if (this.sink) this.write(k, n);
    else this.held.push([k, n]);
  }

  private write(k: number, n: number): void {
    this.sink!.write(this.slabs[k]!.subarray(0, n), (err?: Error | null) => {
      if (!this.busy[k]) return;
      this.busy[k] = false;
      this.inflight--;
      if (err) this.fail(err);
      this.wake();
    });
  }

  /**
   * whenReady calls `fn` once `slab` may be filled (or the ring failed). Every completed
   * write wakes the waiters, so each checks again: a sink may complete writes out of order
   * (a file's, on the thread pool), and then the next slab is still being written.
   */
  whenReady(fn: () => void): void {
    if (this.ready || this.error) fn();
    else this.waiters.push(() => this.whenReady(fn));
  }

  /** drained resolves once every write has completed; rejects when the ring failed. */
  drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.error) reject(this.error);
        else if (this.inflight === 0) resolve();
        else this.waiters.push(check);
      };
      check();
    });
  }

  /** onFail hears the ring's first failure (a write error, the sink closing early). */
  onFail: ((err: Error) => void) | undefined;

  /** fail stops the ring: waiters wake and see `failed`. */
  fail(err: Error): void {
    if (this.error) return;
    this.error = err;
    this.wake();
    this.onFail?.(err);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /** release returns the slabs (those still carrying a write are written off). Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.slabs.forEach((s, k) => {
      if (this.busy[k]) {
        this.busy[k] = false;
        this.pool.writeOff();
      } else {
        this.pool.give(s);
      }
    });
    this.inflight = 0;
  }
}

/** watchClose fails `ring` if the sink closes before `done` is called; returns `done`. */
function watchClose(sink: ByteSink, ring: Ring): () => void {
  const onClose = () => ring.fail(new Error('relay: client closed the connection'));
  sink.once('close', onClose);
  return () => sink.off('close', onClose);
}

export interface HttpRelayOptions {
  /** timeoutMs bounds waiting for storage: the response head, and each read while not paused. */
  timeoutMs?: number;
  slabs?: SlabPool;
  /** idle keeps up to this many finished connections for reuse (default 64: one per
   * read the default pool relays at once). */
  idle?: number;
  /** slabWaitMs: how long a read waits for slabs when all are lent (SLAB_WAIT_MS). */
  slabWaitMs?: number;
}

const HEAD_MAX = 16 * 1024;
const SCRATCH_BYTES = 16 * 1024;
const IDLE_MS = 4_000;

/**
 * HttpRelay GETs byte ranges of presigned URLs on one endpoint over its own HTTP/1.1
 * connections (kept alive and reused), reading bodies straight into relay slabs.
 *
 * Plain http only: a TLS socket keeps delivering records it has already decrypted after
 * its reader pauses, into a slab still being written, so https reads are left to the S3
 * client (and the cost there is the decryption, not the copy).
 */
export class HttpRelay {
  private readonly idle: Conn[] = [];
  private readonly slabs: SlabPool;
  private closed = false;

  constructor(private readonly opts: HttpRelayOptions = {}) {
    this.slabs = opts.slabs ?? defaultSlabs;
  }

  /**
   * open GETs bytes [start, start+length) of `url`. Resolves once storage has answered:
   * a source of exactly `length` bytes, or undefined when the answer is anything but a
   * plain 200/206 of that length (the caller then reads through its S3 client, which
   * retries and maps errors), or when no slabs are free. Rejects with PathNotFoundError
   * (as `key`) on 404.
   */
  async open(
    url: URL,
    start: number,
    length: number,
    key: string,
  ): Promise<ByteSource | undefined> {
    if (this.closed || length <= 0 || url.protocol !== 'http:') return undefined;
    const slabs = await this.slabs.acquire(RING, this.opts.slabWaitMs);
    if (!slabs) return undefined;
    if (this.closed) {
      for (const s of slabs) this.slabs.give(s);
      return undefined;
    }
    const ring = new Ring(this.slabs, slabs);
    const request =
      `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
      `Range: bytes=${start}-${start + length - 1}\r\nUser-Agent: berth-relay\r\n\r\n`;
    for (;;) {
      const reused = this.idle.pop();
      const conn = reused ?? new Conn(url, (c) => this.park(c));
      const reader = new Reader(conn, ring, length, key, this.opts.timeoutMs ?? 120_000);
      try {
        if (await reader.start(request)) return reader;
        ring.release();
        return undefined;
      } catch (err) {
        // A kept-alive connection the server closed meanwhile: once more on a new one.
        if (reused && reader.beforeHead) continue;
        ring.release();
        throw err;
      }
    }
  }

  private park(conn: Conn): void {
    if (this.closed || this.idle.length >= (this.opts.idle ?? 64)) {
      conn.socket.destroy();
      return;
    }
    conn.idleSince(IDLE_MS, () => {
      const i = this.idle.indexOf(conn);
      if (i !== -1) this.idle.splice(i, 1);
    });
    this.idle.push(conn);
  }

  /** close drops idle connections; reads in progress finish. */
  close(): void {
    this.closed = true;
    for (const c of this.idle.splice(0)) c.socket.destroy();
  }
}

/** Conn is one connection to the endpoint; its reads go to the current reader's slabs. */
class Conn {
  readonly socket: net.Socket;
  reader: Reader | undefined;
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  private onIdleEnd: (() => void) | undefined;

  constructor(
    url: URL,
    readonly park: (c: Conn) => void,
  ) {
    const onread = {
      buffer: () => this.reader?.buffer() ?? this.scratch,
      callback: (n: number, buf: Buffer): boolean => {
        if (this.reader) return this.reader.bytes(n, buf);
        // Bytes nobody asked for: this connection is no longer in step with the server.
        this.socket.destroy();
        return false;
      },
    };
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.socket = net.connect({ host, port: Number(url.port || 80), onread });
    this.socket.setNoDelay(true);
    this.socket.on('error', (err) => this.reader?.fail(err));
    this.socket.on('close', () => {
      this.reader?.fail(new Error('relay: storage closed the connection'));
      this.onIdleEnd?.();
    });
    this.socket.on('timeout', () => {
      this.reader?.fail(new Error('relay: storage timed out'));
      this.socket.destroy();
    });
  }

  idleSince(ms: number, onEnd: () => void): void {
    this.onIdleEnd = onEnd;
    this.socket.setTimeout(ms);
  }

  take(reader: Reader): void {
    this.onIdleEnd = undefined;
    this.reader = reader;
  }
}

/** Reader is one response on a connection: its head, then exactly `length` body bytes. */
class Reader implements ByteSource {
  private head: Buffer | undefined = Buffer.alloc(0);
  private remaining: number;
  private keepAlive = true;
  /** headWait settles `start`: true (usable), false (fall back) or an error. */
  private headWait: { resolve: (ok: boolean) => void; reject: (err: Error) => void } | undefined;
  /** bodyRead settles once every body byte was read (or reading failed). */
  private readonly bodyRead: Promise<void>;
  private bodyDone!: () => void;
  private bodyFailed!: (err: Error) => void;
  private copying = false;
  private paused = false;
  private failed = false;
  /** beforeHead: not one byte of the response arrived. */
  beforeHead = true;

  constructor(
    private readonly conn: Conn,
    private readonly ring: Ring,
    readonly length: number,
    private readonly key: string,
    private readonly timeoutMs: number,
  ) {
    this.remaining = length;
    this.bodyRead = new Promise<void>((resolve, reject) => {
      this.bodyDone = resolve;
      this.bodyFailed = reject;
    });
    this.bodyRead.catch(() => undefined);
    ring.onFail = (err) => this.fail(err);
  }

  /** start sends the request; resolves true once a usable head arrived. */
  start(request: string): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.headWait = { resolve, reject };
      this.conn.take(this);
      this.conn.socket.setTimeout(this.timeoutMs);
      this.conn.socket.write(request);
    });
  }

  /** buffer is where the next socket read lands: scratch for the head, then the slabs. */
  buffer(): Buffer | undefined {
    return this.head === undefined ? this.ring.slab : undefined;
  }

  /** bytes takes one socket read; false pauses the socket. */
  bytes(n: number, buf: Buffer): boolean {
    if (this.head !== undefined) return this.onHead(buf.subarray(0, n));
    if (this.paused || buf !== this.ring.slab) {
      // A paused socket reads nothing (libuv stops at once) and a read lands in the slab
      // handed out for it: anything else would be bytes in a slab still being written.
      this.fail(new Error('relay: bytes arrived out of turn'));
      return false;
    }
    if (n > this.remaining) {
      this.fail(new Error('relay: storage sent more bytes than asked for'));
      return false;
    }
    this.remaining -= n;
    this.ring.send(n);
    if (this.remaining === 0) {
      this.finishReading();
      return true;
    }
    if (this.ring.ready) return true;
    this.pause();
    this.ring.whenReady(() => this.resume());
    return false;
  }

  private onHead(chunk: Buffer): boolean {
    this.beforeHead = false;
    const head = Buffer.concat([this.head!, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) {
      if (head.length > HEAD_MAX) this.fail(new Error('relay: response head too large'));
      else this.head = head;
      return true;
    }
    this.head = undefined;
    const lines = head.subarray(0, end).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3}) /.exec(lines[0] ?? '');
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    const code = Number(status?.[2]);
    this.keepAlive = status?.[1] === '1' && headers.get('connection')?.toLowerCase() !== 'close';
    const body = head.subarray(end + 4);
    const wait = this.headWait;
    this.headWait = undefined;
    if (code === 404) {
      this.drop();
      wait?.reject(new PathNotFoundError(this.key));
      return false;
    }
    if (
      (code !== 200 && code !== 206) ||
      headers.has('transfer-encoding') ||
      headers.get('content-length') !== String(this.length) ||
      body.length > this.length
    ) {
      this.drop();
      wait?.resolve(false);
      return false;
    }
    if (body.length > 0) {
      body.copy(this.ring.slab);
      this.remaining -= body.length;
      this.ring.send(body.length);
    }
    if (this.remaining === 0) {
      this.finishReading();
      wait?.resolve(true);
      return true;
    }
    // Nothing more is read until the caller has a sink for it.
    this.pause();
    wait?.resolve(true);
    return false;
  }

  /** copyTo writes the bytes into `sink` (not ending it); resolves once it has taken all. */
  async copyTo(sink: ByteSink): Promise<void> {
    if (this.copying) throw new Error('relay: copyTo called twice');
    this.copying = true;
    const unwatch = watchClose(sink, this.ring);
    try {
      this.ring.attach(sink);
      this.ring.whenReady(() => this.resume());
      await this.bodyRead;
      await this.ring.drained();
    } catch (err) {
      this.drop();
      throw err;
    } finally {
      unwatch();
      this.ring.release();
    }
  }

  private pause(): void {
    this.paused = true;
    this.conn.socket.setTimeout(0);
  }

  private resume(): void {
    if (!this.paused || this.ring.failed || this.conn.reader !== this) return;
    this.paused = false;
    this.conn.socket.setTimeout(this.timeoutMs);
    this.conn.socket.resume();
  }

  /** finishReading hands the connection back (kept alive) once the body is all read. */
  private finishReading(): void {
    this.conn.reader = undefined;
    this.conn.socket.setTimeout(0);
    if (this.keepAlive) this.conn.park(this.conn);
    else this.conn.socket.destroy();
    this.bodyDone();
  }

  fail(err: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.drop();
    const wait = this.headWait;
    this.headWait = undefined;
    // Before the head the slabs hold nothing: the caller may try again with them.
    if (wait) return wait.reject(err);
    this.bodyFailed(err);
    this.ring.fail(err);
  }

  /** drop closes the connection if this response still holds it. */
  private drop(): void {
    if (this.conn.reader === this) {
      this.conn.reader = undefined;
      this.conn.socket.destroy();
    }
  }

  abandon(): void {
    this.drop();
    if (!this.copying) this.ring.release();
  }
}

/** FileReader is the part of a file handle a file source uses. */
export interface FileReader {
  read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
  ): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/**
 * fileSource relays bytes [start, start+length) of the file `openFile` opens once slabs
 * are lent (so reads waiting their turn hold no file): each slab is filled by one read and
 * written while the other fills. Undefined when no slabs came within `slabWaitMs` or
 * `openFile` gives none. The file is closed when the copy ends or is abandoned.
 */
export async function fileSource(
  openFile: () => Promise<FileReader | undefined>,
  start: number,
  length: number,
  pool: SlabPool = defaultSlabs,
  slabWaitMs?: number,
): Promise<ByteSource | undefined> {
  const slabs = await pool.acquire(RING, slabWaitMs);
  if (!slabs) return undefined;
  let opened: FileReader | undefined;
  try {
    opened = await openFile();
  } finally {
    if (!opened) for (const s of slabs) pool.give(s);
  }
  if (!opened) return undefined;
  const file = opened;
  const ring = new Ring(pool, slabs);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    void file.close().catch(() => undefined);
  };
  return {
    length,
    async copyTo(sink: ByteSink) {
      const unwatch = watchClose(sink, ring);
      try {
        ring.attach(sink);
        let pos = start;
        let remaining = length;
        while (remaining > 0) {
          await new Promise<void>((resolve) => ring.whenReady(resolve));
          if (ring.failed) throw ring.failed;
          const want = Math.min(ring.slab.length, remaining);
          const { bytesRead } = await file.read(ring.slab, 0, want, pos);
          if (bytesRead === 0) throw new Error('relay: file ended before the bytes asked for');
          ring.send(bytesRead);
          pos += bytesRead;
          remaining -= bytesRead;
        }
        await ring.drained();
      } finally {
        unwatch();
        ring.release();
        close();
      }
    },
    abandon() {
      ring.release();
      close();
    },
  };
}
