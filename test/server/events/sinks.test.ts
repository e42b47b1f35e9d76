import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../support/clock.js';
import { composeSink } from '../../../server/events/delivery.js';
import type { Event } from '../../../server/events/event.js';
import {
  DeliveryError,
  FilterSink,
  HttpSink,
  QueueSink,
  RetryingSink,
  SinkClosedError,
  type Ignore,
  type RetryOptions,
} from '../../../server/events/sinks.js';
import { startWebhook } from '../../support/webhook.js';
import { describeSink, RecordingSink, testEvent } from './sink-contract.js';

const idsOf = (bodies: Buffer[]) =>
  bodies.map((b) => (JSON.parse(b.toString()) as { events: Event[] }).events[0]!.id);

function retryOpts(clock: ManualClock, over: Partial<RetryOptions> = {}): RetryOptions {
  return {
    clock,
    backoffMs: 100,
    maxBackoffMs: 1600,
    threshold: 3,
    maxAttempts: 0,
    maxAgeMs: 0,
    deadLetter: async () => undefined,
    ...over,
  };
}

describeSink('http', async () => {
  const hook = await startWebhook();
  const sink = new HttpSink({
    url: hook.url,
    format: 'distribution',
    timeoutMs: 2000,
    clock: new ManualClock({ sleepAdvances: true }),
  });
  return {
    sink,
    received: () => idsOf(hook.received.map((r) => r.body)),
    cleanup: () => hook.stop(),
  };
});

describeSink('retrying', async () => {
  const rec = new RecordingSink();
  return {
    sink: new RetryingSink(rec, retryOpts(new ManualClock({ sleepAdvances: true }))),
    received: () => rec.ids,
  };
});

describeSink('queue', async () => {
  const rec = new RecordingSink();
  return { sink: new QueueSink(rec, 3), received: () => rec.ids };
});

describeSink('filter', async () => {
  const rec = new RecordingSink();
  return { sink: new FilterSink(rec, { actions: ['pull'] }), received: () => rec.ids };
});

describeSink('filter → queue → retry → http (composed)', async () => {
  const hook = await startWebhook();
  const { sink } = composeSink(
    { name: 'composed', url: hook.url },
    { clock: new ManualClock({ sleepAdvances: true }) },
    async () => undefined,
  );
  return {
    sink,
    received: () => idsOf(hook.received.map((r) => r.body)),
    cleanup: () => hook.stop(),
  };
});

