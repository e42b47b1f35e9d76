// `npm run bench` — Berth side by side with distribution v3, distribution v2.8 (Debian
// docker-registry) and zot on one MinIO (issue #5). See docs/benchmarks.md.
//
//   npm run bench                      full profile (1 GiB blobs, 10k repos/tags; ~30+ min)
//   npm run bench -- --quick           seconds per registry (what CI runs)
//   options: --only berth,distribution-v3   --workloads 1,3   --no-build
//            --tsx (run server/cli.ts through tsx instead of compiling it to node_modules/.cache/berth-bench)
//            --berth-workers N   --cpu-prof DIR (Berth runs with --cpu-prof into DIR)
//            --berth-node-args "--flag …" (more Node.js flags for Berth)
//            BERTH_* variables in the environment are passed to Berth (try a setting)
//            --out FILE.json (default: $TMPDIR/berth-bench-<time>.json)
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FULL, QUICK, runBench } from './bench.js';
import { buildBerth } from './lib/registries.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}
const has = (name: string) => process.argv.includes(name);

// Its temporary folders (blob caches of GBs among them) go when the run ends, also on an
// error (the exit listener of test/support/scratch.ts) or when interrupted: exit on a signal.
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const)
  process.once(signal, () => process.exit(code));

const profile = has('--quick') ? QUICK : FULL;
if (!has('--no-build')) {
  // Peers that cannot be had are reported and the bench runs without them.
  const r = spawnSync(process.execPath, ['test/tools/ensure.mjs', 'minio', 'bench', 'peers'], {
    stdio: 'inherit',
  });
  if (r.status !== 0) process.stderr.write('bench: some peers could not be built (above)\n');
}
// Berth runs compiled (like `npm run build`), unless --tsx or the tree does not compile.
let compiled: string | undefined;
if (!has('--tsx')) {
  const b = buildBerth();
  if (b.error)
    process.stderr.write(
      `bench: server/ does not compile, running Berth through tsx:\n${b.error}\n`,
    );
  compiled = b.cli;
}
const prof = arg('--cpu-prof');
if (prof) mkdirSync(prof, { recursive: true });
const result = await runBench({
  profile,
  registries: arg('--only')?.split(','),
  workloads: arg('--workloads')?.split(',').map(Number),
  berthCompiled: compiled,
  berthWorkers: arg('--berth-workers') ? Number(arg('--berth-workers')) : undefined,
  berthNodeArgs: [
    ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
    ...(arg('--berth-node-args')?.split(' ').filter(Boolean) ?? []),
  ],
});
const out = arg('--out') ?? join(tmpdir(), `berth-bench-${Date.now()}.json`);
writeFileSync(out, JSON.stringify(result, null, 2));
process.stdout.write('\n' + result.table + '\n');
for (const r of result.registries.filter((x) => !x.ran)) {
  process.stdout.write(`\nnot run: ${r.name}: ${r.why}\n`);
}
process.stdout.write(`\nresults: ${out}\n`);
