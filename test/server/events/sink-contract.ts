import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Event } from '../../../server/events/event.js';
import { SinkClosedError, type Sink } from '../../../server/events/sinks.js';

/** SinkUnderTest is a sink and a view of what reached its receiver. */
export interface SinkUnderTest {
  sink: Sink;
  /** received returns the ids of events that reached the receiver, in arrival order. */
  received(): string[];
  cleanup?(): Promise<void>;
}

export function testEvent(repository = 'contract/repo', action: Event['action'] = 'push'): Event {
  return {
    id: randomUUID(),
    timestamp: new Date().toISOString(),
    action,
    target: {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'a'.repeat(64)}`,
      size: 10,
      length: 10,
      repository,
    },
    request: { id: 'r', addr: '127.0.0.1', host: 'localhost', method: 'PUT', useragent: 't' },
    actor: {},
    source: { addr: 'test:5000', instanceID: 'i' },
  };
}

/**
 * describeSink runs the one sink contract (see `Sink` in server/events/sinks.ts) against a
 * sink built by `make` on a receiver that accepts everything.
 */
export function describeSink(name: string, make: () => Promise<SinkUnderTest>): void {
  describe(`sink contract: ${name}`, () => {
    let t: SinkUnderTest;
    beforeEach(async () => {
      t = await make();
    });
    afterEach(async () => {
      await t.sink.close();
      await t.cleanup?.();
    });

    it('GIVEN one event WHEN written THEN the write resolves after the receiver got it', async () => {
      const e = testEvent();
      await t.sink.write(e);
      expect(t.received()).toEqual([e.id]);
    });

    it('GIVEN many events written without waiting WHEN all resolve THEN they arrived once each, in write order', async () => {
      const events = Array.from({ length: 25 }, () => testEvent());
      await Promise.all(events.map((e) => t.sink.write(e)));
      expect(t.received()).toEqual(events.map((e) => e.id));
    });

    it('GIVEN a closed sink WHEN written THEN the write rejects with SinkClosedError and close is idempotent', async () => {
      await t.sink.close();
      await expect(t.sink.write(testEvent())).rejects.toBeInstanceOf(SinkClosedError);
      await t.sink.close();
      expect(t.received()).toEqual([]);
    });

    it('GIVEN writes in flight WHEN the sink is closed THEN close waits for them to be handled', async () => {
      const events = Array.from({ length: 5 }, () => testEvent());
      const writes = events.map((e) => t.sink.write(e));
      await t.sink.close();
      await Promise.all(writes);
      expect(t.received()).toEqual(events.map((e) => e.id));
    });
  });
}

/** RecordingSink is the terminal sink of in-memory contract runs; `fail` makes it throw. */
export class RecordingSink implements Sink {
  readonly ids: string[] = [];
  /** fail, when set, decides per call whether this write fails. */
  fail: ((e: Event, call: number) => boolean) | undefined;
  calls = 0;
  private closed = false;

  async write(e: Event): Promise<void> {
    if (this.closed) throw new SinkClosedError();
    this.calls++;
    await Promise.resolve();
    if (this.fail?.(e, this.calls)) throw new Error('receiver failed');
    this.ids.push(e.id);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
