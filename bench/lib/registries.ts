import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../test/support/process.js';
import type { BenchMinio } from './minio.js';
import { scratchDir } from '../../test/support/scratch.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MiB = 1024 * 1024;
/** PART is the multipart part / chunk size every registry gets (Berth's default). */
export const PART_MIB = 16;

/** Running is one registry process (or process tree) serving on 127.0.0.1:port. */
export interface Running {
  url: string;
  port: number;
  /** pids of the server's process tree (Berth's cluster primary and workers). */
  pids(): number[];
  stop(): Promise<void>;
  /** restart stops and starts the same server on the same port and data (cold caches). */
  restart(): Promise<void>;
  /** replica starts a second server on the same bucket and secret (workload 5). */
  replica(): Promise<Running>;
  /** output is the tail of the server's log. */
  output(): string;
}

export interface RegistryKind {
  name: string;
  /** version describes what runs (binary and version), for the report. */
  version: string;
  /** missing says why the registry cannot run here, or undefined. */
  missing(): string | undefined;
  start(minio: BenchMinio, bucket: string, opts: StartOptions): Promise<Running>;
  /** replicas: false when two processes on one bucket are not a supported setup. */
  replicas: boolean;
  /** mirrors says why the registry cannot run as a pull-through cache, or undefined. */
  mirrors?: string;
}

export interface StartOptions {
  /** run Berth from JS compiled by buildBerth() instead of through tsx. */
  compiled?: string;
  /** extra node flags for Berth (e.g. --cpu-prof). */
  nodeArgs?: string[];
  /** Berth's http.workers (default 1, what the operator renders; 0 = one per core). */
  workers?: number;
  /**
   * mirrorOf is an upstream registry's base URL: the registry runs as a pull-through cache
   * of it for every repository name, unchanged (workload 8). Berth gets `mirrors.upstreams`
   * with one upstream and an empty prefix; distribution gets `proxy.remoteurl`.
   */
  mirrorOf?: string;
}

export function toolsBin(): string {
  return join(process.env.BERTH_TOOLS ?? join(homedir(), '.cache', 'berth', 'tools'), 'bin');
}

/** findBinary looks in the tools cache, then on PATH. */
export function findBinary(name: string): string | undefined {
  for (const dir of [toolsBin(), ...(process.env.PATH ?? '').split(delimiter)]) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // next
    }
  }
  return undefined;
}

/** stampOf reads the version stamp kept beside a binary (`.<name>.version`). */
function stampOf(name: string): string {
  const exe = findBinary(name);
  try {
    return readFileSync(
      join(exe === undefined ? toolsBin() : dirname(exe), `.${name}.version`),
      'utf8',
    );
  } catch {
    return '?';
  }
}

/** processTree lists `pid` and every process below it (from /proc/<pid>/task/<pid>/children). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    try {
      const kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      if (kids !== '') for (const k of kids.split(/\s+/)) out.push(Number(k));
    } catch {
      // gone
    }
  }
  return out;
}

interface Proc {
  child: ChildProcess;
  log: () => string;
  exited: Promise<void>;
}

function launch(cmd: string, args: string[], env: Record<string, string>, cwd = root): Proc {
  const child = spawn(cmd, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let tail = '';
  const keep = (b: Buffer) => (tail = (tail + b.toString()).slice(-8000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, log: () => tail, exited };
}

async function waitReady(p: Proc, url: string, path: string, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) {
      throw new Error(`${what} exited (${p.child.exitCode ?? p.child.signalCode}):\n${p.log()}`);
    }
    const ok = await fetch(url + path, { signal: AbortSignal.timeout(2000) }).then(
      async (r) => {
        await r.arrayBuffer();
        return r.status === 200 || r.status === 401;
      },
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) {
      p.child.kill('SIGKILL');
      throw new Error(`${what} not ready in 60 s:\n${p.log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function kill(p: Proc): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) {
    p.child.kill('SIGTERM');
    const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
    await p.exited;
    clearTimeout(t);
  }
}

/**
 * generic wires a launcher (`make(port)` → process) into Running with restart and replicas.
 */
