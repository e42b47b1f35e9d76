/**
 * `berth node-config` runs on every node (the node-access DaemonSet) and points the node's
 * container runtime at a Registry: containerd's `<dir>/<address>/hosts.toml` (and `ca.crt`)
 * and CRI-O's `<dir>/berth-<namespace>-<name>.conf`; with `--mirror-for`, also containerd's
 * `<dir>/<upstream>/hosts.toml` naming the Registry as a mirror of each upstream host. It
 * writes them atomically, rewrites them when they vanish or differ (every 30 s), and on
 * SIGTERM or SIGINT removes exactly the files it wrote, and the folders it made if they are
 * empty.
 */
import { mkdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import { realClock, type Clock } from './clock.js';
import { jsonLogger, type Logger } from './log.js';

/** CHECK_INTERVAL_MS is how often the files are checked and rewritten if needed. */
export const CHECK_INTERVAL_MS = 30_000;

export const NODE_CONFIG_USAGE = `usage: berth node-config --address HOST:PORT --name NAMESPACE/NAME
       [--scheme http|https] [--containerd-dir DIR] [--crio-dir DIR] [--ca-file FILE]
       [--mirror-for HOST[,HOST...]]

Writes the container runtime's registry config for HOST:PORT on this node, keeps it there,
and removes it on SIGTERM. At least one of --containerd-dir and --crio-dir is required.
--mirror-for (containerd only) also makes HOST:PORT a mirror for each upstream HOST.
`;

/** UsageError is a bad command line; its message names the flag. */
export class UsageError extends Error {
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface NodeConfigOptions {
  /** address is `host:port` as image references name it, e.g. `localhost:30500`. */
  address: string;
  scheme: 'http' | 'https';
  containerdDir?: string;
  crioDir?: string;
  /** caFile is a PEM bundle to trust for the registry; it may be absent (then none is written). */
  caFile?: string;
  /**
   * mirrorFor lists upstream hosts (`docker.io`, `ghcr.io`, `host:port`) whose containerd
   * hosts.toml names the registry as a mirror, before the upstream itself. Needs containerdDir.
   */
  mirrorFor?: string[];
  namespace: string;
  name: string;
}

const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
/** MIRROR_HOST is an upstream host as image references name it, with an optional port. */
export const MIRROR_HOST = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$/;
const FLAGS = [
  '--address',
  '--scheme',
  '--containerd-dir',
  '--crio-dir',
  '--ca-file',
  '--name',
  '--mirror-for',
] as const;
type Flag = (typeof FLAGS)[number];

function absolute(flag: Flag, v: string): string {
  if (!isAbsolute(v) || v.split('/').includes('..'))
    throw new UsageError(
      flag,
      `${flag} must be an absolute path without "..", got ${JSON.stringify(v)}`,
    );
  return normalize(v);
}

/** parseNodeConfigArgs reads the flags; it throws UsageError naming the first bad one. */
export function parseNodeConfigArgs(args: readonly string[]): NodeConfigOptions {
  const values = new Map<Flag, string>();
  for (let i = 0; i < args.length; i += 2) {
    const f = args[i] ?? '';
    if (!(FLAGS as readonly string[]).includes(f))
      throw new UsageError(f, `unknown flag ${JSON.stringify(f)}`);
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(f, `${f} needs a value`);
    values.set(f as Flag, v);
  }
  const address = values.get('--address');
  if (address === undefined) throw new UsageError('--address', '--address is required');
  const m = ADDRESS.exec(address);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535)
    throw new UsageError(
      '--address',
      `--address must be host:port with a port from 1 to 65535, got ${JSON.stringify(address)}`,
    );
  const scheme = values.get('--scheme') ?? 'http';
  if (scheme !== 'http' && scheme !== 'https')
    throw new UsageError(
      '--scheme',
      `--scheme must be http or https, got ${JSON.stringify(scheme)}`,
    );
  const full = values.get('--name');
  if (full === undefined) throw new UsageError('--name', '--name is required');
  const [namespace = '', name = '', ...rest] = full.split('/');
  if (rest.length > 0 || !DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(name))
    throw new UsageError('--name', `--name must be NAMESPACE/NAME, got ${JSON.stringify(full)}`);
  const containerd = values.get('--containerd-dir');
  const crio = values.get('--crio-dir');
  if (containerd === undefined && crio === undefined)
    throw new UsageError('--containerd-dir', 'one of --containerd-dir and --crio-dir is required');
  const ca = values.get('--ca-file');
  const mirrorFor = parseMirrorFor(values.get('--mirror-for'), containerd, address);
  return {
    address,
    scheme,
    namespace,
    name,
    ...(containerd !== undefined
      ? { containerdDir: absolute('--containerd-dir', containerd) }
      : {}),
    ...(crio !== undefined ? { crioDir: absolute('--crio-dir', crio) } : {}),
    ...(ca !== undefined ? { caFile: absolute('--ca-file', ca) } : {}),
    ...(mirrorFor.length > 0 ? { mirrorFor } : {}),
  };
}

/** parseMirrorFor reads `--mirror-for`: distinct upstream hosts, comma-separated. */
function parseMirrorFor(
  v: string | undefined,
  containerd: string | undefined,
  address: string,
): string[] {
  if (v === undefined) return [];
  const hosts = [...new Set(v.split(','))];
  const bad = hosts.find((h) => !MIRROR_HOST.test(h) || h === address || h.includes('..'));
  if (bad !== undefined)
    throw new UsageError(
      '--mirror-for',
      `--mirror-for must list upstream hosts other than --address, got ${JSON.stringify(bad)}`,
    );
  if (containerd === undefined)
    throw new UsageError('--mirror-for', '--mirror-for needs --containerd-dir');
  return hosts;
}

/** writtenBy is the first line of every file node-config writes for the Registry of `o`. */
export const writtenBy = (o: NodeConfigOptions): string =>
  `# Written by berth node-config for Registry ${o.namespace}/${o.name}`;

/**
 * mirrorHeader starts the hosts.toml node-config writes for `upstream`: a file that starts with
 * it is this Registry's own (another Registry's name never makes the same line).
 */
const mirrorHeader = (o: NodeConfigOptions, upstream: string): string =>
  `${writtenBy(o)} as a mirror of ${upstream};`;

/** toml quotes a string as a TOML basic string (JSON's escapes are valid TOML escapes). */
const toml = (s: string): string => JSON.stringify(s);

/**
 * hostsToml is a containerd hosts.toml: a first line, the `server` pulled from when no host
 * answers, and the registry as a pull/resolve host, trusting `caPath` when given.
 */
function hostsToml(o: NodeConfigOptions, first: string, server: string, caPath?: string): string {
  const url = `${o.scheme}://${o.address}`;
  return [
    first,
    `server = ${toml(server)}`,
    '',
    `[host.${toml(url)}]`,
    '  capabilities = ["pull", "resolve"]',
    ...(caPath !== undefined ? [`  ca = ${toml(caPath)}`] : []),
    '',
  ].join('\n');
}

/** containerdHostsToml is hosts.toml for the address, trusting `caPath` when given. */
export function containerdHostsToml(o: NodeConfigOptions, caPath?: string): string {
  const first = `${writtenBy(o)}; removed when it stops.`;
  return hostsToml(o, first, `${o.scheme}://${o.address}`, caPath);
}

/**
 * upstreamServer is the upstream's own endpoint, which containerd falls back to when the
 * mirror fails: `https://<host>`, and for docker.io its registry endpoint.
 */
export function upstreamServer(host: string): string {
  return host === 'docker.io' ? 'https://registry-1.docker.io' : `https://${host}`;
}

/**
 * containerdMirrorToml is hosts.toml for an upstream host that pulls through the registry:
 * containerd tries the registry first (sending `?ns=<upstream>`, which Berth maps to the
 * upstream's prefix) and the upstream itself after it.
 */
export function containerdMirrorToml(
  o: NodeConfigOptions,
  upstream: string,
  caPath?: string,
): string {
  const first = `${mirrorHeader(o, upstream)} removed when it stops.`;
  return hostsToml(o, first, upstreamServer(upstream), caPath);
}

/** crioRegistryConf is the registries.conf drop-in for the address. */
export function crioRegistryConf(o: NodeConfigOptions): string {
  return [
    `${writtenBy(o)}; removed when it stops.`,
    '[[registry]]',
    `location = ${toml(o.address)}`,
    `insecure = ${o.scheme === 'http'}`,
    '',
  ].join('\n');
}

/** PlannedFile is one file node-config keeps on the node. */
export interface PlannedFile {
  path: string;
  content: string | Buffer;
  /**
   * owner is set for an upstream host's hosts.toml, which the node's owner or another Registry
   * may have written: a file there that does not start with it is left alone.
   */
  owner?: string;
}

/** plannedFiles lists the files to keep for `o`, given the CA bundle if there is one. */
export function plannedFiles(o: NodeConfigOptions, ca: Buffer | undefined): PlannedFile[] {
  const out: PlannedFile[] = [];
  if (o.containerdDir !== undefined) {
    const dir = join(o.containerdDir, o.address);
    const caPath = ca !== undefined ? join(dir, 'ca.crt') : undefined;
    out.push({ path: join(dir, 'hosts.toml'), content: containerdHostsToml(o, caPath) });
    if (caPath !== undefined && ca !== undefined) out.push({ path: caPath, content: ca });
    for (const upstream of o.mirrorFor ?? [])
      out.push({
        path: join(o.containerdDir, upstream, 'hosts.toml'),
        content: containerdMirrorToml(o, upstream, caPath),
        owner: mirrorHeader(o, upstream),
      });
  }
  if (o.crioDir !== undefined)
    out.push({
      path: join(o.crioDir, `berth-${o.namespace}-${o.name}.conf`),
      content: crioRegistryConf(o),
    });
  return out;
}

const code = (err: unknown): string | undefined => (err as { code?: string }).code;

async function readOrUndefined(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (code(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * NodeConfigAgent keeps the planned files on the node. sync() is idempotent; start() syncs
 * and then checks again every interval on the injected clock; stop() removes what it wrote.
 */
export class NodeConfigAgent {
  private readonly written = new Set<string>();
  private readonly madeDirs = new Set<string>();
  private readonly foreign = new Set<string>();
  private cancel: (() => void) | undefined;
  private current: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly clock: Clock;
  private readonly intervalMs: number;

  constructor(
    private readonly o: NodeConfigOptions,
    private readonly log: Logger,
    opts: { clock?: Clock; intervalMs?: number } = {},
  ) {
    this.clock = opts.clock ?? realClock;
    this.intervalMs = opts.intervalMs ?? CHECK_INTERVAL_MS;
  }

  /**
   * sync writes every planned file that is missing or differs (an upstream host's hosts.toml
   * only if it is missing or this Registry wrote it), and drops a stale ca.crt.
   */
  async sync(): Promise<void> {
    const ca = this.o.caFile !== undefined ? await readOrUndefined(this.o.caFile) : undefined;
    if (this.o.caFile !== undefined && ca === undefined)
      this.log.warn({ caFile: this.o.caFile }, 'ca file missing, trusting the system roots');
    const planned = plannedFiles(this.o, ca);
    await this.makeHostDirs();
    for (const f of planned) {
      const have = await readOrUndefined(f.path);
      if (have !== undefined && have.equals(Buffer.from(f.content))) {
        this.written.add(f.path);
        continue;
      }
      if (
        have !== undefined &&
        f.owner !== undefined &&
        !have.toString('utf8').startsWith(f.owner)
      ) {
        this.leaveForeign(f.path);
        continue;
      }
      const tmp = `${f.path}.berth-tmp`;
      await writeFile(tmp, f.content, { mode: 0o644 });
      await rename(tmp, f.path);
      this.written.add(f.path);
      this.log.info({ path: f.path, address: this.o.address }, 'node config written');
    }
    const keep = new Set(planned.map((f) => f.path));
    for (const path of [...this.written].filter((p) => !keep.has(p))) {
      await rm(path, { force: true });
      this.written.delete(path);
      this.log.info({ path }, 'node config removed');
    }
  }

  /** leaveForeign keeps away from a shared file someone else wrote, warning once per path. */
  private leaveForeign(path: string): void {
    this.written.delete(path);
    if (this.foreign.has(path)) return;
    this.foreign.add(path);
    this.log.warn({ path }, 'node config left alone: written by someone else');
  }

  /** makeHostDirs makes the containerd host folders that are missing, and remembers them. */
  private async makeHostDirs(): Promise<void> {
    const root = this.o.containerdDir;
    if (root === undefined) return;
    for (const host of [this.o.address, ...(this.o.mirrorFor ?? [])]) {
      const dir = join(root, host);
      if (await exists(dir)) continue;
      await mkdir(dir, { recursive: true, mode: 0o755 });
      this.madeDirs.add(dir);
    }
  }

  /** start syncs once (throwing if that fails) and then keeps checking on the clock. */
  async start(): Promise<void> {
    this.stopped = false;
    this.current = this.sync();
    await this.current;
    this.schedule();
  }

  /** settled resolves once the check in progress, if any, is done (for tests). */
  settled(): Promise<void> {
    return this.current;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.cancel = this.clock.setTimeout(() => {
      this.cancel = undefined;
      this.current = this.sync()
        .catch((err: unknown) =>
          this.log.warn({ err: String(err), address: this.o.address }, 'node config check failed'),
        )
        .finally(() => this.schedule());
    }, this.intervalMs);
  }

  /** stop ends the checks and removes the files it wrote and the folder it made, if empty. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancel?.();
    this.cancel = undefined;
    await this.current.catch(() => undefined);
    for (const path of this.written) {
      await rm(path, { force: true });
      this.log.info({ path }, 'node config removed');
    }
    this.written.clear();
    for (const dir of this.madeDirs) {
      try {
        await rmdir(dir);
      } catch (err) {
        if (code(err) !== 'ENOENT' && code(err) !== 'ENOTEMPTY' && code(err) !== 'EEXIST')
          throw err;
      }
    }
    this.madeDirs.clear();
  }
}

/** Signals is the part of `process` node-config listens on (injectable for tests). */
export interface Signals {
  once(signal: 'SIGTERM' | 'SIGINT', fn: () => void): unknown;
  removeListener(signal: 'SIGTERM' | 'SIGINT', fn: () => void): unknown;
}

/**
 * nodeConfigCommand is `berth node-config`: it returns the exit code, 2 for bad flags, 1 when
 * the first write fails, 0 after a signal once its files are removed.
 */
export async function nodeConfigCommand(
  args: readonly string[],
  deps: {
    clock?: Clock;
    log?: Logger;
    signals?: Signals;
    stderr?: (s: string) => void;
    intervalMs?: number;
    /** started is called once the files are first in place (for tests). */
    started?: () => void;
  } = {},
): Promise<number> {
  const stderr = deps.stderr ?? ((s: string) => process.stderr.write(s));
  let o: NodeConfigOptions;
  try {
    o = parseNodeConfigArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    stderr(`berth node-config: ${err.message}\n${NODE_CONFIG_USAGE}`);
    return 2;
  }
  const log = deps.log ?? jsonLogger('info');
  const signals: Signals = deps.signals ?? process;
  const agent = new NodeConfigAgent(o, log, { clock: deps.clock, intervalMs: deps.intervalMs });
  let onSignal: () => void = () => undefined;
  const signalled = new Promise<void>((resolve) => (onSignal = resolve));
  signals.once('SIGTERM', onSignal);
  signals.once('SIGINT', onSignal);
  try {
    await agent.start();
  } catch (err) {
    log.error({ err: String(err), address: o.address }, 'node config not written');
    await agent.stop().catch(() => undefined);
    signals.removeListener('SIGTERM', onSignal);
    signals.removeListener('SIGINT', onSignal);
    return 1;
  }
  log.info({ address: o.address, registry: `${o.namespace}/${o.name}` }, 'node config in place');
  deps.started?.();
  await signalled;
  signals.removeListener('SIGTERM', onSignal);
  signals.removeListener('SIGINT', onSignal);
  await agent.stop();
  log.info({ address: o.address }, 'node config cleaned up');
  return 0;
}
