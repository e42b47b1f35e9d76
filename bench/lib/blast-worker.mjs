// One load-generator thread for small requests (see blast() in load.ts): its own keep-alive
// pool, `concurrency` lanes, `count` requests, latency per request. Bodies are discarded.
import { parentPort, workerData } from 'node:worker_threads';
import * as http from 'node:http';

const { base, requests, count, concurrency, ok, follow, offset, budgetMs } = workerData;
const u = new URL(base);
const agent = new http.Agent({
  keepAlive: true,
  maxSockets: concurrency,
  maxFreeSockets: concurrency,
});
const other = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const okSet = new Set(ok);

function once(url, method, headers, ag) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        headers,
        agent: ag,
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () => resolve({ status: res.statusCode, location: res.headers.location }));
        res.on('error', reject);
      },
    );
    req.setTimeout(120_000, () => req.destroy(new Error('timeout after 120 s')));
    req.on('error', reject);
    req.end();
  });
}

const latencies = [];
let errors = 0;
const errorSamples = [];
let next = 0;
const t0 = performance.now();
async function lane() {
  for (;;) {
    if (budgetMs !== undefined && performance.now() - t0 > budgetMs) return;
    const i = next++;
    if (i >= count) return;
    const r = requests[(i + offset * 9973) % requests.length];
    const t = performance.now();
    try {
      let res = await once(new URL(r.path, u), r.method, r.headers ?? {}, agent);
      if (follow && res.status === 307 && res.location) {
        res = await once(new URL(res.location, u), r.method, {}, other);
      }
      if (!okSet.has(res.status)) throw new Error(`${r.method} ${r.path}: HTTP ${res.status}`);
      latencies.push(performance.now() - t);
    } catch (err) {
      errors++;
      const msg = err instanceof Error ? err.message : String(err);
      if (errorSamples.length < 5 && !errorSamples.includes(msg)) errorSamples.push(msg);
    }
  }
}
await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
const wallMs = performance.now() - t0;
agent.destroy();
other.destroy();
// Stopped by the budget: the ops done, and how many were asked for.
const done = next < count ? { ops: latencies.length + errors, planned: count } : { ops: count };
parentPort.postMessage({ ...done, errors, errorSamples, wallMs, latencies, bytes: 0 });
