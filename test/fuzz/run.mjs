#!/usr/bin/env node
// run.mjs runs the parser fuzzers for longer than CI does, with a fresh seed (printed, so a
// failure can be replayed with FUZZ_SEED=<seed>):
//   node test/fuzz/run.mjs [runs]        (default 20000 cases per property)
import { spawnSync } from 'node:child_process';

const runs = process.argv[2] ?? process.env.FUZZ_RUNS ?? '20000';
const seed = process.env.FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
process.stderr.write(`fuzz: FUZZ_SEED=${seed} FUZZ_RUNS=${runs}\n`);
const r = spawnSync(
  'npx',
  ['vitest', 'run', '--project', 'unit', 'test/fuzz/', '--testTimeout', '0'],
  { stdio: 'inherit', env: { ...process.env, FUZZ_SEED: seed, FUZZ_RUNS: runs } },
);
process.exit(r.status ?? 1);
