import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Coherence } from '../../../server/storage/coherence.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { Peers, type Endpoint } from '../../../server/storage/peers.js';
import { ManualClock } from '../../support/clock.js';

/** world: processes on one in-memory storage, sharing one manual clock. */
function world() {
  const clock = new ManualClock({ start: 0 });
  const driver = new InMemoryDriver();
  const rounds = async (ms: number, ...peers: Peers[]) => {
    for (let left = ms; left > 0; left -= 1_000) {
      clock.advance(Math.min(1_000, left));
      for (const p of peers) await p.round();
    }
  };
  return { clock, driver, rounds };
}

const endpointOf = (n: number): Endpoint => ({ url: `http://127.0.0.1:${n}`, token: `t${n}` });

/** flush lets pending promise callbacks and I/O run. */
const flush = () => new Promise((r) => setTimeout(r, 20));

describe('Peers with endpoints (ADR 0025)', () => {
  it('GIVEN three processes that all have an endpoint WHEN all have joined THEN each keeps tags, and a writer sees the others with their endpoints', async () => {
    const w = world();
    const ps = [1, 2, 3].map(
      (n) => new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(n) }),
    );
    for (const p of ps) await p.round();
    expect(ps.slice(1).every((p) => p.keepEpoch() === undefined)).toBe(true);
    await w.rounds(6_000, ...ps);
    for (const p of ps) expect(p.keepEpoch()).toBeDefined();
    const view = ps[0]!.view();
    expect(view?.peers.map((p) => p.endpoint?.url).sort()).toEqual([
      endpointOf(2).url,
      endpointOf(3).url,
    ]);
  });

  it('GIVEN keeping processes WHEN a newcomer with an endpoint joins THEN its rounds report it keeping nothing until it has joined, by which time every other lists it', async () => {
    const w = world();
    const reported: boolean[] = [];
    const a = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(1) });
    await w.rounds(2_000, a);
    expect(a.keepEpoch()).toBeDefined();
    const d = new Peers(w.driver, {
      clock: w.clock,
      endpoint: () => endpointOf(4),
      onRound: (r) => reported.push(r.alone),
    });
    await d.round();
    expect(reported).toEqual([false]);
    for (let i = 0; i < 4; i++) {
      await w.rounds(1_000, a, d);
      expect(reported.at(-1)).toBe(false);
      expect(d.keepEpoch()).toBeUndefined();
    }
    await w.rounds(2_000, a, d);
    expect(reported.at(-1)).toBe(true);
    expect(a.view()?.peers.map((p) => p.endpoint?.url)).toEqual([endpointOf(4).url]);
  });

  it('GIVEN keeping processes WHEN one without an endpoint joins THEN every other stops keeping at its next round', async () => {
    const w = world();
    const a = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(1) });
    const b = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(2) });
    await w.rounds(6_000, a, b);
    expect(a.keepEpoch()).toBeDefined();
    const old = new Peers(w.driver, { clock: w.clock });
    await old.round();
    await w.rounds(1_000, a, b);
    expect(a.keepEpoch()).toBeUndefined();
    expect(b.keepEpoch()).toBeUndefined();
  });

  it('GIVEN keeping processes WHEN a writer revokes (peers-epoch changed) THEN the other starts a new period at its next round, before revokeAll resolves', async () => {
    const w = world();
    const a = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(1) });
    const b = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(2) });
    await w.rounds(6_000, a, b);
    const before = b.keepEpoch();
    expect(before).toBeDefined();
    let revoked = false;
    const revoking = a.revokeAll().then(() => (revoked = true));
    await flush();
    expect((await w.driver.get(Paths.peersEpoch())).length).toBeGreaterThan(0);
    // b does no round: its period lapses by its own clock before the writer goes on.
    w.clock.advance(2_999);
    await flush();
    expect(revoked).toBe(false);
    expect(b.keepEpoch()).toBe(before);
    w.clock.advance(1);
    await revoking;
    expect(b.keepEpoch()).toBeUndefined();
    // b does a round: it reads the new peers-epoch and keeps under a new number.
    await b.round();
    expect(b.keepEpoch()).toBeDefined();
    expect(b.keepEpoch()).not.toBe(before);
  });

  it('GIVEN keeping processes WHEN peers-epoch changes between two rounds THEN the period number changes even though no round lapsed', async () => {
    const w = world();
    const a = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(1) });
    const b = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(2) });
    await w.rounds(6_000, a, b);
    const before = b.keepEpoch();
    await w.driver.put(Paths.peersEpoch(), 'changed');
    await w.rounds(1_000, a, b);
    expect(b.keepEpoch()).toBeDefined();
    expect(b.keepEpoch()).not.toBe(before);
  });

  it('GIVEN keeping processes WHEN one stops THEN the other drops what it kept (a new period), since the one that left may have moved a tag it never announced', async () => {
    const w = world();
    const a = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(1) });
    const b = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(2) });
    await w.rounds(6_000, a, b);
    const before = a.keepEpoch();
    await b.stop();
    await w.rounds(1_000, a);
    expect(a.keepEpoch()).toBeDefined();
    expect(a.keepEpoch()).not.toBe(before);
  });

  it('GIVEN a writer WHEN its latest round started aloneValidMs ago THEN it has no view to tell (it must revoke)', async () => {
    const w = world();
    const a = new Peers(w.driver, { clock: w.clock, endpoint: () => endpointOf(1) });
    await a.round();
    expect(a.view()).toBeDefined();
    w.clock.advance(3_000);
    expect(a.view()).toBeUndefined();
  });
});

