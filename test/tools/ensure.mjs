#!/usr/bin/env node
// ensure.mjs builds or finds the real parts the tests need (MinIO, the OCI conformance
// suite, skopeo, crane, the control plane and Helm, metrics-server, the real node: kubelet, kube-scheduler,
// kube-proxy, containerd, runc, the CNI plugins, iptables and a pause program, the bench's
// neutral load generator wrk, and the web UI tests' browser, Debian's chromium) and caches them
// under $BERTH_TOOLS (default ~/.cache/berth/tools).
// A tool already on PATH or already in the cache is not built again. Exits non-zero with
// the failing command when a part cannot be had: tests never skip a missing real part.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
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
  return (
    existsSync(join(bin, name)) && existsSync(stamp) && readFileSync(stamp, 'utf8') === version
  );
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
  try {
    run('cp', ['-r', `${src}/.`, work]);
    run('chmod', ['-R', 'u+w', work]);
    run('go', ['mod', 'download'], { cwd: work, env: goEnv });
    run('go', ['build', '-o', join(bin, name), '.'], { cwd: work, env: goEnv });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  stamp(name, version);
}

/**
 * wrapperBuild builds `pkgs` of a module that cannot be `go install`ed (its go.mod has
 * replace directives) from a throwaway wrapper module generated here: it requires `mod`
 * at `version`, and `extraGoMod` adds lines (replace, godebug). The outputs land in bin.
 */
