import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { decodeDescriptor } from '../../server/registry/blobs.js';
import { isNotFound, listAll, type StorageDriver } from '../../server/storage/driver.js';
import { Paths } from '../../server/storage/paths.js';
import { sha256 } from './image.js';
import type { TestRegistry } from './server.js';

interface Held {
  match: (method: string, key: string) => boolean;
  /** left is how many more matching calls are stopped. */
  left: number;
  released: Promise<void>;
  reach: () => void;
}

/**
 * Gate wraps a driver so that a test can stop chosen calls where they are: `hold` makes
 * the next calls it matches wait until `release`, and says when the first one arrived.
 * Interleavings are then forced, not hoped for.
 */
export class Gate {
  readonly driver: StorageDriver;
  private readonly holds = new Set<Held>();

  constructor(inner: StorageDriver) {
    const holds = this.holds;
    this.driver = new Proxy(inner, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return async (...args: unknown[]) => {
          const key = typeof args[0] === 'string' ? args[0] : '';
          for (const h of [...holds]) {
            if (h.left === 0 || !h.match(String(prop), key)) continue;
            h.left--;
            h.reach();
            await h.released;
          }
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  }

  /**
   * hold stops the next `times` calls (all, by default) that `match` accepts (method name,
   * first argument) until `release`; `reached` resolves when the first one is waiting.
   */
  hold(
    match: (method: string, key: string) => boolean,
    times = Infinity,
  ): {
    reached: Promise<void>;
    release: () => void;
  } {
    let reach!: () => void;
    let release!: () => void;
    const reached = new Promise<void>((r) => (reach = r));
    const released = new Promise<void>((r) => (release = r));
    const h: Held = { match, left: times, released, reach };
    this.holds.add(h);
    return {
      reached,
      release: () => {
        this.holds.delete(h);
        release();
      },
    };
  }
}

/** objectKeys lists every object below `prefix` (ending in `/`), at any depth. */
export async function objectKeys(driver: StorageDriver, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await listAll(driver, prefix)) {
    const below = await objectKeys(driver, `${prefix}${name}/`);
    if (below.length > 0) out.push(...below);
    else out.push(prefix + name);
  }
  return out;
}

/**
 * uploadViolations checks, on storage itself, what no interleaving of upload requests may
 * break, and returns what is broken:
 * - every blob descriptor (global index and repository links) names segments that exist,
 *   with the sizes it says;
 * - every segment is named by a descriptor or by the record of a session still open (a
 *   request that lost its race removed its bytes).
 */
export async function uploadViolations(driver: StorageDriver): Promise<string[]> {
  const out: string[] = [];
  const named = new Set<string>();
  const descriptors = [
    ...(await objectKeys(driver, Paths.blobsRoot())),
    ...(await objectKeys(driver, Paths.repositoriesRoot())).filter((k) => k.includes('/_layers/')),
  ];
  for (const key of descriptors) {
    const desc = decodeDescriptor(await driver.get(key));
    for (const seg of desc.segments) {
      named.add(seg.key);
      const size = await driver.stat(seg.key).then(
        (s) => s.size,
        (err: unknown) => {
          if (isNotFound(err)) return undefined;
          throw err;
        },
      );
      if (size !== seg.size) out.push(`${key} names ${seg.key} (${seg.size} B), found ${size} B`);
    }
  }
  for (const id of await listAll(driver, Paths.uploadsRoot())) {
    const rec = JSON.parse((await driver.get(Paths.upload(id))).toString('utf8')) as {
      segments: { key: string }[];
      committed?: string;
      cancelled?: true;
    };
    if (rec.cancelled) continue;
    for (const seg of rec.segments) named.add(seg.key);
  }
  for (const key of await objectKeys(driver, Paths.segmentsRoot())) {
    if (!named.has(key)) out.push(`segment ${key} is named by nothing`);
  }
  return out;
}

/** after resolves once the event loop has taken `turns` turns (no clock involved). */
async function after(turns: number): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * RaceOptions tunes raceSessions. A DELETE nearly always overtakes a PUT that carries
 * bytes, so half the sessions send theirs late, and the race sees both winners: up to
 * cancelLagMs milliseconds (over a network store), or up to cancelLagTurns more event-loop
 * turns (in-process, with no timer).
 */
export interface RaceOptions {
  cancelLagMs?: number;
  cancelLagTurns?: number;
}

/** SessionRace is what was sent to one upload session, and what each request answered. */
export interface SessionRace {
  repo: string;
  digest: string;
  data: Buffer;
  /** stored: a PATCH saved the session's first bytes before the race. */
  stored: boolean;
  put: number[];
  del: number[];
  patch: number[];
}

/**
 * raceSessions opens `sessions` uploads through `registries` (replicas on one storage),
 * and on each one sends at the same time a closing PUT (with the last bytes or without),
 * most often a DELETE, sometimes a PATCH of other bytes and sometimes a second PUT, each
 * through a replica drawn from `rand`. Most sessions get their first bytes by a PATCH
 * before; the others race on a session nothing was saved for yet. `concurrency` sessions
 * race at a time.
 */
export async function raceSessions(
  registries: TestRegistry[],
  rand: () => number,
  sessions: number,
  concurrency: number,
  opts: RaceOptions = {},
): Promise<SessionRace[]> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const plans = Array.from({ length: sessions }, (_, i) => {
    const first = randomBytes(1 + Math.floor(rand() * 40_000));
    const last = rand() < 0.5 ? randomBytes(1 + Math.floor(rand() * 40_000)) : Buffer.alloc(0);
    return {
      repo: `race/s${i % 4}`,
      first,
      last,
      stored: rand() < 0.8,
      del: rand() < 0.8,
      patch: rand() < 0.4,
      second: rand() < 0.2,
      regs: Array.from({ length: 5 }, () => pick(registries)),
      /** turns each request lets the event loop take before it is sent (PUT, PUT, DELETE, PATCH). */
      turns: Array.from({ length: 4 }, () => Math.floor(rand() * 4)),
      /** ms the DELETE waits before it is sent (0 unless `opts.cancelLagMs`, then half the sessions). */
      lag: opts.cancelLagMs !== undefined && rand() < 0.5 ? rand() * opts.cancelLagMs : 0,
      /** more turns the DELETE lets pass (0 unless `opts.cancelLagTurns`, then half the sessions). */
      lagTurns:
        opts.cancelLagTurns !== undefined && rand() < 0.5
          ? Math.floor(rand() * opts.cancelLagTurns)
          : 0,
    };
  });
  const out: SessionRace[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (;;) {
        const p = plans[next++];
        if (p === undefined) return;
        const [r0, r1, r2, r3, r4] = p.regs as [
          TestRegistry,
          TestRegistry,
          TestRegistry,
          TestRegistry,
          TestRegistry,
        ];
        const data = p.stored ? Buffer.concat([p.first, p.last]) : p.first;
        const result: SessionRace = {
          repo: p.repo,
          digest: sha256(data),
          data,
          stored: p.stored,
          put: [],
          del: [],
          patch: [],
        };
        out.push(result);
        const post = await r0.fetch(`/v2/${p.repo}/blobs/uploads/`, { method: 'POST' });
        let loc = post.headers.get('location')!;
        let offset = 0;
        if (p.stored) {
          const patched = await r0.fetch(loc, {
            method: 'PATCH',
            body: p.first,
            headers: { 'content-range': `0-${p.first.length - 1}` },
          });
          loc = patched.headers.get('location')!;
          offset = p.first.length;
        }
        const closing = p.stored ? p.last : p.first;
        const [t0, t1, t2, t3] = p.turns as [number, number, number, number];
        const put = (reg: TestRegistry, turns: number) =>
          after(turns)
            .then(() =>
              reg.fetch(`${loc}&digest=${result.digest}`, {
                method: 'PUT',
                ...(closing.length > 0 && { body: closing }),
              }),
            )
            .then(async (r) => {
              await r.arrayBuffer();
              result.put.push(r.status);
            });
        const requests = [put(r1, t0)];
        if (p.second) requests.push(put(r4, t1));
        if (p.del)
          requests.push(
            after(t2 + p.lagTurns)
              .then(() => (p.lag > 0 ? delay(p.lag) : undefined))
              .then(() => r2.fetch(loc, { method: 'DELETE' }))
              .then(async (r) => {
                await r.arrayBuffer();
                result.del.push(r.status);
              }),
          );
        if (p.patch) {
          const other = randomBytes(1000);
          requests.push(
            after(t3)
              .then(() =>
                r3.fetch(loc, {
                  method: 'PATCH',
                  body: other,
                  headers: { 'content-range': `${offset}-${offset + other.length - 1}` },
                }),
              )
              .then(async (r) => {
                await r.arrayBuffer();
                result.patch.push(r.status);
              }),
          );
        }
        await Promise.all(requests);
      }
    }),
  );
  return out;
}