describe('RetryingSink', () => {
  it('GIVEN a receiver failing 4 times WHEN an event is written THEN it is retried with doubling backoff and arrives once', async () => {
    const clock = new ManualClock({ sleepAdvances: true });
    const rec = new RecordingSink();
    rec.fail = (_e, call) => call <= 4;
    const sink = new RetryingSink(rec, retryOpts(clock));
    const e = testEvent();
    await sink.write(e);
    expect(rec.ids).toEqual([e.id]);
    expect(rec.calls).toBe(5);
    expect(clock.slept).toEqual([100, 200, 400, 800]);
  });

  it('GIVEN a long outage WHEN retrying THEN the delay is capped at maxBackoff and the breaker opens at the threshold', async () => {
    const clock = new ManualClock({ sleepAdvances: true });
    const rec = new RecordingSink();
    rec.fail = (_e, call) => call <= 8;
    const states: boolean[] = [];
    const sink = new RetryingSink(
      rec,
      retryOpts(clock, { observer: { retrying: (_a, _d, _err, open) => states.push(open) } }),
    );
    await sink.write(testEvent());
    expect(clock.slept).toEqual([100, 200, 400, 800, 1600, 1600, 1600, 1600]);
    expect(states).toEqual([false, false, true, true, true, true, true, true]);
    expect(sink.breakerOpen).toBe(false);
  });

  it('GIVEN maxAttempts 3 and a dead receiver WHEN events are written THEN each is dead-lettered after 3 attempts and the next is tried', async () => {
    const clock = new ManualClock({ sleepAdvances: true });
    const rec = new RecordingSink();
    rec.fail = (e) => e.target.repository === 'dead';
    const dead: [string, number][] = [];
    const sink = new RetryingSink(
      rec,
      retryOpts(clock, {
        maxAttempts: 3,
        deadLetter: async (e, attempts) => void dead.push([e.id, attempts]),
      }),
    );
    const a = testEvent('dead');
    const b = testEvent('alive');
    await sink.write(a);
    await sink.write(b);
    expect(dead).toEqual([[a.id, 3]]);
    expect(rec.ids).toEqual([b.id]);
  });

  it('GIVEN maxAge 1 s WHEN an event keeps failing THEN it is dead-lettered once older than that', async () => {
    const clock = new ManualClock({ sleepAdvances: true });
    const rec = new RecordingSink();
    rec.fail = () => true;
    let deadAfter = 0;
    const sink = new RetryingSink(
      rec,
      retryOpts(clock, { maxAgeMs: 1000, deadLetter: async (_e, n) => void (deadAfter = n) }),
    );
    const e = { ...testEvent(), timestamp: new Date(clock.now()).toISOString() };
    await sink.write(e);
    // 100+200+400 = 700 ms < 1 s; after the 800 ms wait the event is 1.5 s old.
    expect(deadAfter).toBe(5);
  });

  it('GIVEN a write waiting for its retry WHEN the sink closes THEN the write rejects so the caller keeps the event', async () => {
    const rec = new RecordingSink();
    rec.fail = () => true;
    let release: () => void = () => undefined;
    const clock = new ManualClock({ sleepAdvances: true });
    clock.sleep = (ms: number, signal?: AbortSignal) =>
      new Promise<void>((r) => {
        release = r;
        signal?.addEventListener('abort', () => r());
        void ms;
      });
    const sink = new RetryingSink(rec, retryOpts(clock));
    const w = sink.write(testEvent());
    await new Promise((r) => setImmediate(r));
    await sink.close();
    release();
    await expect(w).rejects.toBeInstanceOf(SinkClosedError);
  });
});

describe('HttpSink', () => {
  it('GIVEN a receiver answering 500 WHEN written THEN the write rejects with the status', async () => {
    const hook = await startWebhook();
    hook.status = 500;
    const sink = new HttpSink({
      url: hook.url,
      format: 'distribution',
      timeoutMs: 2000,
      clock: new ManualClock({ sleepAdvances: true }),
    });
    const err = await sink.write(testEvent()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).status).toBe(500);
    await sink.close();
    await hook.stop();
  });

  it('GIVEN nothing listening WHEN written THEN the write rejects without a status', async () => {
    const hook = await startWebhook();
    await hook.stop();
    const sink = new HttpSink({
      url: hook.url,
      format: 'distribution',
      timeoutMs: 2000,
      clock: new ManualClock({ sleepAdvances: true }),
    });
    const err = await sink.write(testEvent()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeliveryError);
    expect((err as DeliveryError).status).toBeUndefined();
  });
});

describe('FilterSink', () => {
  const cases: [Ignore, string, Event['action'], boolean][] = [
    [{ actions: ['pull'] }, 'a/b', 'pull', true],
    [{ actions: ['pull'] }, 'a/b', 'push', false],
    [{ repositories: ['team/*'] }, 'team/app', 'push', true],
    [{ repositories: ['team/*'] }, 'team/app/sub', 'push', false],
    [{ repositories: ['team/**'] }, 'team/app/sub', 'push', true],
    // One glob dialect with auth and retention: `?` is one character other than `/`.
    [{ repositories: ['team/app-?'] }, 'team/app-1', 'push', true],
    [{ repositories: ['team/app-?'] }, 'team/app-12', 'push', false],
    [{ mediaTypes: ['application/vnd.oci.image.manifest.v1+json'] }, 'x', 'push', true],
  ];
  it.each(cases)(
    'GIVEN ignore %j WHEN an event of %s action %s arrives THEN ignored is %s',
    (ignore, repo, action, dropped) => {
      expect(new FilterSink(new RecordingSink(), ignore).ignored(testEvent(repo, action))).toBe(
        dropped,
      );
    },
  );
});