describe('Coherence', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  /** node: a process with peers and a real listener on 127.0.0.1; what it was told to drop. */
  async function node(w: ReturnType<typeof world>, timeoutMs = 1_000) {
    const dropped: string[] = [];
    const holder: { peers?: Peers } = {};
    const coherence = new Coherence(() => holder.peers!, {
      listen: '127.0.0.1:0',
      advertise: '',
      invalidate: (k) => dropped.push(k),
      clock: w.clock,
      timeoutMs,
    });
    await coherence.start();
    closers.push(() => coherence.stop());
    const peers = new Peers(w.driver, { clock: w.clock, endpoint: () => coherence.endpoint() });
    holder.peers = peers;
    return { coherence, peers, dropped };
  }

  it('GIVEN three listening processes WHEN one announces a tag THEN the two others dropped it before announce resolves, and nothing was revoked', async () => {
    const w = world();
    const [a, b, c] = [await node(w), await node(w), await node(w)];
    await w.rounds(6_000, a.peers, b.peers, c.peers);
    const key = 'repositories/r/_manifests/tags/v1/current/link';
    await a.coherence.announce([key]);
    expect(b.dropped).toEqual([key]);
    expect(c.dropped).toEqual([key]);
    expect(a.dropped).toEqual([]);
    await expect(w.driver.get(Paths.peersEpoch())).rejects.toThrow();
  });

  it('GIVEN a peer that accepts connections and never answers WHEN a tag is announced THEN after timeoutMs the writer revokes, and resolves only aloneValidMs after changing peers-epoch', async () => {
    const w = world();
    const a = await node(w);
    const b = await node(w);
    await w.rounds(6_000, a.peers, b.peers);
    // b's entry now names a silent listener (a peer that is slow or half partitioned).
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    closers.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => silent.close(r));
    });
    const port = (silent.address() as { port: number }).port;
    await b.coherence.stop();
    const stub = { url: `http://127.0.0.1:${port}`, token: 'x' };
    const bPeers = new Peers(w.driver, { clock: w.clock, endpoint: () => stub });
    await w.rounds(6_000, a.peers, bPeers);
    let done = false;
    const announcing = a.coherence
      .announce(['repositories/r/_manifests/tags/v1/current/link'])
      .then(() => (done = true));
    await flush();
    w.clock.advance(999);
    await flush();
    expect(done).toBe(false);
    await expect(w.driver.get(Paths.peersEpoch())).rejects.toThrow();
    w.clock.advance(1);
    await flush();
    const epoch = (await w.driver.get(Paths.peersEpoch())).toString();
    expect(epoch).not.toBe('');
    w.clock.advance(2_999);
    await flush();
    expect(done).toBe(false);
    w.clock.advance(1);
    await announcing;
    expect(done).toBe(true);
  });

  it('GIVEN a peer whose listener is gone WHEN a tag is announced THEN the writer revokes (a refused connection is not an answer)', async () => {
    const w = world();
    const a = await node(w);
    const b = await node(w);
    await w.rounds(6_000, a.peers, b.peers);
    await b.coherence.stop();
    const announcing = a.coherence.announce(['repositories/r/_manifests/tags/v1/current/link']);
    for (let i = 0; i < 50; i++) {
      await flush();
      if (
        await w.driver.get(Paths.peersEpoch()).then(
          () => true,
          () => false,
        )
      )
        break;
    }
    expect((await w.driver.get(Paths.peersEpoch())).length).toBeGreaterThan(0);
    w.clock.advance(3_000);
    await announcing;
  });

  it('GIVEN a listener WHEN a request has the wrong token, method, path or body THEN it answers 401/404/400 and drops nothing', async () => {
    const w = world();
    const a = await node(w);
    await a.peers.round();
    const { url, token } = a.coherence.endpoint()!;
    const post = (path: string, auth: string, body: string) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${auth}` },
        body,
      }).then((r) => r.status);
    expect(await post('/invalidate', 'wrong', '{"keys":["k"]}')).toBe(401);
    expect(await post('/other', token, '{"keys":["k"]}')).toBe(404);
    expect(await post('/invalidate', token, 'not json')).toBe(400);
    expect(await post('/invalidate', token, '{"keys":[1]}')).toBe(400);
    expect(a.dropped).toEqual([]);
    expect(await post('/invalidate', token, '{"keys":["k"]}')).toBe(204);
    expect(a.dropped).toEqual(['k']);
  });

  it('GIVEN a writer whose round lapsed WHEN it announces THEN it revokes rather than trust an old list of peers', async () => {
    const w = world();
    const a = await node(w);
    const b = await node(w);
    await w.rounds(6_000, a.peers, b.peers);
    w.clock.advance(3_000);
    const announcing = a.coherence.announce(['repositories/r/_manifests/tags/v1/current/link']);
    await flush();
    expect(b.dropped).toEqual([]);
    expect((await w.driver.get(Paths.peersEpoch())).length).toBeGreaterThan(0);
    w.clock.advance(3_000);
    await announcing;
  });
});

describe('Coherence under http.workers', () => {
  it('GIVEN two cluster workers WHEN each starts its listener on port 0 THEN each has a port of its own (a shared one would hand invalidations to either)', async () => {
    const fixture = new URL('./fixtures/coherence-workers.ts', import.meta.url).pathname;
    const { stdout: out } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', fixture],
      {
        timeout: 30_000,
      },
    );
    const urls = JSON.parse(out) as string[];
    expect(urls).toHaveLength(2);
    expect(new Set(urls).size).toBe(2);
  }, 40_000);
});

describe('Coherence listener robustness', () => {
  it('GIVEN a listener WHEN a writer sends half a body and drops the connection THEN the process keeps running and answers the next invalidation', async () => {
    const dropped: string[] = [];
    const c = new Coherence(() => undefined as never, {
      listen: '127.0.0.1:0',
      advertise: '',
      invalidate: (k) => dropped.push(k),
    });
    await c.start();
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const { url, token } = c.endpoint()!;
      const { port } = new URL(url);
      const socket = connect(Number(port), '127.0.0.1');
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.write(
        `POST /invalidate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 100\r\n\r\n{"keys":`,
      );
      await new Promise((r) => setTimeout(r, 50));
      socket.destroy();
      await new Promise((r) => setTimeout(r, 100));
      expect(unhandled).toEqual([]);
      const r = await fetch(`${url}/invalidate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: '{"keys":["k"]}',
      });
      expect(r.status).toBe(204);
      expect(dropped).toEqual(['k']);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await c.stop();
    }
  });
});
