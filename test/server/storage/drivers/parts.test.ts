import { describe, expect, it } from 'vitest';
import { MIN_PART, PartBudget } from '../../../../server/storage/drivers/parts.js';

const MiB = 1024 * 1024;

describe('PartBudget', () => {
  it('GIVEN one writer WHEN it sizes its parts THEN it gets the configured size and two in flight', () => {
    const b = new PartBudget(128 * MiB, 16 * MiB);
    const leave = b.enter();
    expect(b.partSize(1)).toBe(16 * MiB);
    expect(b.inFlight()).toBe(2);
    leave();
  });

  it('GIVEN 1 to 12 writers on 128 MiB WHEN each fills one part and uploads its share THEN the total stays within the budget', () => {
    const b = new PartBudget(128 * MiB, 16 * MiB);
    const leaves: (() => void)[] = [];
    for (let n = 1; n <= 12; n++) {
      leaves.push(b.enter());
      const perWriter = (1 + b.inFlight()) * b.partSize(1);
      expect(n * perWriter, `${n} writers`).toBeLessThanOrEqual(128 * MiB);
      expect(b.partSize(1)).toBeGreaterThanOrEqual(MIN_PART);
    }
    // Eight writers (the benchmark's eight 1 GiB pushes): 8 MiB parts, one in flight each.
    for (const leave of leaves.splice(8)) leave();
    expect(b.partSize(1)).toBe(8 * MiB);
    expect(b.inFlight()).toBe(1);
    for (const leave of leaves) leave();
    expect(b.inFlight()).toBe(2);
  });

  it('GIVEN eight writers on the default 64 MiB WHEN sizing THEN each fills 8 MiB and uploads it before filling the next', () => {
    const b = new PartBudget(64 * MiB, 16 * MiB);
    for (let i = 0; i < 8; i++) b.enter();
    expect(b.inFlight()).toBe(0);
    expect(b.partSize(1)).toBe(8 * MiB);
    expect(8 * b.partSize(1)).toBeLessThanOrEqual(64 * MiB);
  });

  it('GIVEN more writers than the budget holds WHEN sizing THEN parts stay at the S3 minimum of 5 MiB', () => {
    const b = new PartBudget(16 * MiB, 16 * MiB);
    for (let i = 0; i < 40; i++) b.enter();
    expect(b.partSize(1)).toBe(MIN_PART);
  });

  it('GIVEN a stream of unknown length WHEN it passes 1,000-part marks THEN the floor doubles, so 10,000 parts hold terabytes', () => {
    const b = new PartBudget(128 * MiB, 16 * MiB);
    for (let i = 0; i < 20; i++) b.enter();
    expect(b.partSize(1000)).toBe(5 * MiB);
    expect(b.partSize(1001)).toBe(10 * MiB);
    expect(b.partSize(9001)).toBe(5 * MiB * 512);
    let total = 0;
    for (let p = 1; p <= 10_000; p++) total += b.partSize(p);
    expect(total).toBeGreaterThan(4 * 1024 * 1024 * MiB);
  });

  it('GIVEN a known length needing bigger parts WHEN sizing THEN the writer’s floor wins', () => {
    const b = new PartBudget(128 * MiB, 16 * MiB);
    b.enter();
    expect(b.partSize(1, 64 * MiB)).toBe(64 * MiB);
  });

  it('GIVEN a returned buffer WHEN the same size is taken again THEN it is reused, and idle buffers stay under half the budget', () => {
    const b = new PartBudget(32 * MiB, 16 * MiB);
    const one = b.take(8 * MiB);
    b.give(one);
    expect(b.take(8 * MiB)).toBe(one);
    const bufs = [b.take(8 * MiB), b.take(8 * MiB), b.take(8 * MiB)];
    for (const x of bufs) b.give(x);
    // Only two of 8 MiB fit in 16 MiB of idle buffers.
    const again = [b.take(8 * MiB), b.take(8 * MiB), b.take(8 * MiB)];
    expect(again.filter((x) => bufs.includes(x))).toHaveLength(2);
  });
});
