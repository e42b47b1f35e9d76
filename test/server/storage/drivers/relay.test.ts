import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PathNotFoundError, type ByteSink } from '../../../../server/storage/driver.js';
import {
  HttpRelay,
  SLAB_BYTES,
  SlabPool,
  fileSource,
} from '../../../../server/storage/drivers/relay.js';
import { ManualClock } from '../../../support/clock.js';
import { selfSignedCert } from '../../../support/tls.js';
import { CollectingSink } from '../driver-contract.js';

// Unit tests of the relay's own HTTP/1.1 client against a small local server that plays
// storage (exact bytes, odd fragmentation, misbehaviour on demand); the S3 driver's relay
// against MinIO is in s3.int.test.ts and the driver contract.

const MiB = 1024 * 1024;
const OBJECT = randomBytes(3 * MiB + 333);

interface Storage {
  url: string;
  /** connections opened, requests answered, Range headers seen. */
  connections: number;
  requests: number;
  ranges: string[];
  sockets: Set<Socket>;
  /** idle resolves once no connection to it is open. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => boolean;

/**
 * storage serves OBJECT's requested range in small, irregular writes (so heads and bodies
 * split across reads), unless `behave` answers the request itself (returns true).
 */
async function storage(behave?: Behaviour, tls = false): Promise<Storage> {
  const closes = new EventEmitter();
  const s: Storage = {
    url: '',
    connections: 0,
    requests: 0,
    ranges: [],
    sockets: new Set(),
    idle: () =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (s.sockets.size > 0) return;
          closes.off('close', check);
          resolve();
        };
        closes.on('close', check);
        check();
      }),
    close: async () => undefined,
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    s.requests++;
    s.ranges.push(req.headers.range ?? '');
    if (behave?.(req, res, s.requests)) return;
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
    const body = OBJECT.subarray(Number(m[1]), Number(m[2]) + 1);
    res.writeHead(206, {
      'content-length': body.length,
      'content-type': 'application/octet-stream',
    });
    let at = 0;
    const step = () => {
      while (at < body.length) {
        const n = 1 + ((at * 7919) % 150_000);
        const ok = res.write(body.subarray(at, at + n));
        at += n;
        if (!ok) return void res.once('drain', step);
      }
      res.end();
    };
    step();
  };
  let srv: http.Server;
  if (tls) {
    const cert = selfSignedCert();
    srv = https.createServer(
      { cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) },
      handler,
    );
  } else {
    srv = http.createServer(handler);
  }
  srv.on('connection', (sock: Socket) => {
    s.connections++;
    s.sockets.add(sock);
    sock.on('close', () => {
      s.sockets.delete(sock);
      closes.emit('close');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  s.url = `${tls ? 'https' : 'http'}://127.0.0.1:${(srv.address() as AddressInfo).port}/bucket/key?X-Sig=1`;
  s.close = () =>
    new Promise<void>((r) => {
      for (const sock of s.sockets) sock.destroy();
      srv.close(() => r());
    });
  return s;
}

/**
 * SlowSink completes each write only when told to, like a client that is behind; `lifo`
 * completes the newest pending write first, as a file's writes on a thread pool may.
 */
class SlowSink extends EventEmitter implements ByteSink {
  constructor(private readonly lifo = false) {
    super();
  }
  readonly chunks: Buffer[] = [];
  private readonly pending: (() => void)[] = [];
  private wrote: () => void = () => undefined;
  /** written resolves once the first chunk has been written to it. */
  readonly written = new Promise<void>((r) => (this.wrote = r));
  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean {
    this.wrote();
    const copy = Buffer.from(chunk);
    this.chunks.push(copy);
    const v = { view: chunk, copy };
    this.pending.push(() => {
      // Until its write completes, a chunk must still hold what was written.
      if (!Buffer.from(v.view).equals(v.copy))
        cb(new Error('chunk changed before its write completed'));
      else cb();
    });
    return false;
  }
  /** drainUntil completes writes, one per tick, until `copy` settles; returns it. */
  async drainUntil(copy: Promise<void>): Promise<void> {
    let settled = false;
    const done = copy.finally(() => {
      settled = true;
    });
    done.catch(() => undefined);
    while (!settled) {
      (this.lifo ? this.pending.pop() : this.pending.shift())?.();
      await new Promise((r) => setImmediate(r));
    }
    return done;
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('relay', () => {
  let s: Storage | undefined;
  let relay: HttpRelay | undefined;
  afterEach(async () => {
    relay?.close();
    await s?.close();
    s = undefined;
    relay = undefined;
  });

  it('GIVEN a storage server that fragments its answer WHEN a range is relayed into a slow sink THEN the bytes are exact and no slab is refilled while its write is pending', async () => {
    s = await storage();
    const pool = new SlabPool(SLAB_BYTES, 8);
    relay = new HttpRelay({ slabs: pool });
    const start = 12_345;
    const length = 2 * MiB + 1;

    const src = await relay.open(new URL(s.url), start, length, 'k');
    expect(src?.length).toBe(length);
    const sink = new SlowSink();
    await sink.drainUntil(src!.copyTo(sink));

    expect(s.ranges).toEqual([`bytes=${start}-${start + length - 1}`]);
    expect(sha(sink.bytes())).toBe(sha(OBJECT.subarray(start, start + length)));
    expect(pool.inUse).toBe(0);
  });

  it('GIVEN a sink whose writes complete out of order (a file) WHEN a range is relayed THEN no slab is refilled before its own write completes and the copy ends', async () => {
    s = await storage();
    const pool = new SlabPool(SLAB_BYTES, 8);
    relay = new HttpRelay({ slabs: pool });
    const length = 3 * MiB + 5;

    const src = await relay.open(new URL(s.url), 0, length, 'k');
    const sink = new SlowSink(true);
    await sink.drainUntil(src!.copyTo(sink));

    expect(sha(sink.bytes())).toBe(sha(OBJECT.subarray(0, length)));
    expect(pool.inUse).toBe(0);
  });

  it('GIVEN two reads one after the other WHEN relayed THEN the second reuses the kept-alive connection', async () => {
    s = await storage();
    relay = new HttpRelay({ slabs: new SlabPool(SLAB_BYTES, 8) });
    for (const [start, length] of [
      [0, OBJECT.length],
      [MiB, MiB],
    ] as const) {
      const sink = new CollectingSink();
      await (await relay.open(new URL(s.url), start, length, 'k'))!.copyTo(sink);
      expect(sink.bytes().equals(OBJECT.subarray(start, start + length))).toBe(true);
    }
    expect(s.requests).toBe(2);
    expect(s.connections).toBe(1);
  });

  it('GIVEN a kept-alive connection the server drops on the next request WHEN relayed THEN it is retried once on a new connection', async () => {
    s = await storage((req, res, n) => {
      if (n !== 2) return false;
      res.socket?.destroy();
      return true;
    });
    relay = new HttpRelay({ slabs: new SlabPool(SLAB_BYTES, 8) });
    await (await relay.open(new URL(s.url), 0, MiB, 'k'))!.copyTo(new CollectingSink());

    const sink = new CollectingSink();
    await (await relay.open(new URL(s.url), MiB, MiB, 'k'))!.copyTo(sink);

    expect(sink.bytes().equals(OBJECT.subarray(MiB, 2 * MiB))).toBe(true);
    expect(s.requests).toBe(3);
    expect(s.connections).toBe(2);
  });

  it('GIVEN storage answers 404 WHEN opened THEN PathNotFoundError names the key and the slabs are back', async () => {
    s = await storage((_req, res) => {
      res
        .writeHead(404, { 'content-type': 'application/xml' })
        .end('<Error><Code>NoSuchKey</Code></Error>');
      return true;
    });
    const pool = new SlabPool(SLAB_BYTES, 8);
    relay = new HttpRelay({ slabs: pool });
    const err = await relay.open(new URL(s.url), 0, MiB, 'blobs/x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PathNotFoundError);
    expect((err as PathNotFoundError).key).toBe('blobs/x');
    expect(pool.inUse).toBe(0);
  });

  it.each([
    ['a 500', (res: http.ServerResponse) => res.writeHead(500).end('no')],
    [
      'a 200 of another length',
      (res: http.ServerResponse) => res.writeHead(200, { 'content-length': 10 }).end('0123456789'),
    ],
    [
      'a chunked body',
      (res: http.ServerResponse) => {
        res.writeHead(206);
        res.write('x');
        res.end('y');
      },
    ],
    ['a 416', (res: http.ServerResponse) => res.writeHead(416, { 'content-length': 0 }).end()],
  ])(
    'GIVEN storage answers %s WHEN opened THEN undefined (the caller reads another way) and the slabs are back',
    async (_what, answer) => {
      s = await storage((_req, res) => {
        answer(res);
        return true;
      });
      const pool = new SlabPool(SLAB_BYTES, 8);
      relay = new HttpRelay({ slabs: pool });
      expect(await relay.open(new URL(s.url), 0, MiB, 'k')).toBeUndefined();
      expect(pool.inUse).toBe(0);
    },
  );

  it('GIVEN storage that dies midway through the body WHEN copied THEN copyTo rejects, the sink holds only a prefix, and the slabs are back', async () => {
    s = await storage((req, res) => {
      res.writeHead(206, { 'content-length': 2 * MiB });
      res.write(OBJECT.subarray(0, MiB / 2), () => setImmediate(() => res.socket?.destroy()));
      return true;
    });
    const pool = new SlabPool(SLAB_BYTES, 8);
    relay = new HttpRelay({ slabs: pool });
    const sink = new CollectingSink();
    const src = await relay.open(new URL(s.url), 0, 2 * MiB, 'k');
    await expect(src!.copyTo(sink)).rejects.toThrow(/closed/);
    expect(sink.bytes().length).toBeLessThan(2 * MiB);
    expect(sink.bytes().equals(OBJECT.subarray(0, sink.bytes().length))).toBe(true);
    expect(pool.inUse).toBe(0);
  });

  it('GIVEN a client that goes away mid-copy WHEN the sink closes THEN copyTo rejects, the storage connection is closed and no slab leaks', async () => {
    s = await storage();
    const pool = new SlabPool(SLAB_BYTES, 8);
    relay = new HttpRelay({ slabs: pool });
    const sink = new SlowSink();
    const src = await relay.open(new URL(s.url), 0, OBJECT.length, 'k');
    const copying = src!.copyTo(sink);
    await sink.written;
    sink.emit('close');

    await expect(copying).rejects.toThrow(/client closed/);
    await s.idle();
    expect(s.sockets.size).toBe(0);
    expect(pool.inUse).toBe(0);
  });

  it('GIVEN every slab lent and no wait WHEN a read is opened THEN undefined without a request, and a source abandoned unread gives its slabs back', async () => {
    s = await storage();
    const pool = new SlabPool(SLAB_BYTES, 2);
    relay = new HttpRelay({ slabs: pool, slabWaitMs: 0 });
    const held = await relay.open(new URL(s.url), 0, MiB, 'k');
    expect(pool.inUse).toBe(2);

    expect(await relay.open(new URL(s.url), 0, MiB, 'k')).toBeUndefined();
    expect(s.requests).toBe(1);

    held!.abandon();
    expect(pool.inUse).toBe(0);
  });

  it('GIVEN every slab lent WHEN a read is opened THEN it waits its turn and relays once a read gives its slabs back', async () => {
    s = await storage();
    const pool = new SlabPool(SLAB_BYTES, 2);
    relay = new HttpRelay({ slabs: pool, slabWaitMs: 60_000 });
    const held = (await relay.open(new URL(s.url), 0, MiB, 'k'))!;
    const next = relay.open(new URL(s.url), MiB, MiB, 'k');
    await new Promise((r) => setImmediate(r));
    expect(pool.waiting).toBe(1);
    expect(s.requests).toBe(1);

    await held.copyTo(new CollectingSink());
    const src = (await next)!;
    expect(src).toBeDefined();
    const sink = new CollectingSink();
    await src.copyTo(sink);
    expect(sink.bytes().equals(OBJECT.subarray(MiB, 2 * MiB))).toBe(true);
    expect(pool.inUse).toBe(0);
    expect(pool.waiting).toBe(0);
  });

  it('GIVEN an https endpoint WHEN opened THEN undefined without a connection: TLS reads stay on the S3 client', async () => {
    s = await storage(undefined, true);
    const pool = new SlabPool(SLAB_BYTES, 8);
    relay = new HttpRelay({ slabs: pool });
    expect(await relay.open(new URL(s.url), 0, MiB, 'k')).toBeUndefined();
    expect(s.connections).toBe(0);
    expect(pool.inUse).toBe(0);
  });
});

describe('SlabPool', () => {
  it('GIVEN a full pool WHEN reads wait THEN they are served first come, first served as slabs come back', async () => {
    const pool = new SlabPool(SLAB_BYTES, 2);
    const first = pool.take(2)!;
    const order: string[] = [];
    const a = pool.acquire(2, 60_000).then((s) => (order.push('a'), s));
    const b = pool.acquire(1, 60_000).then((s) => (order.push('b'), s));
    pool.give(first[0]!);
    await new Promise((r) => setImmediate(r));
    // One slab is free, but b (which wants one) does not overtake a (which waits for two).
    expect(order).toEqual([]);
    pool.give(first[1]!);
    const sa = (await a)!;
    expect(sa).toHaveLength(2);
    expect(order).toEqual(['a']);
    pool.give(sa[0]!);
    expect(await b).toHaveLength(1);
    expect(order).toEqual(['a', 'b']);
    expect(pool.waiting).toBe(0);
  });

  it('GIVEN a full pool WHEN nothing comes back within the wait THEN undefined, and the queue moves on', async () => {
    const clock = new ManualClock();
    const pool = new SlabPool(SLAB_BYTES, 2, clock);
    const held = pool.take(2)!;
    const none = pool.acquire(2, 20);
    clock.advance(20);
    expect(await none).toBeUndefined();
    expect(pool.waiting).toBe(0);
    expect(pool.inUse).toBe(2);
    const later = pool.acquire(1, 60_000);
    pool.writeOff();
    expect(await later).toHaveLength(1);
    pool.give(held[1]!);
    expect(await pool.acquire(0, 0)).toEqual([]);
  });
});

describe('fileSource', () => {
  it('GIVEN a file WHEN a range is copied into a slow sink THEN the bytes are exact and the slabs are back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-relay-'));
    try {
      await writeFile(join(dir, 'f'), OBJECT);
      const pool = new SlabPool(SLAB_BYTES, 2);
      const src = (await fileSource(() => open(join(dir, 'f')), 77, 2 * MiB + 3, pool))!;
      const sink = new SlowSink();
      await sink.drainUntil(src.copyTo(sink));
      expect(sink.bytes().equals(OBJECT.subarray(77, 77 + 2 * MiB + 3))).toBe(true);
      expect(pool.inUse).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('GIVEN a file shorter than the range WHEN copied THEN copyTo rejects instead of sending short', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-relay-'));
    try {
      await writeFile(join(dir, 'f'), OBJECT.subarray(0, MiB));
      const pool = new SlabPool(SLAB_BYTES, 2);
      const src = (await fileSource(() => open(join(dir, 'f')), 0, 2 * MiB, pool))!;
      await expect(src.copyTo(new CollectingSink())).rejects.toThrow(/ended before/);
      expect(pool.inUse).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