/**
 * raceViolations checks what the registry answered in a race: no request failed as a
 * server error, of a stored session's commit and a cancel or chunk racing it at most one
 * succeeded (and at most one of two commits), and every
 * blob answered 201 reads back whole with its digest through every replica.
 */
export async function raceViolations(
  registries: TestRegistry[],
  races: SessionRace[],
): Promise<string[]> {
  const out: string[] = [];
  for (const r of races) {
    const all = [...r.put, ...r.del, ...r.patch];
    if (all.some((s) => s >= 500)) out.push(`${r.digest}: server error ${JSON.stringify(r)}`);
    const committed = r.put.includes(201);
    if (r.stored && committed && r.del.includes(204))
      out.push(`${r.digest}: both the commit and the cancel succeeded`);
    if (r.stored && committed && r.patch.includes(202))
      out.push(`${r.digest}: both the commit and a chunk of other bytes succeeded`);
    if (r.stored && r.put.filter((s) => s === 201).length > 1)
      out.push(`${r.digest}: two commits of one session succeeded`);
    if (!committed) continue;
    for (const reg of registries) {
      const got = await reg.fetch(`/v2/${r.repo}/blobs/${r.digest}`);
      const body = Buffer.from(await got.arrayBuffer());
      if (got.status !== 200 || !body.equals(r.data) || sha256(body) !== r.digest)
        out.push(`${r.digest}: answered 201, reads back ${got.status} with ${body.length} B`);
    }
  }
  return out;
}