async function generic(
  what: string,
  readyPath: string,
  make: (port: number) => Proc,
  cleanup: () => Promise<void>,
  port?: number,
): Promise<Running> {
  const p0 = port ?? (await freePort());
  const url = `http://127.0.0.1:${p0}`;
  let proc = make(p0);
  await waitReady(proc, url, readyPath, what);
  const self: Running = {
    url,
    port: p0,
    pids: () => processTree(proc.child.pid!),
    async stop() {
      await kill(proc);
      await cleanup();
    },
    async restart() {
      await kill(proc);
      proc = make(p0);
      await waitReady(proc, url, readyPath, what);
    },
    async replica() {
      return generic(`${what} replica`, readyPath, make, async () => {});
    },
    output: () => proc.log(),
  };
  return self;
}

const SECRET = 'bench-shared-secret-0123456789abcdef';

/**
 * buildBerth compiles server/ with tsconfig.build.json into node_modules/.cache/berth-bench (the way
 * `npm run build` makes dist/, without touching dist/) and returns the CLI's path, or an
 * error message when it does not compile (then the bench runs Berth through tsx).
 */
export function buildBerth(): { cli?: string; error?: string } {
  const out = join(root, 'node_modules', '.cache', 'berth-bench');
  const r = spawnSync(
    process.execPath,
    [
      join(root, 'node_modules', 'typescript', 'bin', 'tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      out,
    ],
    { cwd: root, encoding: 'utf8' },
  );
  if (r.status !== 0) return { error: (r.stdout + r.stderr).slice(0, 2000) };
  return { cli: join(out, 'server', 'cli.js') };
}

export const berth: RegistryKind = {
  name: 'berth',
  version: `berth ${(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version} (tsx, server/cli.ts)`,
  missing: () => undefined,
  replicas: true,
  async start(minio, bucket, opts) {
    await minio.makeBucket(bucket);
    const entry = opts.compiled
      ? [opts.compiled]
      : ['--import', 'tsx', join(root, 'server', 'cli.ts')];
    // Each process gets a blob cache folder of its own, as each pod gets an emptyDir (the
    // operator's default); a restart on the same port keeps it, like a container restart.
    const cacheDirs = new Map<number, string>();
    const cacheDir = (port: number) => {
      let dir = cacheDirs.get(port);
      if (!dir) cacheDirs.set(port, (dir = scratchDir('berth-bench-blobs-')));
      return dir;
    };
    // The mirror's settings are file only: a config file with just them, the rest from the
    // environment as for every Berth the bench runs.
    const configDir = opts.mirrorOf ? scratchDir('berth-bench-config-') : undefined;
    const config: Record<string, string> = {};
    if (configDir !== undefined && opts.mirrorOf !== undefined) {
      config.BERTH_CONFIG = join(configDir, 'berth.yaml');
      writeFileSync(config.BERTH_CONFIG, berthMirrorConfig(opts.mirrorOf));
    }
    const make = (port: number) =>
      // Node flags as the image's ENTRYPOINT sets them (Dockerfile), then the bench's own.
      launch(
        process.execPath,
        [...IMAGE_NODE_FLAGS, ...(opts.nodeArgs ?? []), ...entry, 'server'],
        {
          BERTH_HTTP_ADDR: `127.0.0.1:${port}`,
          BERTH_HTTP_SECRET: SECRET,
          BERTH_HTTP_WORKERS: String(opts.workers ?? 1),
          BERTH_LOG_LEVEL: 'warn',
          BERTH_STORAGE_DRIVER: 's3',
          BERTH_STORAGE_S3_ENDPOINT: minio.endpoint,
          BERTH_STORAGE_S3_BUCKET: bucket,
          BERTH_STORAGE_S3_ACCESS_KEY: minio.accessKey,
          BERTH_STORAGE_S3_SECRET_KEY: minio.secretKey,
          BERTH_STORAGE_S3_PART_SIZE_MIB: String(PART_MIB),
          BERTH_CACHE_BLOB_DIR: cacheDir(port),
          // Replicas hear of each other's tag moves, as the operator renders every pod
          // (ADR 0025); BERTH_CACHE_PEER_LISTEN= in the bench's environment tries without.
          BERTH_CACHE_PEER_LISTEN: '127.0.0.1:0',
          ...config,
          // Any other BERTH_* setting of the bench's own environment tries a variant.
          ...berthOverrides(),
        },
      );
    return generic('berth', '/readyz', make, async () => {
      for (const dir of cacheDirs.values()) await rm(dir, { recursive: true, force: true });
      if (configDir !== undefined) await rm(configDir, { recursive: true, force: true });
    });
  },
};

/**
 * berthMirrorConfig is Berth's config file for workload 8: one upstream, every repository
 * name mapped unchanged (as distribution's proxy mode maps them), its other settings at
 * their defaults (tags re-checked upstream after 300 s).
 */
function berthMirrorConfig(upstream: string): string {
  return ['mirrors:', '  upstreams:', '    - name: upstream', `      url: ${upstream}`, ''].join(
    '\n',
  );
}

/** IMAGE_NODE_FLAGS are the Node.js flags of Berth's image ENTRYPOINT (Dockerfile). */
const IMAGE_NODE_FLAGS = ['--max-semi-space-size=4'];

/** berthOverrides are the bench's own BERTH_* variables (not BERTH_BENCH_* or BERTH_TOOLS). */
function berthOverrides(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('BERTH_') || k.startsWith('BERTH_BENCH_') || k === 'BERTH_TOOLS') continue;
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** distributionConfig is distribution's YAML config for S3 on MinIO (v2.8 and v3 read it). */
function distributionConfig(
  minio: BenchMinio,
  bucket: string,
  port: number,
  v3: boolean,
  mirrorOf?: string,
): string {
  return [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  s3:',
    `    accesskey: ${minio.accessKey}`,
    `    secretkey: ${minio.secretKey}`,
    '    region: us-east-1',
    `    regionendpoint: ${minio.endpoint}`,
    ...(v3 ? ['    forcepathstyle: true'] : []),
    `    bucket: ${bucket}`,
    '    encrypt: false',
    '    secure: false',
    '    v4auth: true',
    `    chunksize: ${PART_MIB * MiB}`,
    '    rootdirectory: /registry',
    // The descriptor cache the maintainers say to always run with (distribution#4500).
    '  cache:',
    '    blobdescriptor: inmemory',
    '  delete:',
    '    enabled: true',
    // Blob GETs are served by the registry (the "proxied, no redirect" comparison).
    '  redirect:',
    '    disable: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${SECRET}`,
    // Proxy mode (a pull-through cache of the upstream; pushes are refused), workload 8.
    ...(mirrorOf === undefined ? [] : ['proxy:', `  remoteurl: ${mirrorOf}`]),
    '',
  ].join('\n');
}

function distributionKind(
  name: string,
  bin: string,
  v3: boolean,
  version: () => string,
): RegistryKind {
  return {
    name,
    get version() {
      return version();
    },
    missing: () =>
      findBinary(bin) === undefined
        ? `${bin} not found in ${toolsBin()} or on PATH (node test/tools/ensure.mjs peers)`
        : undefined,
    replicas: true,
    async start(minio, bucket, opts) {
      await minio.makeBucket(bucket);
      const dir = scratchDir(`bench-${name}-`);
      const exe = findBinary(bin)!;
      const make = (port: number) => {
        const cfg = join(dir, `config-${port}.yml`);
        writeFileSync(cfg, distributionConfig(minio, bucket, port, v3, opts.mirrorOf));
        return launch(exe, ['serve', cfg], { OTEL_TRACES_EXPORTER: 'none' }, dir);
      };
      return generic(name, '/v2/', make, () => rm(dir, { recursive: true, force: true }));
    },
  };
}

export const distribution3 = distributionKind('distribution-v3', 'distribution', true, () => {
  return `distribution ${stampOf('distribution')} (github.com/distribution/distribution/v3/cmd/registry)`;
});

export const distribution28 = distributionKind(
  'distribution-v2.8',
  'docker-registry',
  false,
  () => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'docker-registry'], {
      encoding: 'utf8',
    });
    return `docker-registry ${r.stdout || '?'} (Debian)`;
  },
);

