/**
 * The operator's own metrics (named after controller-runtime's) and its probe endpoints:
 * /metrics, /healthz (the process runs) and /readyz (the caches are synced, or this replica
 * is a standby waiting for the lease).
 */
import { createServer, type Server } from 'node:http';
import {
  Counter,
  Gauge,
  Histogram,
  Registry as PromRegistry,
  collectDefaultMetrics,
} from 'prom-client';

export class OperatorMetrics {
  readonly registry = new PromRegistry();
  readonly reconcileTotal = new Counter({
    name: 'berth_operator_reconcile_total',
    help: 'Reconciles by result (success, error, requeue).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'berth_operator_reconcile_errors_total',
    help: 'Reconciles that failed and were retried with backoff.',
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: 'berth_operator_reconcile_time_seconds',
    help: 'Time per reconcile.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'berth_operator_workqueue_depth',
    help: 'Keys waiting in the work queue.',
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: 'berth_operator_leader',
    help: '1 while this replica holds the leader lease.',
    registers: [this.registry],
  });
  readonly watchRestarts = new Counter({
    name: 'berth_operator_watch_restarts_total',
    help: 'Watches restarted after an error.',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'berth_operator_' });
  }
}

/**
 * serveProbes answers /metrics, /healthz and /readyz on `port` (0: any) at `host`: /readyz is
 * 200 while `ready()`, /healthz while `healthy()` (default always), else 503.
 */
export async function serveProbes(
  metrics: OperatorMetrics,
  ready: () => boolean,
  host: string,
  port: number,
  healthy: () => boolean = () => true,
): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'unhealthy');
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok' : 'not ready');
    } else if (path === '/metrics') {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
}
