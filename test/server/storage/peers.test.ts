import { describe, expect, it } from 'vitest';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Paths } from '../../../server/storage/paths.js';
import { Peers, type PeersOptions } from '../../../server/storage/peers.js';
import { ManualClock } from '../../support/clock.js';

/** FlakyDriver fails every call while `down` is set (storage unreachable). */
class FlakyDriver extends InMemoryDriver {
  down = false;
  override async put(key: string, data: Buffer | string): Promise<void> {
    if (this.down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    return super.put(key, data);
  }
}

function world() {
  const clock = new ManualClock({ start: 0 });
  const driver = new FlakyDriver();
  const make = (opts: PeersOptions = {}) => new Peers(driver, { clock, ...opts });
  const advance = (ms: number) => clock.advance(ms);
  /** rounds lets `ms` pass in one-second steps, each peer running its round at every step. */
  const rounds = async (ms: number, ...peers: Peers[]) => {
    for (let left = ms; left > 0; left -= 1_000) {
      advance(Math.min(1_000, left));
      for (const p of peers) await p.round();
    }
  };
  return { driver, make, advance, rounds };
}

describe('Peers', () => {
  it('GIVEN one process WHEN its round finds no other THEN it is alone and may write at once', async () => {
    const w = world();
    const a = w.make();
    await a.round();
    expect(a.aloneEpoch()).toBeDefined();
    expect(a.whenWritable()).toBeUndefined();
    expect(a.count).toBe(1);
    expect(await w.driver.list(Paths.peersRoot())).toEqual({
      names: [a.instance],
      truncated: false,
    });
  });

  it('GIVEN an alone process WHEN no round completes for aloneValidMs THEN it is no longer alone, and the next period has a new number', async () => {
    const w = world();
    const a = w.make();
    await a.round();
    const first = a.aloneEpoch();
    w.advance(2_999);
    expect(a.aloneEpoch()).toBe(first);
    w.advance(1);
    expect(a.aloneEpoch()).toBeUndefined();
    await a.round();
    expect(a.aloneEpoch()).toBeDefined();
    expect(a.aloneEpoch()).not.toBe(first);
  });

  it('GIVEN rounds one second apart WHEN alone throughout THEN the period (and its number) goes on', async () => {
    const w = world();
    const a = w.make();
    await a.round();
    const first = a.aloneEpoch();
    for (let i = 0; i < 5; i++) {
      w.advance(1_000);
      await a.round();
      expect(a.aloneEpoch()).toBe(first);
    }
  });

  it('GIVEN an alone process WHEN a second joins THEN the newcomer waits joinWaitMs to write, and the first stops being alone at its next round', async () => {
    const w = world();
    const a = w.make();
    const b = w.make();
    await a.round();
    expect(a.aloneEpoch()).toBeDefined();
    await b.round();
    expect(b.aloneEpoch()).toBeUndefined();
    expect(b.count).toBe(2);
    let opened = false;
    const gate = b.whenWritable()!.then(() => (opened = true));
    expect(gate).toBeInstanceOf(Promise);
    await w.rounds(1_000, a, b);
    expect(a.aloneEpoch()).toBeUndefined();
    expect(a.whenWritable()).toBeUndefined();
    // The gate polls on the manual clock: the rounds' steps run its polls.
    expect(opened).toBe(false);
    await w.rounds(3_000, a, b);
    expect(opened).toBe(false);
    await w.rounds(1_000, a, b);
    await gate;
    expect(opened).toBe(true);
  });

  it('GIVEN a newcomer WHEN the process keeping tags has not listed for joinWaitMs THEN that process is no longer alone by its own clock', async () => {
    // The safety argument of ADR 0012: a newcomer's first write comes after joinWaitMs, and
    // by then the alone period of anyone who has not listed the newcomer has lapsed.
    const w = world();
    const a = w.make();
    await a.round();
    const b = w.make();
    await b.round();
    await w.rounds(5_000, b);
    expect(b.whenWritable()).toBeUndefined();
    expect(a.aloneEpoch()).toBeUndefined();
  });

  it('GIVEN a process that stopped without leaving WHEN its entry is unchanged for deadMs THEN the other removes it and is alone again', async () => {
    const w = world();
    const a = w.make();
    const gone = w.make();
    await gone.round();
    await a.round();
    expect(a.count).toBe(2);
    for (let i = 0; i < 14; i++) {
      w.advance(1_000);
      await a.round();
      expect(a.aloneEpoch()).toBeUndefined();
    }
    w.advance(1_000);
    await a.round();
    expect(a.count).toBe(1);
    expect(a.aloneEpoch()).toBeDefined();
    expect((await w.driver.list(Paths.peersRoot())).names).toEqual([a.instance]);
  });

  it('GIVEN a process that leaves WHEN stop() returns THEN its entry is gone and it moves no tag', async () => {
    const w = world();
    const a = w.make();
    const b = w.make();
    await a.round();
    await b.round();
    await b.stop();
    expect((await w.driver.list(Paths.peersRoot())).names).toEqual([a.instance]);
    expect(b.aloneEpoch()).toBeUndefined();
    await expect(b.whenWritable()).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503 });
    w.advance(1_000);
    await a.round();
    expect(a.aloneEpoch()).toBeDefined();
  });

  it('GIVEN storage unreachable WHEN rounds fail for fenceMs THEN the process is neither alone nor writable, and rejoins (waiting, since others exist) once storage is back', async () => {
    const w = world();
    const other = w.make();
    const a = w.make({ writeTimeoutMs: 100 });
    await a.round();
    await w.rounds(5_000, a, other);
    expect(a.whenWritable()).toBeUndefined();
    w.driver.down = true;
    await w.rounds(4_000, a);
    expect(a.aloneEpoch()).toBeUndefined();
    expect(a.whenWritable()).toBeUndefined();
    w.advance(1_000);
    const gate = a.whenWritable();
    expect(gate).toBeInstanceOf(Promise);
    w.advance(100);
    await expect(gate).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    w.driver.down = false;
    await other.round();
    await a.round();
    // These gates time out (writeTimeoutMs) while the clock runs on: their 503 is not tested.
    const waiting = () => a.whenWritable()?.catch(() => 'timed out');
    expect(waiting()).toBeInstanceOf(Promise);
    await w.rounds(4_000, a, other);
    expect(waiting()).toBeInstanceOf(Promise);
    await w.rounds(1_000, a, other);
    expect(a.whenWritable()).toBeUndefined();
  });

  it('GIVEN its own entry deleted by another WHEN a round lists without it THEN the round proves nothing (not alone)', async () => {
    const w = world();
    const a = w.make();
    await a.round();
    const listed = w.driver.list.bind(w.driver);
    w.driver.list = async (prefix, opts) => {
      await w.driver.delete(Paths.peer(a.instance));
      return listed(prefix, opts);
    };
    w.advance(3_000);
    await a.round();
    expect(a.aloneEpoch()).toBeUndefined();
  });

  it('GIVEN timings that break the argument WHEN constructing THEN it refuses', () => {
    const w = world();
    expect(() => w.make({ roundMs: 3_000, aloneValidMs: 3_000 })).toThrow(/aloneValidMs/);
    expect(() => w.make({ joinWaitMs: 4_000 })).toThrow(/joinWaitMs/);
    expect(() => w.make({ deadMs: 10_000 })).toThrow(/deadMs/);
  });
});
