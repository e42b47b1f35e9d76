#!/usr/bin/env node
// ensure.mjs builds or finds the real parts the tests need (MinIO, the OCI conformance
// suites, skopeo) and caches them under $BERTH_TOOLS (default ~/.cache/berth/tools).
// A tool already on PATH or already in the cache is not built again. Exits non-zero with
// the failing command when a part cannot be had: tests never skip a missing real part.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { homedir, tmpdir } from 'node:os';
import { TOOLS } from './versions.mjs';

const root = process.env.BERTH_TOOLS ?? join(homedir(), '.cache', 'berth', 'tools');
const bin = join(root, 'bin');
mkdirSync(bin, { recursive: true });

function log(msg) {
  process.stderr.write(`ensure: ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed with ${r.status ?? r.signal}`);
  }
}

function stampOk(name, version) {
  const stamp = join(bin, `.${name}.version`);
  return existsSync(join(bin, name)) && existsSync(stamp) && readFileSync(stamp, 'utf8') === version;
}

function stamp(name, version) {
  writeFileSync(join(bin, `.${name}.version`), version);
}

const goEnv = { ...process.env, GOFLAGS: '-mod=mod', CGO_ENABLED: '0', GOTOOLCHAIN: 'local' };

function goInstall(name, pkg, version) {
  if (stampOk(name, version)) return;
  log(`building ${name} from ${pkg}@${version} (first run only)`);
  run('go', ['install', `${pkg}@${version}`], { env: { ...goEnv, GOBIN: bin } });
  stamp(name, version);
}

function goModuleDir(mod, version) {
  const out = execFileSync('go', ['mod', 'download', '-json', `${mod}@${version}`], {
    env: goEnv,
    cwd: tmpdir(),
    encoding: 'utf8',
  });
  return JSON.parse(out).Dir;
}

function conformance(name, version) {
  if (stampOk(name, version)) return;
  log(`building ${name} from ${TOOLS.conformanceModule}@${version} (first run only)`);
  const src = goModuleDir(TOOLS.conformanceModule, version);
  // The module cache is read-only; build from a writable copy so go.sum can be completed.
  const work = mkdtempSync(join(tmpdir(), `${name}-`));
  run('cp', ['-r', `${src}/.`, work]);
  run('chmod', ['-R', 'u+w', work]);
  run('go', ['mod', 'download'], { cwd: work, env: goEnv });
  run('go', ['build', '-o', join(bin, name), '.'], { cwd: work, env: goEnv });
  stamp(name, version);
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function aptInstall(pkg, cmd) {
  if (onPath(cmd)) return;
  log(`installing ${pkg} from Debian`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

const wanted = new Set(process.argv.slice(2));
const want = (n) => wanted.size === 0 || wanted.has(n);
try {
  if (want('minio')) goInstall('minio', 'github.com/minio/minio', TOOLS.minio);
  if (want('conformance')) {
    conformance('oci-conformance', TOOLS.conformanceMain, 'build');
  }
  if (want('skopeo')) aptInstall('skopeo', 'skopeo');
} catch (err) {
  log(`FAILED: ${err.message}`);
  process.exit(1);
}
log(`tools ready in ${bin}`);
