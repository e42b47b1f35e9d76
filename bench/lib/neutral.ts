import { spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary } from './registries.js';
import type { Sample } from './load.js';
import { scratchDir } from '../../test/support/scratch.js';

// Neutral clients (issue 19): curl for big bodies and wrk for small requests, programs no
// one here wrote, so that the bench reports what users' clients see beside its own client.

interface Exited {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[]): Promise<Exited> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** need finds a neutral client or throws: the bench and its CI test never skip one. */
export function need(name: 'curl' | 'wrk' | 'containerd' | 'ctr'): string {
  const exe = findBinary(name);
  if (exe === undefined) {
    throw new Error(
      `${name} not found on PATH (node test/tools/ensure.mjs bench installs wrk and containerd)`,
    );
  }
  return exe;
}

/**
 * curlGet GETs `url` with curl into /dev/null, following redirects, and returns the bytes
 * curl counted; throws on a transport error or a status other than 200.
 */
export async function curlGet(url: string): Promise<number> {
  const r = await exec(need('curl'), [
    '-s',
    '-S',
    '-L',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{size_download} %{time_total}',
    url,
  ]);
  const [status, size] = r.stdout.trim().split(' ');
  if (r.code !== 0 || status !== '200') {
    throw new Error(`curl ${url}: exit ${r.code}, HTTP ${status ?? '?'} ${r.stderr.trim()}`);
  }
  return Number(size);
}

export interface WrkSpec {
  /** bases are the registry URLs; wrk runs one thread per base (at least two threads). */
  bases: string[];
  /** paths are requested in turn by every connection. */
  paths: string[];
  headers: Record<string, string>;
  /** connections in all, rounded up to a multiple of the thread count. */
  connections: number;
  seconds: number;
}

/**
 * wrkScript is wrk's Lua: thread i connects to bases[i mod n] (setup), and each connection
 * sends the paths in turn, starting at a different one per thread.
 */
function wrkScript(spec: WrkSpec): string {
  const hosts = spec.bases.map((b) => {
    const u = new URL(b);
    return `{ ${JSON.stringify(u.hostname)}, ${JSON.stringify(u.port)} }`;
  });
  const headers = Object.entries(spec.headers).map(
    ([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`,
  );
  return [
    `local hosts = { ${hosts.join(', ')} }`,
    `local paths = { ${spec.paths.map((p) => JSON.stringify(p)).join(', ')} }`,
    ...headers,
    'local n = 0',
    'function setup(thread)',
    '  local h = hosts[(n % #hosts) + 1]',
    '  thread.addr = wrk.lookup(h[1], h[2])[1]',
    '  thread:set("start", n)',
    '  n = n + 1',
    'end',
    'local i = 0',
    'function init(args)',
    '  i = (tonumber(start) or 0) * 7',
    'end',
    'function request()',
    '  i = (i % #paths) + 1',
    '  return wrk.format("GET", paths[i])',
    'end',
    '',
  ].join('\n');
}

/** parseDuration reads wrk's "1.23ms" / "850.00us" / "1.02s" / "2.00m" into milliseconds. */
export function parseDuration(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

/**
 * parseWrk turns wrk's `--latency` report into a Sample: requests, errors (non-2xx/3xx and
 * socket errors), the run's duration, and p50/p99 as a two-point latency list (so
 * `summarize` gives both back).
 */
export function parseWrk(out: string): Sample {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  const total = /(\d+) requests in ([\d.]+(?:us|ms|s|m))/.exec(out);
  if (!total) throw new Error(`wrk: no result in its output:\n${out.slice(-1000)}`);
  const ops = Number(total[1]);
  const wallMs = parseDuration(total[2]!);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const errors = (Number.isNaN(non2xx) ? 0 : non2xx) + socketErrors;
  const p = (q: string) =>
    parseDuration(new RegExp(`^\\s+${q}%\\s+(\\S+)`, 'm').exec(out)?.[1] ?? '');
  return {
    ops,
    errors,
    errorSamples: errors > 0 ? [`wrk: ${errors} errors (non-2xx ${non2xx || 0})`] : [],
    wallMs,
    latencies: [p('50'), p('99')],
    bytes: 0,
  };
}

/** runWrk runs wrk once (`-t<threads> -c<connections> -d<seconds> --latency`). */
export async function runWrk(spec: WrkSpec): Promise<Sample> {
  const exe = need('wrk');
  const threads = Math.max(2, spec.bases.length);
  const connections = Math.ceil(spec.connections / threads) * threads;
  const dir = scratchDir('berth-bench-wrk-');
  try {
    const script = join(dir, 'bench.lua');
    await writeFile(script, wrkScript(spec));
    const r = await exec(exe, [
      `-t${threads}`,
      `-c${connections}`,
      `-d${spec.seconds}s`,
      '--timeout',
      '10s',
      '--latency',
      '-s',
      script,
      spec.bases[0]!,
    ]);
    if (r.code !== 0) throw new Error(`wrk exited ${r.code}: ${r.stderr}${r.stdout.slice(-500)}`);
    return parseWrk(r.stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * ContainerdFetcher is containerd's own fetcher as a neutral client: what a node's image
 * pull runs before it unpacks. A containerd of the bench's own (content and metadata only,
 * no CRI, in a temp folder, as root) is driven by `ctr content fetch`; every fetch uses a
 * new namespace and the content store does not share blobs between namespaces, so each
 * fetch transfers the manifest, config and layers again and writes them to its content
 * store, as a node that has not got the image does.
 */
export interface ContainerdFetcher {
  /**
   * fetch pulls `ref` (host:port/repo:tag over plain http) into a new namespace; throws
   * unless ctr succeeds. The content stays until `stop` removes the folder.
   */
  fetch(ref: string): Promise<void>;
  stop(): Promise<void>;
}

function containerdConfig(dir: string): string {
  return [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
    '[grpc]',
    `  address = ${JSON.stringify(join(dir, 'c.sock'))}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(join(dir, 'c.ttrpc.sock'))}`,
    '[plugins."io.containerd.metadata.v1.bolt"]',
    '  content_sharing_policy = "isolated"',
    '',
  ].join('\n');
}

/** startContainerd starts the bench's containerd; throws (with its log) if it does not come up. */
export async function startContainerd(): Promise<ContainerdFetcher> {
  const daemon = need('containerd');
  const ctr = need('ctr');
  const dir = scratchDir('berth-bench-ctrd-');
  await writeFile(join(dir, 'config.toml'), containerdConfig(dir));
  const sock = join(dir, 'c.sock');
  const child = spawn(daemon, ['--config', join(dir, 'config.toml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await exec(ctr, ['--address', sock, 'version']);
    if (v.code === 0) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error(`containerd did not start: ${v.stderr.trim()}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  let n = 0;
  return {
    async fetch(ref: string) {
      const ns = `fetch${n++}`;
      const r = await exec(ctr, [
        '--address',
        sock,
        '-n',
        ns,
        'content',
        'fetch',
        '--plain-http',
        ref,
      ]);
      if (r.code !== 0)
        throw new Error(`ctr content fetch ${ref}: exit ${r.code} ${r.stderr.trim()}`);
    },
    stop,
  };
}
