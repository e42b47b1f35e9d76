import { describe, expect, it } from 'vitest';
import { defaults } from '../../../server/config/load.js';
import { ManualClock } from '../../support/clock.js';
import { EventsRuntime } from '../../../server/events/runtime.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { silentLogger } from '../../../server/util/log.js';
import { startWebhook } from '../../support/webhook.js';
import { testEvent } from './sink-contract.js';

describe('outbox retention', () => {
  it('GIVEN entries past the retention WHEN pruning THEN only those every endpoint has received are deleted', async () => {
    const hook = await startWebhook();
    const driver = new InMemoryDriver();
    const clock = new ManualClock({ sleepAdvances: true });
    const rt = new EventsRuntime(
      {
        ...defaults().notifications,
        settleMillis: 0,
        retentionHours: 1,
        endpoints: [{ name: 'hook', url: hook.url }],
      },
      driver,
      silentLogger,
      { listenAddr: '127.0.0.1:5000', clock },
    );
    const logKeys = () => Object.keys(driver.snapshot()).filter((k) => k.startsWith('events/log/'));
    for (let i = 0; i < 3; i++) {
      await rt.outbox.append([testEvent()]);
      clock.advance(1);
    }
    const endpoint = rt.notifier.endpoints[0]!;
    expect(await endpoint.tick(2)).toBe(2);
    await rt.outbox.append([testEvent()]);
    expect(await rt.prune()).toBe(0); // nothing is an hour old yet
    clock.advance(3_600_000);
    // Delivered: entries 1 and 2 (the cursor is in entry 2, which is kept); not: 3 and 4.
    expect(await rt.prune()).toBe(1);
    expect(logKeys()).toHaveLength(3);
    expect(await endpoint.tick()).toBe(2);
    // Only the entry holding the cursor stays.
    expect(await rt.prune()).toBe(2);
    expect(logKeys()).toHaveLength(1);
    expect(hook.accepted).toHaveLength(4);
    await hook.stop();
  });
});