export const zot: RegistryKind = {
  name: 'zot',
  get version() {
    return `zot ${stampOf('zot')} (zotregistry.dev/zot/v2/cmd/zot, minimal build)`;
  },
  missing: () =>
    findBinary('zot') === undefined
      ? `zot not found in ${toolsBin()} or on PATH (node test/tools/ensure.mjs peers)`
      : undefined,
  replicas: false,
  mirrors: 'the minimal build has no sync extension (on-demand mirroring)',
  async start(minio, bucket) {
    await minio.makeBucket(bucket);
    const dir = scratchDir('bench-zot-');
    const exe = findBinary('zot')!;
    const make = (port: number) => {
      const cfg = join(dir, `config-${port}.json`);
      // examples/config-s3.json, with the local (boltdb) dedupe cache and the same part size.
      const config = {
        distSpecVersion: '1.1.1',
        storage: {
          rootDirectory: join(dir, 'root'),
          dedupe: true,
          remoteCache: false,
          gc: true,
          storageDriver: {
            name: 's3',
            rootdirectory: '/zot',
            region: 'us-east-1',
            regionendpoint: minio.endpoint,
            bucket,
            forcepathstyle: true,
            secure: false,
            skipverify: false,
            accesskey: minio.accessKey,
            secretkey: minio.secretKey,
            // A string: distribution's driver reads the number back through fmt.Sprint, and a
            // JSON number arrives as a float64 ("1.6777216e+07", read as 1).
            chunksize: String(PART_MIB * MiB),
          },
        },
        http: { address: '127.0.0.1', port: String(port) },
        log: { level: 'error' },
      };
      writeFileSync(cfg, JSON.stringify(config, null, 2));
      return launch(exe, ['serve', cfg], {}, dir);
    };
    return generic('zot', '/v2/', make, () => rm(dir, { recursive: true, force: true }));
  },
};

