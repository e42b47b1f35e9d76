import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { S3Config } from '../../server/config/types.js';
import { Client as MinioClient } from 'minio';
import { freePort } from './process.js';

/** MinioServer is one real MinIO process on a loopback port with a throwaway data dir. */
export interface MinioServer {
  /** endpoint is `http://<host>:<port>` (host 127.0.0.1 unless startMinio was given one). */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  port: number;
  /** stop kills the server and removes its data dir. */
  stop(): Promise<void>;
  /** restart kills the server and starts it again on the same port and data. */
  restart(): Promise<void>;
  /** config is an S3Config for `bucket` (the bucket is not created). */
  config(bucket: string, prefix?: string): S3Config;
  /** pid is the server process's id (undefined while it is down). */
  pid(): number | undefined;
}

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * minioBinary finds the MinIO server built by `node test/tools/ensure.mjs minio`
 * (`${BERTH_TOOLS:-~/.cache/berth/tools}/bin/minio`) or `minio` on PATH, and throws
 * when there is neither: a test never skips a missing real part.
 */
export function minioBinary(): string {
  const tools = process.env.BERTH_TOOLS ?? join(homedir(), '.cache', 'berth', 'tools');
  const candidates = [join(tools, 'bin', 'minio')];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '') candidates.push(join(dir, 'minio'));
  }
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `MinIO server binary not found (looked in ${join(tools, 'bin')} and on PATH). ` +
      'Build it with `node test/tools/ensure.mjs minio` (needs Go), or set BERTH_TOOLS.',
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** live processes, killed on exit as a last resort (tests still call stop()). */
const live = new Set<{ child: ChildProcess; dir: string }>();
let exitHook = false;
function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const { child, dir } of live) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * startMinio starts a MinIO server on a free port of `host` (default 127.0.0.1) (console on another, browser
 * off) with a fresh temporary data dir, and resolves once it serves requests.
 */
export async function startMinio(
  opts: { env?: Record<string, string>; host?: string } = {},
): Promise<MinioServer> {
  const host = opts.host ?? '127.0.0.1';
  const bin = minioBinary();
  const dir = await mkdtemp(join(tmpdir(), 'berth-minio-'));
  const accessKey = 'berth-' + randomBytes(4).toString('hex');
  const secretKey = randomBytes(18).toString('base64url');
  installExitHook();

  let port = 0;
  let consolePort = 0;
  let proc: { child: ChildProcess; dir: string; log: string[]; exited: Promise<void> } | undefined;

  const launch = async (): Promise<void> => {
    const log: string[] = [];
    const child = spawn(
      bin,
      [
        'server',
        join(dir, 'data'),
        '--address',
        `${host}:${port}`,
        '--console-address',
        `127.0.0.1:${consolePort}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env.PATH ?? '',
          HOME: dir,
          MINIO_ROOT_USER: accessKey,
          MINIO_ROOT_PASSWORD: secretKey,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
          MINIO_CI_CD: 'on',
          ...opts.env,
        },
      },
    );
    const keep = (b: Buffer) => {
      log.push(b.toString());
      if (log.length > 200) log.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let exitInfo: string | undefined;
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        exitInfo = `exited with ${code ?? signal}`;
        resolve();
      });
      child.once('error', (err) => {
        exitInfo = `failed to start: ${err.message}`;
        resolve();
      });
    });
    const entry = { child, dir, log, exited };
    live.add(entry);
    proc = entry;

    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (exitInfo !== undefined) {
        live.delete(entry);
        throw new Error(`minio ${exitInfo}:\n${log.join('').slice(-4000)}`);
      }
      if (await ready(host, port)) return;
      if (Date.now() > deadline) {
        await kill(entry);
        throw new Error(
          `minio did not become ready in ${START_TIMEOUT_MS} ms:\n${log.join('').slice(-4000)}`,
        );
      }
      await sleep(100);
    }
  };

  const kill = async (entry: NonNullable<typeof proc>): Promise<void> => {
    if (entry.child.exitCode === null && entry.child.signalCode === null) {
      entry.child.kill('SIGTERM');
      const timer = setTimeout(() => entry.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await entry.exited;
      clearTimeout(timer);
    }
    live.delete(entry);
  };

  // A port found free may be taken before MinIO binds it: try a few times.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    consolePort = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      if (attempt >= 3) {
        await rm(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const endpoint = `http://${host}:${port}`;
  let stopped = false;
  return {
    endpoint,
    accessKey,
    secretKey,
    port,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (proc) await kill(proc);
      await rm(dir, { recursive: true, force: true });
    },
    pid: () => proc?.child.pid,
    async restart() {
      if (stopped) throw new Error('minio: restart after stop');
      if (proc) await kill(proc);
      await launch();
    },
    config(bucket: string, prefix?: string): S3Config {
      return {
        endpoint,
        bucket,
        region: 'us-east-1',
        accessKey,
        secretKey,
        pathStyle: true,
        prefix,
        partSizeMiB: 16,
        bufferMiB: 64,
        redirect: false,
      };
    },
  };
}

/** ready is true once MinIO answers liveness with its object layer up. */
async function ready(host: string, port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://${host}:${port}/minio/health/live`, {
      signal: AbortSignal.timeout(2000),
    });
    await res.arrayBuffer();
    // Liveness answers 200 before the object layer is up, flagged by this header.
    return res.status === 200 && res.headers.get('x-minio-server-status') !== 'offline';
  } catch {
    return false;
  }
}

