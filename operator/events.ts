/**
 * EventRecorder writes events.k8s.io/v1 Events about a Registry. The controller records one
 * per condition transition, never per reconcile; failures to record are logged, not thrown.
 */
import { EventsV1Api, type KubeConfig } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { microTime, realClock, type Clock } from './clock.js';
import type { Logger } from './log.js';
import { API_VERSION, FIELD_MANAGER, KIND, type Registry } from './types.js';

export interface RecordedEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  action: string;
  note: string;
}

export interface EventSink {
  record(r: Registry, e: RecordedEvent): Promise<void>;
}

export class EventRecorder implements EventSink {
  private readonly api: EventsV1Api;
  private readonly clock: Clock;

  constructor(
    kc: KubeConfig,
    private readonly instance: string,
    private readonly log: Logger,
    clock?: Clock,
  ) {
    this.api = kc.makeApiClient(EventsV1Api);
    this.clock = clock ?? realClock;
  }

  async record(r: Registry, e: RecordedEvent): Promise<void> {
    const namespace = r.metadata.namespace;
    try {
      await this.api.createNamespacedEvent({
        namespace,
        body: {
          apiVersion: 'events.k8s.io/v1',
          kind: 'Event',
          metadata: { name: `${r.metadata.name}.${randomBytes(6).toString('hex')}`, namespace },
          eventTime: microTime(this.clock.now()),
          reportingController: `berth.dev/${FIELD_MANAGER}`,
          reportingInstance: this.instance,
          action: e.action,
          reason: e.reason,
          note: e.note.slice(0, 1000),
          type: e.type,
          regarding: {
            apiVersion: API_VERSION,
            kind: KIND,
            name: r.metadata.name,
            namespace,
            uid: r.metadata.uid,
          },
        },
      });
    } catch (err) {
      this.log.warn(
        { registry: r.metadata.name, reason: e.reason, err: String(err) },
        'event not recorded',
      );
    }
  }
}
