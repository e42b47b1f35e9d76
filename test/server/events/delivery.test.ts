import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaults } from '../../../server/config/load.js';
import type { EndpointConfig } from '../../../server/config/types.js';
import { ManualClock } from '../../support/clock.js';
import { EndpointDelivery } from '../../../server/events/delivery.js';
import type { Event } from '../../../server/events/event.js';
import { Outbox } from '../../../server/events/outbox.js';
import { Metrics } from '../../../server/metrics/metrics.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { silentLogger } from '../../../server/util/log.js';
import { startWebhook, type Webhook } from '../../support/webhook.js';
import { testEvent } from './sink-contract.js';

/** HookedClock is a manual clock whose sleeps advance it and that runs `onSleep` before each sleep returns. */
class HookedClock extends ManualClock {
  onSleep: (n: number) => void = () => undefined;
  constructor() {
    super({ sleepAdvances: true });
  }
  override async sleep(ms: number): Promise<void> {
    await super.sleep(ms);
    this.onSleep(this.slept.length);
  }
}

const idOf = (b: Buffer) => (JSON.parse(b.toString()) as { events: Event[] }).events[0]!.id;

async function metricValue(m: Metrics, name: string, labels: Record<string, string>) {
  const metric = (await m.registry.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (
    metric?.values as { labels: Record<string, string>; value: number }[] | undefined
  )?.find((x) => Object.entries(labels).every(([k, val]) => String(x.labels[k]) === val));
  return v?.value;
}

describe('endpoint delivery from the outbox', () => {
  let driver: InMemoryDriver;
  let clock: HookedClock;
  let outbox: Outbox;
  let hook: Webhook;
  let metrics: Metrics;

  beforeEach(async () => {
    driver = new InMemoryDriver();
    clock = new HookedClock();
    outbox = new Outbox(driver, clock);
    hook = await startWebhook();
    metrics = new Metrics(defaults().metrics, { processMetrics: false });
  });
  afterEach(async () => {
    await hook.stop();
  });

  const delivery = (over: Partial<EndpointConfig> = {}, holder = 'replica-a') =>
    new EndpointDelivery(
      { name: 'hook', url: hook.url, backoffMillis: 100, threshold: 3, ...over },
      {
        driver,
        outbox,
        clock,
        log: silentLogger,
        holder,
        settleMs: 0,
        pollMs: 10,
        leaseMs: 10_000,
        observer: metrics.observer('hook'),
      },
    );

  async function appendInterleaved(n: number): Promise<Event[]> {
    const events: Event[] = [];
    for (let i = 0; i < n; i++) {
      const e = testEvent(i % 2 === 0 ? 'team/a' : 'team/b');
      events.push(e);
      await outbox.append([e]);
      clock.advance(1);
    }
    return events;
  }

  it('GIVEN the endpoint down for 5 attempts WHEN delivering THEN events retry with backoff and all arrive once, in order, when it returns', async () => {
    const events = await appendInterleaved(6);
    hook.status = 503;
    clock.onSleep = (n) => {
      if (n === 5) hook.status = 200;
    };
    const d = delivery();
    metrics.watch({ deliveries: [d] });
    expect(await d.tick()).toBe(6);
    expect(clock.slept).toEqual([100, 200, 400, 800, 1600]);
    expect(hook.received.filter((r) => r.status === 503).map((r) => idOf(r.body))).toEqual(
      Array(5).fill(events[0]!.id),
    );
    expect(hook.accepted.map((r) => idOf(r.body))).toEqual(events.map((e) => e.id));
    expect(
      await metricValue(metrics, 'registry_notifications_events_total', { type: 'Failures' }),
    ).toBe(5);
    expect(
      await metricValue(metrics, 'registry_notifications_events_total', { type: 'Successes' }),
    ).toBe(6);
    expect(
      await metricValue(metrics, 'registry_notifications_status_total', {
        code: '503 Service Unavailable',
      }),
    ).toBe(5);
    expect(await metricValue(metrics, 'berth_events_outbox_depth', { endpoint: 'hook' })).toBe(0);
    // Nothing is delivered twice: the cursor moved past everything.
    expect(await d.tick()).toBe(0);
    expect(hook.accepted).toHaveLength(6);
  });

  it('GIVEN maxAttempts 3 and an endpoint that never recovers WHEN delivering THEN each event lands in the dead-letter record, the cursor moves on and the metric counts them', async () => {
    const events = await appendInterleaved(2);
    hook.status = 500;
    const d = delivery({ maxAttempts: 3 });
    metrics.watch({ deliveries: [d] });
    expect(await d.tick()).toBe(2);
    const dead = await d.deadLetters();
    expect(dead.map((x) => x.event.id)).toEqual(events.map((e) => e.id));
    expect(dead[0]).toMatchObject({
      endpoint: 'hook',
      attempts: 3,
      error: 'endpoint answered 500',
    });
    expect(hook.received).toHaveLength(6);
    expect(
      await metricValue(metrics, 'berth_events_dead_letters_total', { endpoint: 'hook' }),
    ).toBe(2);
    expect(await d.tick()).toBe(0);
    // Later events still flow once the endpoint is back.
    hook.status = 200;
    const [later] = await appendInterleaved(1);
    expect(await d.tick()).toBe(1);
    expect(hook.accepted.map((r) => idOf(r.body))).toEqual([later!.id]);
  });

  it('GIVEN an endpoint ignoring pulls WHEN pulls and pushes are delivered THEN only pushes are sent and the cursor passes the pulls', async () => {
    const push = testEvent('team/a', 'push');
    const pulls = [testEvent('team/a', 'pull'), testEvent('team/b', 'pull')];
    await outbox.append([pulls[0]!, push, pulls[1]!]);
    const d = delivery({ ignore: { actions: ['pull'] } });
    expect(await d.tick()).toBe(3);
    expect(hook.accepted.map((r) => idOf(r.body))).toEqual([push.id]);
    expect(await d.cursor()).toEqual({ entry: expect.any(String) as string, index: 2 });
    expect(await d.tick()).toBe(0);
  });

  it('GIVEN undelivered events WHEN metrics are scraped THEN depth and oldest age come from storage', async () => {
    hook.status = 500;
    await appendInterleaved(3);
    const d = delivery();
    metrics.watch({ deliveries: [d] });
    clock.advance(60_000);
    expect(await metricValue(metrics, 'berth_events_outbox_depth', { endpoint: 'hook' })).toBe(3);
    expect(
      await metricValue(metrics, 'registry_notifications_pending_total', { endpoint: 'hook' }),
    ).toBe(3);
    expect(
      await metricValue(metrics, 'berth_events_oldest_undelivered_seconds', { endpoint: 'hook' }),
    ).toBe(60.003);
  });

  it('GIVEN two replicas on one store WHEN both run delivery rounds while events arrive THEN each event is delivered once, in order', async () => {
    const a = delivery({}, 'replica-a');
    const b = delivery({}, 'replica-b');
    const all: Event[] = [];
    for (let round = 0; round < 5; round++) {
      all.push(...(await appendInterleaved(3)));
      await Promise.all([a.tick(), b.tick()]);
      clock.advance(1000);
    }
    expect(hook.accepted.map((r) => idOf(r.body))).toEqual(all.map((e) => e.id));
  });

  it('GIVEN the holder stops WHEN the other replica runs THEN it takes over at the cursor without resending', async () => {
    const a = delivery({}, 'replica-a');
    const b = delivery({}, 'replica-b');
    const first = await appendInterleaved(2);
    expect(await a.tick()).toBe(2);
    expect(await b.tick()).toBe(0);
    await a.stop();
    const second = await appendInterleaved(2);
    expect(await b.tick()).toBe(2);
    expect(hook.accepted.map((r) => idOf(r.body))).toEqual([...first, ...second].map((e) => e.id));
  });
});
