import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';

/** Sample is the outcome of one timed batch of operations. */
export interface Sample {
  ops: number;
  errors: number;
  /** errorSamples holds up to five distinct error messages. */
  errorSamples: string[];
  wallMs: number;
  /** latencies in ms, one per successful op. */
  latencies: number[];
  /** bytes moved (for MB/s), when the workload counts them. */
  bytes: number;
  /** planned is the op count asked for, when the time budget stopped the batch short. */
  planned?: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(s: Sample) {
  const sorted = [...s.latencies].sort((a, b) => a - b);
  return {
    opsPerSec: (s.ops - s.errors) / (s.wallMs / 1000),
    mbPerSec: s.bytes / 1e6 / (s.wallMs / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

function addError(s: Sample, err: unknown) {
  s.errors++;
  const msg = err instanceof Error ? err.message : String(err);
  if (s.errorSamples.length < 5 && !s.errorSamples.includes(msg)) s.errorSamples.push(msg);
}

/**
 * runConcurrent runs `op(i)` for i in [0, count) with at most `concurrency` in flight, on
 * this thread (right for big transfers, where the work is I/O). `op` returns bytes moved.
 * After `budgetMs` no new op starts: the sample counts the ops done (`planned` says how
 * many were asked for), so one slow registry cannot hold the run for hours.
 */
export async function runConcurrent(
  count: number,
  concurrency: number,
  op: (i: number) => Promise<number | void>,
  budgetMs = Infinity,
): Promise<Sample> {
  const s: Sample = { ops: count, errors: 0, errorSamples: [], wallMs: 0, latencies: [], bytes: 0 };
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    for (;;) {
      if (performance.now() - t0 > budgetMs) return;
      const i = next++;
      if (i >= count) return;
      const t = performance.now();
      try {
        const b = await op(i);
        s.latencies.push(performance.now() - t);
        if (typeof b === 'number') s.bytes += b;
      } catch (err) {
        addError(s, err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  s.wallMs = performance.now() - t0;
  if (next < count) {
    s.planned = count;
    s.ops = s.latencies.length + s.errors;
  }
  return s;
}

/** BlastRequest is one small request a blast worker sends (bodies are discarded). */
export interface BlastRequest {
  method: 'GET' | 'HEAD';
  path: string;
  headers?: Record<string, string>;
}

export interface BlastSpec {
  base: string;
  requests: BlastRequest[];
  /** total requests, spread over the threads; request k uses requests[k % length]. */
  count: number;
  concurrency: number;
  /** statuses that count as success. */
  ok: number[];
  /** follow a 307 to another host (counted in the latency). */
  follow?: boolean;
  /** no request starts after this many ms (see runConcurrent). */
  budgetMs?: number;
}

const WORKER = fileURLToPath(new URL('./blast-worker.mjs', import.meta.url));

/**
 * blast sends many small requests from `threads` worker threads (each with its own
 * keep-alive pool and a share of the concurrency), so that the client is not the bottleneck
 * of the small-request workloads. Latency is measured per request in the workers.
 */
export async function blast(spec: BlastSpec, threads = 2): Promise<Sample> {
  threads = Math.max(1, Math.min(threads, spec.concurrency));
  const t0 = performance.now();
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, t) => {
      const share = Math.floor(spec.count / threads) + (t < spec.count % threads ? 1 : 0);
      const conc =
        Math.floor(spec.concurrency / threads) + (t < spec.concurrency % threads ? 1 : 0);
      return new Promise<Sample>((resolve, reject) => {
        const w = new Worker(WORKER, {
          workerData: { ...spec, count: share, concurrency: conc, offset: t },
          execArgv: [],
        });
        w.once('message', (m: Sample) => {
          resolve(m);
          void w.terminate();
        });
        w.once('error', reject);
      });
    }),
  );
  const s: Sample = {
    ops: 0,
    errors: 0,
    errorSamples: [],
    wallMs: performance.now() - t0,
    latencies: [],
    bytes: 0,
  };
  for (const p of parts) {
    if (p.planned !== undefined) s.planned = spec.count;
    s.ops += p.ops;
    s.errors += p.errors;
    s.bytes += p.bytes;
    for (const e of p.errorSamples) if (s.errorSamples.length < 5) s.errorSamples.push(e);
    for (const l of p.latencies) s.latencies.push(l);
  }
  // Wall time: the slowest worker's (startup of the workers is not load).
  s.wallMs = Math.max(...parts.map((p) => p.wallMs));
  return s;
}