function wrapperBuild(name, version, mod, goMod, pkgs, ldflags = '') {
  if (stampOk(name, version)) return;
  log(`building ${pkgs.map(([, out]) => out).join(', ')} from ${mod}@${version} (first run only)`);
  const work = mkdtempSync(join(tmpdir(), `berth-${name}-`));
  try {
    writeFileSync(join(work, 'go.mod'), goMod);
    run('go', ['mod', 'download', mod], { cwd: work, env: goEnv });
    for (const [pkg, out] of pkgs) {
      const args = ['build', '-trimpath', '-o', join(bin, out)];
      if (ldflags !== '') args.push(`-ldflags=${ldflags}`);
      run('go', [...args, pkg], { cwd: work, env: goEnv });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  stamp(name, version);
}

/** KUBE_BINARIES are the Kubernetes commands built from one wrapper module: the control plane
 * and, for the real-node tier, the kubelet, the scheduler and kube-proxy. */
const KUBE_BINARIES = [
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kube-proxy',
  'kubelet',
];

/**
 * kube builds the KUBE_BINARIES. k8s.io/kubernetes points every
 * staging module at ./staging/src (absent from its module zip) and requires them at v0.0.0,
 * so the wrapper replaces each required one with the published k8s.io/<name> v0.<minor>.<patch>.
 */
function kube(version) {
  if (KUBE_BINARIES.every((name) => stampOk(name, version))) return;
  const dir = goModuleDir('k8s.io/kubernetes', version);
  const upstream = readFileSync(join(dir, 'go.mod'), 'utf8');
  const staging = [...upstream.matchAll(/^\s*(k8s\.io\/[\w-]+) => \.\/staging\//gm)].map(
    (m) => m[1],
  );
  const required = staging.filter((m) =>
    new RegExp(`^\\s*${m.replace('.', '\\.')} v0\\.0\\.0`, 'm').test(upstream),
  );
  const staged = `v0.${version.slice(1).split('.').slice(1).join('.')}`;
  const header = upstream.split('\n').filter((l) => /^(go|godebug) /.test(l));
  const goMod = [
    'module berth.dev/kubetools',
    ...header,
    `require k8s.io/kubernetes ${version}`,
    'replace (',
    ...required.map((m) => `\t${m} => ${m} ${staged}`),
    ')',
    '',
  ].join('\n');
  const [major, minor] = version.slice(1).split('.');
  const v = 'k8s.io/component-base/version';
  const ldflags = `-s -w -X ${v}.gitVersion=${version} -X ${v}.gitMajor=${major} -X ${v}.gitMinor=${minor} -X ${v}.gitTreeState=clean`;
  const pkgs = KUBE_BINARIES.map((name) => [`k8s.io/kubernetes/cmd/${name}`, name]);
  wrapperBuild('kube', version, 'k8s.io/kubernetes', goMod, pkgs, ldflags);
  for (const name of KUBE_BINARIES) stamp(name, version);
}

/** etcd builds the etcd server, whose main package is the root of go.etcd.io/etcd/server/v3. */
function etcd(version) {
  const goMod = `module berth.dev/etcdtool\ngo 1.26.0\nrequire go.etcd.io/etcd/server/v3 ${version}\n`;
  wrapperBuild(
    'etcd',
    version,
    'go.etcd.io/etcd/server/v3',
    goMod,
    [['go.etcd.io/etcd/server/v3', 'etcd']],
    '-s -w',
  );
}

function onPath(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function aptInstall(pkg, cmd) {
  if (cmd.startsWith('/') ? existsSync(cmd) : onPath(cmd)) return;
  log(`installing ${pkg} from Debian`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

/**
 * node gets the real-node tier's parts (issue 20): containerd, runc, the CNI plugins and
 * iptables from Debian (the kubelet, scheduler and kube-proxy come with kube()), and the pod
 * sandbox's pause program, built statically from test/tools/pause.
 */
function node() {
  aptInstall('containerd', 'containerd');
  aptInstall('runc', 'runc');
  aptInstall('containernetworking-plugins', '/usr/lib/cni/bridge');
  aptInstall('iptables', 'iptables');
  const src = join(import.meta.dirname, 'pause', 'main.go');
  const version = createHash('sha256').update(readFileSync(src)).digest('hex');
  if (stampOk('berth-pause', version)) return;
  log('building the pause program (first run only)');
  run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', join(bin, 'berth-pause'), src], {
    env: goEnv,
    cwd: tmpdir(),
  });
  stamp('berth-pause', version);
}

/**
 * distribution builds distribution v3 (`cmd/registry`, as `distribution`) from its Go module
 * through a wrapper module: the mirror's upstream in tests (test/support/upstream.ts) and a
 * benchmark peer.
 */
function distribution() {
  const dist = TOOLS.distribution;
  wrapperBuild(
    'distribution',
    dist,
    'github.com/distribution/distribution/v3',
    `module berth.dev/disttool\ngo 1.26.0\nrequire github.com/distribution/distribution/v3 ${dist}\n`,
    [['github.com/distribution/distribution/v3/cmd/registry', 'distribution']],
    `-s -w -X github.com/distribution/distribution/v3/version.version=${dist}`,
  );
}

/**
 * peers builds the benchmark's peer registries (issue #5): distribution v3 and zot + zb from
 * their Go modules through wrapper modules (so the binaries get distinct names), and
 * distribution v2.8 from Debian's `docker-registry`. zot needs GOEXPERIMENT=jsonv2 since 2.1.12.
 */
function peers() {
  const failed = [];
  const attempt = (what, fn) => {
    try {
      fn();
    } catch (err) {
      log(`${what}: ${err.message}`);
      failed.push(what);
    }
  };
  attempt('distribution', distribution);
  const zot = TOOLS.zot;
  goEnv.GOEXPERIMENT = 'jsonv2';
  attempt('zot', () => {
    wrapperBuild(
      'zot',
      zot,
      'zotregistry.dev/zot/v2',
      `module berth.dev/zottool\ngo 1.26.3\nrequire zotregistry.dev/zot/v2 ${zot}\n`,
      [
        ['zotregistry.dev/zot/v2/cmd/zot', 'zot'],
        ['zotregistry.dev/zot/v2/cmd/zb', 'zb'],
      ],
      `-s -w -X zotregistry.dev/zot/v2/pkg/buildinfo.ReleaseTag=${zot}`,
    );
    stamp('zb', zot);
  });
  delete goEnv.GOEXPERIMENT;
  attempt('docker-registry', () => aptInstall('docker-registry', 'docker-registry'));
  if (failed.length > 0) throw new Error(`peers not built: ${failed.join(', ')}`);
}

const wanted = new Set(process.argv.slice(2));
const want = (n) => wanted.size === 0 || wanted.has(n);
try {
  if (want('minio')) goInstall('minio', 'github.com/minio/minio', TOOLS.minio);
  if (want('conformance')) {
    conformance('oci-conformance', TOOLS.conformanceMain, 'build');
  }
  if (want('skopeo')) aptInstall('skopeo', 'skopeo');
  // The pull-through cache's upstream in test/integration/mirror.int.test.ts.
  if (want('distribution')) distribution();
  // A real client of the pull-through cache (issue 17), beside skopeo and containerd.
  if (want('crane'))
    goInstall('crane', 'github.com/google/go-containerregistry/cmd/crane', TOOLS.crane);
  if (want('kube')) {
    etcd(TOOLS.etcd);
    kube(TOOLS.kubernetes);
  }
  if (want('node')) node();
  if (want('helm')) goInstall('helm', 'helm.sh/helm/v3/cmd/helm', TOOLS.helm);
  // The resource metrics API the real node's HorizontalPodAutoscaler reads (issue 16).
  if (want('metrics-server'))
    goInstall(
      'metrics-server',
      'sigs.k8s.io/metrics-server/cmd/metrics-server',
      TOOLS.metricsServer,
    );
  // The bench's neutral small-request client (npm run bench, test/bench/quick.int.test.ts);
  // its body client, curl, is part of the base image.
  if (want('bench')) {
    aptInstall('wrk', 'wrk');
    // containerd's fetcher (ctr content fetch) is the bench's neutral client for image pulls.
    aptInstall('containerd', 'containerd');
  }
  // The web UI tests' real browser (test/ui/), driven by playwright-core (a devDependency)
  // through its executablePath: playwright's own browser downloads are not used.
  if (want('chromium')) aptInstall('chromium', 'chromium');
  // Benchmark peers only on request: `node test/tools/ensure.mjs peers` (bench/run.ts does it).
  if (wanted.has('peers')) peers();
} catch (err) {
  log(`FAILED: ${err.message}`);
  process.exit(1);
}
log(`tools ready in ${bin}`);
