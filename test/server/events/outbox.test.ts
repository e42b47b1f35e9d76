import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../support/clock.js';
import { Outbox } from '../../../server/events/outbox.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { testEvent } from './sink-contract.js';

/** GatedDriver holds every put until `release` is called, to make appends overlap. */
class GatedDriver extends InMemoryDriver {
  puts = 0;
  failNext = false;
  private gates: (() => void)[] = [];
  override async put(key: string, data: Buffer | string): Promise<void> {
    this.puts++;
    await new Promise<void>((r) => this.gates.push(r));
    if (this.failNext) {
      this.failNext = false;
      throw new Error('storage down');
    }
    return super.put(key, data);
  }
  /** release lets the oldest held put through; resolves once a turn of the loop has run. */
  async release(): Promise<void> {
    for (let i = 0; i < 50 && this.gates.length === 0; i++)
      await new Promise((r) => setImmediate(r));
    this.gates.shift()?.();
    await new Promise((r) => setImmediate(r));
  }
}

describe('outbox group commit', () => {
  it('GIVEN appends made while an entry is being written WHEN it lands THEN they are written together as the next entry, each append keeping its events in order', async () => {
    const driver = new GatedDriver();
    const outbox = new Outbox(driver, new ManualClock({ sleepAdvances: true }));
    const a = [testEvent('r/a')];
    const b = [testEvent('r/b'), testEvent('r/b', 'delete')];
    const c = [testEvent('r/c')];

    const first = outbox.append(a);
    const second = outbox.append(b);
    const third = outbox.append(c);
    await driver.release();
    await driver.release();
    const [e1, e2, e3] = await Promise.all([first, second, third]);

    expect(driver.puts).toBe(2);
    expect(e2).toBe(e3);
    expect(e1 < e2).toBe(true);
    const { items } = await outbox.read(undefined, 10);
    expect(items.map((i) => i.event.id)).toEqual([...a, ...b, ...c].map((e) => e.id));
  });

  it('GIVEN a batch whose write fails WHEN appended THEN every append in it rejects and the next append writes on its own', async () => {
    const driver = new GatedDriver();
    const outbox = new Outbox(driver, new ManualClock({ sleepAdvances: true }));
    const first = outbox.append([testEvent('r/a')]);
    const second = outbox.append([testEvent('r/b')]);
    const third = outbox.append([testEvent('r/c')]);
    const failed = Promise.all([
      expect(second).rejects.toThrow('storage down'),
      expect(third).rejects.toThrow('storage down'),
    ]);
    await driver.release();
    driver.failNext = true;
    await driver.release();
    await first;
    await failed;

    const next = outbox.append([testEvent('r/d')]);
    await driver.release();
    await next;
    const { items } = await outbox.read(undefined, 10);
    expect(items.map((i) => i.event.target.repository)).toEqual(['r/a', 'r/d']);
  });
});