const SHARED = Symbol.for('berth.test.sharedMinio');
interface Shared {
  server: Promise<MinioServer>;
  users: number;
}

/**
 * sharedMinio returns a handle on one MinIO server shared by every caller in this
 * process (several test files in one worker reuse it). Each caller must call `stop()` on
 * its handle (in afterAll); the server stops when the last handle does.
 */
export async function sharedMinio(): Promise<MinioServer> {
  const g = globalThis as { [SHARED]?: Shared };
  let shared = g[SHARED];
  if (!shared) {
    const s: Shared = { server: startMinio(), users: 0 };
    shared = s;
    g[SHARED] = s;
    s.server.catch(() => {
      if (g[SHARED] === s) delete g[SHARED];
    });
  }
  const s = shared;
  s.users++;
  let server: MinioServer;
  try {
    server = await s.server;
  } catch (err) {
    s.users--;
    throw err;
  }
  let released = false;
  return {
    ...server,
    config: (bucket, prefix) => server.config(bucket, prefix),
    restart: () => server.restart(),
    async stop() {
      if (released) return;
      released = true;
      s.users--;
      if (s.users === 0) {
        if (g[SHARED] === s) delete g[SHARED];
        await server.stop();
      }
    },
  };
}

/** bucketKeys lists every object key in `bucket`, sorted, straight from MinIO. */
export async function bucketKeys(m: MinioServer, bucket: string): Promise<string[]> {
  const u = new URL(m.endpoint);
  const c = new MinioClient({
    endPoint: u.hostname,
    port: Number(u.port),
    useSSL: false,
    accessKey: m.accessKey,
    secretKey: m.secretKey,
  });
  const keys: string[] = [];
  for await (const o of c.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>)
    if (o.name) keys.push(o.name);
  return keys.sort();
}

/** berthS3Env is the BERTH_* environment that points a Berth process at `cfg`'s bucket. */
export function berthS3Env(cfg: S3Config): Record<string, string> {
  return {
    BERTH_STORAGE_DRIVER: 's3',
    BERTH_STORAGE_S3_ENDPOINT: cfg.endpoint,
    BERTH_STORAGE_S3_BUCKET: cfg.bucket,
    BERTH_STORAGE_S3_ACCESS_KEY: cfg.accessKey,
    BERTH_STORAGE_S3_SECRET_KEY: cfg.secretKey,
  };
}
