import { describe, expect, it } from 'vitest';
import { QUICK, runBench } from '../../bench/bench.js';
import { findBinary } from '../../bench/lib/registries.js';

// Keeps the benchmark harness (npm run bench) working: the quick profile runs every
// workload against Berth on a real MinIO (peers too with BERTH_BENCH_PEERS=1, those already
// built; none is built here). Numbers are recorded, never asserted: the only checks are that
// every Berth workload completed without errors, with the neutral clients (curl, wrk, containerd's fetcher) too,
// and that the table was printed. Workload 8 starts its own upstream (distribution v3) and a
// dedicated mirroring Berth; distribution's proxy mode runs only with the peers.
describe('bench --quick', () => {
  it('runs every workload for Berth with 0 errors and prints the table', async () => {
    // The neutral clients are real parts: missing, they fail the test (ensure.mjs installs wrk).
    expect(findBinary('curl'), 'curl on PATH').toBeDefined();
    expect(findBinary('wrk'), 'wrk on PATH (node test/tools/ensure.mjs bench)').toBeDefined();
    expect(findBinary('ctr'), 'ctr on PATH (node test/tools/ensure.mjs bench)').toBeDefined();
    // Workload 8's upstream is distribution v3 (ensure.mjs builds it in its default run).
    expect(findBinary('distribution'), 'distribution (node test/tools/ensure.mjs)').toBeDefined();
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
    expect([...workloads].sort()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
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
      'w8-mirror-first',
      'w8-mirror-warm',
      'w8-mirror-first-curl',
      'w8-mirror-warm-curl',
    ]) {
      expect(berth.some((r) => r.key === key)).toBe(true);
    }
    // Workload 8's direct pulls from the upstream are recorded under the upstream's name.
    const direct = result.rows.filter((r) => r.key.startsWith('w8-direct'));
    expect(new Set(direct.map((r) => r.key))).toEqual(new Set(['w8-direct', 'w8-direct-curl']));
    expect(direct.filter((r) => r.errors > 0).map((r) => r.errorSamples)).toEqual([]);
    // CPU per GiB pulled is reported for both clients.
    for (const key of [
      'w1-pull-first',
      'w1-pull',
      'w1-pull-first-curl',
      'w1-pull-curl',
      'w1-pull-first-ctr',
      'w1-pull-ctr',
      'w8-mirror-first',
      'w8-mirror-warm',
    ]) {
      expect(berth.find((r) => r.key === key)?.cpuPerGiB).toBeGreaterThanOrEqual(0);
    }
    // Every client's ceiling ran: against the trivial server (curl and containerd's fetcher
    // too) and curl straight from MinIO.
    const ceilings = result.ceiling.map(
      (r) => `${r.key}: ${r.errors} errors ${r.errorSamples.join(' | ')}`,
    );
    expect(ceilings.sort()).toEqual(
      ['ceil-ctr', 'ceil-curl', 'ceil-minio-curl', 'ceil-pull', 'ceil-push', 'ceil-small'].map(
        (k) => `${k}: 0 errors `,
      ),
    );
    expect(result.ceiling.every((r) => r.value > 0)).toBe(true);
    expect(result.table).toMatch(/^\| workload \| registry \| throughput/);
    expect(result.table).toContain('| berth |');
  });
});