export const ALL: RegistryKind[] = [berth, distribution3, distribution28, zot];

/**
 * startUpstream runs the upstream of workload 8: distribution v3 (the tool `distribution`
 * ensure.mjs builds in its default run) on filesystem storage in a temporary folder, so
 * that MinIO's counters count only the mirror's calls. Throws when the binary is missing.
 */
export async function startUpstream(): Promise<Running> {
  const exe = findBinary('distribution');
  if (exe === undefined) {
    throw new Error(
      `distribution not found in ${toolsBin()} or on PATH (node test/tools/ensure.mjs distribution)`,
    );
  }
  const dir = scratchDir('bench-upstream-');
  const make = (port: number) => {
    const cfg = join(dir, `config-${port}.yml`);
    writeFileSync(
      cfg,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        '  accesslog:',
        '    disabled: true',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${join(dir, 'data')}`,
        '  cache:',
        '    blobdescriptor: inmemory',
        '  maintenance:',
        '    uploadpurging:',
        '      enabled: false',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        `  secret: ${SECRET}`,
        '',
      ].join('\n'),
    );
    return launch(exe, ['serve', cfg], { OTEL_TRACES_EXPORTER: 'none' }, dir);
  };
  return generic('upstream distribution', '/v2/', make, () =>
    rm(dir, { recursive: true, force: true }),
  );
}
