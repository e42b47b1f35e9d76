import { describe, expect, it } from 'vitest';
import { QUICK, runBench } from '../../bench/bench.js';
import { findBinary } from '../../bench/lib/registries.js';

// Keeps the benchmark harness (npm run bench) working: the quick profile runs every
// workload against Berth on a real MinIO (peers too with BERTH_BENCH_PEERS=1, those already
// built; none is built here). Numbers are recorded, never asserted: the only checks are that
// every Berth workload completed without errors, with the neutral clients (curl, wrk, containerd's fetcher) too,
// and that the table was printed.
describe('bench --quick', () => {
  it('runs every workload for Berth with 0 errors and prints the table', async () => {
    // The neutral clients are real parts: missing, they fail the test (ensure.mjs installs wrk).
    expect(findBinary('curl'), 'curl on PATH').toBeDefined();
    expect(findBinary('wrk'), 'wrk on PATH (node test/tools/ensure.mjs bench)').toBeDefined();
    expect(findBinary('ctr'), 'ctr on PATH (node test/tools/ensure.mjs bench)').toBeDefined();
    const lines: string[] = [];
    const result = await runBench({
      profile: QUICK,
      registries: process.env.BERTH_BENCH_PEERS === '1' ? undefined : ['berth'],
      log: (m) => lines.push(m),
    });
    process.stdout.write(result.table + '\n');

    const berth = result.rows.filter((r) => r.registry === 'berth');
    const failed = berth.filter((r) => r.errors > 0);
    expect(failed.map((r) => `${r.key}: ${r.errorSamples.join(' | ')}`)).toEqual([]);
    const workloads = new Set(berth.map((r) => r.workload));
    expect([...workloads].sort()).toEqual([1, 2, 3, 4, 5, 6, 7]);
    for (const key of [
      'w1-push-stream',
      'w1-push-chunked',
      'w1-pull-first',
      'w1-pull',
      'w1-pull-first-curl',
      'w1-pull-curl',
      'w1-pull-first-ctr',
      'w1-pull-ctr',
      'w2-push',
      'w2-pull',
      'w3-get-tag-warm',
      'w3-get-tag-warm-wrk',
      'w3-get-tag-warm-2r',
      'w3-get-tag-warm-3r',
      'w3-blob-head-cold',
      'w4-catalog',
      'w4-tags-walk',
      'w5-two-replicas',
      'w6-storm',
      'w7-8x-push',
    ]) {
      expect(berth.some((r) => r.key === key)).toBe(true);
    }
    // CPU per GiB pulled is reported for both clients.
    for (const key of [
      'w1-pull-first',
      'w1-pull',
      'w1-pull-first-curl',
      'w1-pull-curl',
      'w1-pull-first-ctr',
      'w1-pull-ctr',
    ]) {
      expect(berth.find((r) => r.key === key)?.cpuPerGiB).toBeGreaterThanOrEqual(0);
    }
    expect(result.table).toMatch(/^\| workload \| registry \| throughput/);
    expect(result.table).toContain('| berth |');
  });
});
