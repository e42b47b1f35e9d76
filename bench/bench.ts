import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { Readable } from 'node:stream';
import { Client, expect } from './lib/http.js';
import { blast, runConcurrent, summarize, type BlastRequest, type Sample } from './lib/load.js';
import { callDelta, perOp, reads, startBenchMinio, total, type BenchMinio } from './lib/minio.js';
import {
  BigBlob,
  GiB,
  MiB,
  OCI_MANIFEST,
  configBlob,
  imageManifest,
  mountOrPush,
  pullImage,
  pullWhole,
  pushChunked,
  pushImage,
  pushMonolithic,
  pushStream,
  putManifest,
  sha256,
} from './lib/oci.js';
import { curlGet, runWrk, startContainerd } from './lib/neutral.js';
import {
  ALL,
  findBinary,
  startUpstream,
  type RegistryKind,
  type Running,
  type StartOptions,
} from './lib/registries.js';
import { cpuSeconds, peakRss, resetPeak } from './lib/rss.js';
import { runZb } from './lib/zb.js';

/** Profile is the size of every workload; `quick` runs in seconds for CI. */
export interface Profile {
  name: 'full' | 'quick';
  bigBlob: number;
  w2Images: number;
  /** w2Warmup: images pushed and pulled, unmeasured, before workload 2 is measured. */
  w2Warmup: number;
  w3Manifests: number;
  w3Warm: number;
  w4Repos: number;
  w4Tags: number;
  w4Requests: number;
  w5Blob: number;
  w6Pulls: number;
  w6Layer: number;
  w7Blob: number;
  w7Pushes: number;
  /** w8Big: the big layer of workload 8's image (k × 8 MiB); w8Small layers of w8SmallSize. */
  w8Big: number;
  w8Small: number;
  w8SmallSize: number;
  /** wrkSeconds is the length of each measured wrk run (workload 3's neutral rows). */
  wrkSeconds: number;
}

export const FULL: Profile = {
  name: 'full',
  bigBlob: GiB,
  w2Images: 200,
  w2Warmup: 20,
  w3Manifests: 2000,
  w3Warm: 5000,
  w4Repos: 10_000,
  w4Tags: 10_000,
  w4Requests: 50,
  w5Blob: 256 * MiB,
  w6Pulls: 200,
  w6Layer: 8 * MiB,
  w7Blob: GiB,
  w7Pushes: 8,
  w8Big: 256 * MiB,
  w8Small: 4,
  w8SmallSize: MiB,
  wrkSeconds: 20,
};

export const QUICK: Profile = {
  name: 'quick',
  bigBlob: 32 * MiB,
  w2Images: 20,
  w2Warmup: 2,
  w3Manifests: 100,
  w3Warm: 1000,
  w4Repos: 200,
  w4Tags: 200,
  w4Requests: 20,
  w5Blob: 32 * MiB,
  w6Pulls: 50,
  w6Layer: MiB,
  w7Blob: 16 * MiB,
  w7Pushes: 8,
  w8Big: 8 * MiB,
  w8Small: 3,
  w8SmallSize: 256 * 1024,
  wrkSeconds: 3,
};

/** Row is one line of the result table: one workload on one registry. */
export interface Row {
  workload: number;
  key: string;
  label: string;
  registry: string;
  /** value is the throughput in `unit` (bigger is better). */
  value: number;
  unit: string;
  p50: number;
  p99: number;
  ops: number;
  errors: number;
  errorSamples: string[];
  /** calls: S3 calls per operation (total) and the formatted breakdown. */
  calls: number;
  /** readCalls: GET/HEAD/List calls per operation (what the request path costs). */
  readCalls: number;
  callsText: string;
  /** rss: peak RSS (bytes) of the server's processes during this workload. */
  rss: number;
  /** cpu: CPU seconds (user + system) of the server's processes during this workload. */
  cpu: number;
  /** cpuPerGiB: the server's CPU seconds per GiB moved (workload 1's pulls). */
  cpuPerGiB?: number;
  note?: string;
}

export interface BenchOptions {
  profile: Profile;
  registries?: string[];
  workloads?: number[];
  /** node flags for Berth (e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/prof']). */
  berthNodeArgs?: string[];
  berthWorkers?: number;
  /** compiled Berth CLI (from buildBerth); undefined runs server/cli.ts through tsx. */
  berthCompiled?: string;
  log?: (msg: string) => void;
}

export interface BenchResult {
  profile: string;
  machine: Record<string, string | number>;
  registries: { name: string; version: string; ran: boolean; why?: string }[];
  ceiling: Row[];
  rows: Row[];
  targets: Target[];
  table: string;
  startedAt: string;
  finishedAt: string;
}

export interface Target {
  measure: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

const MANIFEST_ACCEPT = `${OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json`;

interface Ctx {
  kind: RegistryKind;
  reg: Running;
  minio: BenchMinio;
  client: Client;
  profile: Profile;
  rows: Row[];
  bucket: string;
  log: (msg: string) => void;
  /** replicas are the extra processes of the registry on the same bucket while a step runs
   * against several; measure counts their RSS and CPU with the first one's. */
  replicas: Running[];
  /** start: the options the registry was started with (a dedicated process starts alike). */
  start: StartOptions;
  /** as: the registry name rows are recorded under, when not the kind's (workload 8's upstream). */
  as?: string;
}

/** serverPids lists the processes of every running replica of the registry under test. */
function serverPids(ctx: Ctx): number[] {
  return [...ctx.reg.pids(), ...ctx.replicas.flatMap((r) => r.pids())];
}

/**
 * measure runs one timed step and records its row: S3 calls (MinIO's counters before and
 * after, divided by `ops`), the peak RSS of the server during the step and its CPU time.
 */
async function measure(
  ctx: Ctx,
  workload: number,
  key: string,
  label: string,
  unit: 'MB/s' | 'op/s',
  step: () => Promise<Sample>,
  note?: string,
): Promise<Row> {
  const pids = serverPids(ctx);
  resetPeak(pids);
  const cpu0 = cpuSeconds(pids);
  const before = await ctx.minio.calls();
  const s = await step();
  // Let the server's background work of this step (and MinIO's counters) settle.
  await new Promise((r) => setTimeout(r, 200));
  const after = await ctx.minio.calls();
  const pidsAfter = serverPids(ctx);
  const d = callDelta(before, after);
  const sum = summarize(s);
  if (s.planned !== undefined) {
    note = [note, `stopped after ${MEASURE_BUDGET_MS / 1000} s: ${s.ops} of ${s.planned} ops`]
      .filter(Boolean)
      .join('; ');
  }
  const row: Row = {
    workload,
    key,
    label,
    registry: ctx.as ?? ctx.kind.name,
    value: unit === 'MB/s' ? sum.mbPerSec : sum.opsPerSec,
    unit,
    p50: sum.p50,
    p99: sum.p99,
    ops: s.ops,
    errors: s.errors,
    errorSamples: s.errorSamples,
    calls: s.ops > 0 ? total(d) / s.ops : 0,
    readCalls: s.ops > 0 ? reads(d) / s.ops : 0,
    callsText: perOp(d, s.ops),
    rss: peakRss(pidsAfter),
    cpu: cpuSeconds(pidsAfter) - cpu0,
    note,
  };
  ctx.rows.push(row);
  ctx.log(
    `  ${row.registry} ${key}: ${fmtValue(row)} p50 ${fmtMs(row.p50)} p99 ${fmtMs(row.p99)} ` +
      `err ${row.errors}${row.errors ? ' ' + row.errorSamples.join(' | ') : ''} calls/op ${row.callsText} ` +
      `rss ${(row.rss / MiB).toFixed(0)} MiB`,
  );
  return row;
}

/**
 * settle waits (at most SETTLE_MAX_MS) until the server and MinIO have used under 5% of a
 * core for half a second: what a request left running in the background (a cache copy, a
 * flush) is done before the next step is timed. The same wait for every registry.
 */
async function settle(ctx: Ctx): Promise<void> {
  const pids = () => [...ctx.reg.pids(), ...ctx.minio.pids()];
  const until = performance.now() + SETTLE_MAX_MS;
  let last = cpuSeconds(pids());
  while (performance.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    const now = cpuSeconds(pids());
    if (now - last < 0.025) return;
    last = now;
  }
  ctx.log(`  ${ctx.kind.name}: still busy after ${SETTLE_MAX_MS / 1000} s; going on`);
}
const SETTLE_MAX_MS = 30_000;

function single(fn: () => Promise<number>): () => Promise<Sample> {
  return () => runConcurrent(1, 1, async () => fn());
}

// ---- workloads -------------------------------------------------------------------------

async function w1(ctx: Ctx) {
  const { client: c, profile: p } = ctx;
  const size = p.bigBlob;
  const label = `${size / MiB} MiB`;
  const stream = new BigBlob(size, `w1s-${ctx.kind.name}`);
  await measure(
    ctx,
    1,
    'w1-push-stream',
    `1: push ${label}, one stream`,
    'MB/s',
    single(async () => {
      await pushStream(c, 'bench/w1', stream.stream(), stream.digest);
      return size;
    }),
  );
  const chunked = new BigBlob(size, `w1c-${ctx.kind.name}`);
  await measure(
    ctx,
    1,
    'w1-push-chunked',
    `1: push ${label}, 8 MiB chunks`,
    'MB/s',
    single(async () => {
      await pushChunked([c], 'bench/w1', chunked);
      return size;
    }),
  );
  // A third blob, pushed like the first (unmeasured), for curl's first pull: one not
  // pulled yet, stored the same way as the one the own client pulls first.
  const forCurl = new BigBlob(size, `w1n-${ctx.kind.name}`);
  await pushStream(c, 'bench/w1', forCurl.stream(), forCurl.digest);
  const pull = async () => {
    const r = expect(await c.download(`/v2/bench/w1/blobs/${stream.digest}`), [200], 'GET blob');
    if (r.bytes !== size) throw new Error(`pulled ${r.bytes} bytes, want ${size}`);
    return r.bytes;
  };
  await pullRows(ctx, { size, label, key: '', client: '' }, pull);
  // The same with curl, what a user's client sees, on the third blob.
  await settle(ctx);
  const curlPull = async () => {
    const n = await curlGet(`${ctx.reg.url}/v2/bench/w1/blobs/${forCurl.digest}`);
    if (n !== size) throw new Error(`curl pulled ${n} bytes, want ${size}`);
    return n;
  };
  await pullRows(ctx, { size, label, key: '-curl', client: ', curl' }, curlPull);
  await w1Containerd(ctx, size, label);
}

/**
 * pullRows measures workload 1's two pull rows for one client: the first pull through the
 * process on its own (the one that finds no copy in Berth's blob cache and starts one),
 * then, once the server and MinIO are idle again, three pulls one after another (one lasts
 * a second or two, and the machine's load moves on that scale) as their total rate; both
 * with the server's CPU per GiB. `key` and `client` name the client in the rows.
 */
async function pullRows(
  ctx: Ctx,
  row: { size: number; label: string; key: string; client: string },
  pull: () => Promise<number>,
): Promise<void> {
  const { size, label, key, client } = row;
  const first = await measure(
    ctx,
    1,
    `w1-pull-first${key}`,
    `1: pull ${label} (proxied), first pull${client}`,
    'MB/s',
    single(pull),
  );
  // What the server does after answering (a blob cache filling from storage) is CPU the
  // pull cost too: reported beside the row's own.
  const cpuBefore = cpuSeconds(serverPids(ctx));
  await settle(ctx);
  const after = (cpuSeconds(serverPids(ctx)) - cpuBefore) / (size / GiB);
  const later = await measure(
    ctx,
    1,
    `w1-pull${key}`,
    `1: pull ${label} (proxied), 3 more in a row${client}`,
    'MB/s',
    () => runConcurrent(3, 1, pull),
  );
  perGiB(ctx, first, size);
  if (first.errors === 0 && after >= 0.01) {
    first.note = `${first.note ?? ''} (+${after.toFixed(2)} s/GiB after the answer)`;
  }
  perGiB(ctx, later, 3 * size);
}

/**
 * w1Containerd: the pulls again with containerd's fetcher, as a node pulls an image: a
 * fourth blob (pushed like the first, unmeasured) is the one layer of an image tagged
 * `bench/w1:ctr`, fetched once, then three more times in a row, each into a new namespace
 * so that every fetch transfers it again (see ContainerdFetcher).
 */
async function w1Containerd(ctx: Ctx, size: number, label: string): Promise<void> {
  const c = ctx.client;
  const layer = new BigBlob(size, `w1k-${ctx.kind.name}`);
  await pushStream(c, 'bench/w1', layer.stream(), layer.digest);
  const config = configBlob('w1-ctr');
  await pushMonolithic(c, 'bench/w1', config);
  const img = imageManifest(config, [{ digest: layer.digest, size }]);
  await putManifest(c, 'bench/w1', 'ctr', img.manifest);
  const fetcher = await startContainerd();
  try {
    const ref = `${new URL(ctx.reg.url).host}/bench/w1:ctr`;
    const pull = async () => {
      await fetcher.fetch(ref);
      return size;
    };
    await settle(ctx);
    await pullRows(ctx, { size, label, key: '-ctr', client: ', containerd' }, pull);
  } finally {
    await fetcher.stop();
  }
}

/** perGiB records the server's CPU seconds per GiB a pull row moved, in the row and its note. */
function perGiB(ctx: Ctx, row: Row, bytes: number): void {
  if (row.errors > 0) return;
  row.cpuPerGiB = row.cpu / (bytes / GiB);
  row.note = [row.note, `CPU ${row.cpuPerGiB.toFixed(2)} s/GiB`].filter(Boolean).join('; ');
  ctx.log(`  ${row.registry} ${row.key}: server CPU ${row.cpuPerGiB.toFixed(2)} s per GiB`);
}

async function w2(ctx: Ctx) {
  const { client: c, profile: p } = ctx;
  // Every registry gets the same unmeasured warm-up (a process's first requests pay for
  // its JIT, connection pools and caches), in a repository of its own.
  await runConcurrent(p.w2Warmup, 10, async (i) => {
    await pushImage(c, 'bench/w2-warmup', `w${i}`, randomBytes(MiB));
    await pullImage(c, 'bench/w2-warmup', `w${i}`);
  });
  const layers = Array.from({ length: p.w2Images }, () => randomBytes(MiB));
  const tags: string[] = [];
  await measure(ctx, 2, 'w2-push', '2: small image push (1 MiB) c=10, own client', 'op/s', () =>
    runConcurrent(p.w2Images, 10, async (i) => {
      await pushImage(c, 'bench/w2', `i${i}`, layers[i]!);
      tags[i] = `i${i}`;
      return MiB;
    }),
  );
  await measure(ctx, 2, 'w2-pull', '2: small image pull (1 MiB) c=10, own client', 'op/s', () =>
    runConcurrent(p.w2Images, 10, (i) => pullImage(c, 'bench/w2', `i${i}`)),
  );
  const zb = findBinary('zb');
  if (zb === undefined) {
    ctx.log('  zb not found: zb rows skipped');
    return;
  }
  const n = Math.max(10, Math.floor(p.w2Images / 10) * 10);
  for (const [key, test] of [
    ['w2-zb-push', 'Push Monolith 1MB'],
    ['w2-zb-pull', 'Pull 1MB'],
  ] as const) {
    let zbRps = NaN;
    const row = await measure(ctx, 2, key, `2: zb "${test}" c=10`, 'op/s', async () => {
      const r = await runZb(zb, ctx.reg.url, test, 10, n, `bench/zb-${key}`);
      const res = r.result;
      if (!res) {
        return {
          ops: n,
          errors: n,
          errorSamples: [`zb exited ${r.code}: ${r.output.slice(-300)}`],
          wallMs: 1,
          latencies: [],
          bytes: 0,
        };
      }
      zbRps = res.rps;
      // zb prints p50 and p99 only: a two-point sample reproduces both.
      return {
        ops: n,
        errors: res.failed,
        errorSamples: res.errors,
        wallMs: res.wallMs,
        latencies: [res.p50, res.p99],
        bytes: 0,
      };
    });
    // zb's own rate (n / its wall time).
    if (!Number.isNaN(zbRps)) row.value = zbRps;
  }
}

async function w3(ctx: Ctx) {
  const { client: c, profile: p } = ctx;
  const repo = 'bench/w3';
  const layer = randomBytes(1024);
  const layerDigest = await pushMonolithic(c, repo, layer);
  const config = configBlob('w3');
  await pushMonolithic(c, repo, config);
  const N = p.w3Manifests;
  const digests: string[] = [];
  await measure(ctx, 3, 'w3-setup-put', '3: setup: manifest PUT by tag c=16', 'op/s', () =>
    runConcurrent(N, 16, async (i) => {
      const img = imageManifest(config, [{ digest: layerDigest, size: layer.length }], `m${i}`);
      await putManifest(c, repo, `m${i}`, img.manifest);
      digests[i] = img.digest;
    }),
  );
  const B = Math.max(10, Math.floor(N / 4));
  const blobs: string[] = [];
  await runConcurrent(B, 16, async (i) => {
    blobs[i] = await pushMonolithic(c, repo, Buffer.from(`blob ${i} ${Math.random()}`));
  });
  ctx.log(`  restarting ${ctx.kind.name} (cold caches)`);
  await ctx.reg.restart();
  ctx.client.close();
  ctx.client = new Client(ctx.reg.url);
  const c2 = ctx.client;
  // Warm the fresh process (JIT, connection pools) on one extra manifest and the shared
  // layer only, so that the first cold variant does not also pay the process's warm-up.
  const warm = imageManifest(config, [{ digest: layerDigest, size: layer.length }], 'warmup');
  await putManifest(c2, repo, 'warmup', warm.manifest);
  await blast({
    base: ctx.reg.url,
    requests: [
      {
        method: 'HEAD',
        path: `/v2/${repo}/manifests/warmup`,
        headers: { accept: MANIFEST_ACCEPT },
      },
      { method: 'GET', path: `/v2/${repo}/manifests/warmup`, headers: { accept: MANIFEST_ACCEPT } },
      {
        method: 'HEAD',
        path: `/v2/${repo}/manifests/${warm.digest}`,
        headers: { accept: MANIFEST_ACCEPT },
      },
      {
        method: 'GET',
        path: `/v2/${repo}/manifests/${warm.digest}`,
        headers: { accept: MANIFEST_ACCEPT },
      },
      { method: 'HEAD', path: `/v2/${repo}/blobs/${layerDigest}` },
    ],
    count: 500,
    concurrency: 32,
    ok: [200],
  });
  const q = Math.floor(N / 4);
  const variants: {
    key: string;
    label: string;
    method: 'GET' | 'HEAD';
    refs: string[];
    kind: string;
  }[] = [
    {
      key: 'w3-head-tag',
      label: 'manifest HEAD by tag',
      method: 'HEAD',
      refs: range(0, q).map((i) => `m${i}`),
      kind: 'manifests',
    },
    {
      key: 'w3-get-tag',
      label: 'manifest GET by tag',
      method: 'GET',
      refs: range(q, 2 * q).map((i) => `m${i}`),
      kind: 'manifests',
    },
    {
      key: 'w3-head-digest',
      label: 'manifest HEAD by digest',
      method: 'HEAD',
      refs: range(2 * q, 3 * q).map((i) => digests[i]!),
      kind: 'manifests',
    },
    {
      key: 'w3-get-digest',
      label: 'manifest GET by digest',
      method: 'GET',
      refs: range(3 * q, 4 * q).map((i) => digests[i]!),
      kind: 'manifests',
    },
    { key: 'w3-blob-head', label: 'blob HEAD', method: 'HEAD', refs: blobs, kind: 'blobs' },
  ];
  for (const v of variants) {
    await measure(ctx, 3, `${v.key}-cold`, `3: ${v.label}, cold, c=32`, 'op/s', () =>
      runConcurrent(
        v.refs.length,
        32,
        async (i) => {
          const r = await c2.request(v.method, `/v2/${repo}/${v.kind}/${v.refs[i]}`, {
            headers: { accept: MANIFEST_ACCEPT },
          });
          if (r.status !== 200) throw new Error(`${v.method} ${v.refs[i]}: HTTP ${r.status}`);
        },
        MEASURE_BUDGET_MS,
      ),
    );
  }
  for (const v of variants) {
    const requests: BlastRequest[] = v.refs.map((ref) => ({
      method: v.method,
      path: `/v2/${repo}/${v.kind}/${ref}`,
      headers: { accept: MANIFEST_ACCEPT },
    }));
    await measure(ctx, 3, `${v.key}-warm`, `3: ${v.label}, warm, c=32`, 'op/s', () =>
      blast({
        base: ctx.reg.url,
        requests,
        count: p.w3Warm,
        concurrency: 32,
        ok: [200],
        budgetMs: MEASURE_BUDGET_MS,
      }),
    );
  }
  await w3Neutral(ctx, repo, variants[1]!.refs);
}

/**
 * w3Neutral measures warm manifest GETs by tag with wrk at c=32: against the registry
 * alone, then against two and three replicas on the same bucket (one wrk thread per
 * replica, the connections split evenly), where the registry supports that setup.
 */
async function w3Neutral(ctx: Ctx, repo: string, tags: string[]): Promise<void> {
  const { profile: p } = ctx;
  const paths = tags.map((t) => `/v2/${repo}/manifests/${t}`);
  const wrk = (bases: string[], seconds: number) =>
    runWrk({
      bases,
      paths,
      headers: { Accept: MANIFEST_ACCEPT },
      connections: 32,
      seconds,
    });
  await measure(
    ctx,
    3,
    'w3-get-tag-warm-wrk',
    '3: manifest GET by tag, warm, c=32, wrk',
    'op/s',
    () => wrk([ctx.reg.url], p.wrkSeconds),
  );
  if (!ctx.kind.replicas) {
    ctx.log(`  ${ctx.kind.name}: replica rows of workload 3 skipped (no shared-bucket replicas)`);
    return;
  }
  try {
    for (const n of [2, 3]) {
      while (ctx.replicas.length < n - 1) ctx.replicas.push(await ctx.reg.replica());
      const bases = [ctx.reg.url, ...ctx.replicas.map((r) => r.url)];
      // The new replica is warmed like the first process was (unmeasured), for 6 s: a Berth
      // process that starts next to others keeps tags only once it has joined, 5 s after it
      // wrote its peers entry (ADR 0012, ADR 0025).
      await wrk(bases, 6);
      await measure(
        ctx,
        3,
        `w3-get-tag-warm-${n}r`,
        `3: manifest GET by tag, warm, ${n} replicas, c=${Math.ceil(32 / n) * n}, wrk`,
        'op/s',
        () => wrk(bases, p.wrkSeconds),
      );
    }
  } finally {
    for (const r of ctx.replicas.splice(0)) await r.stop();
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
}

/** MEASURE_BUDGET_MS bounds the measured request loops of workloads 3 and 4 (zot walks a
 * repository's manifests on every blob HEAD: seconds per request at 2,000 manifests). */
export const MEASURE_BUDGET_MS = 120_000;

/** WALK_LIMIT_MS bounds one full catalog or tag walk (a registry that walks the bucket per
 * page can take many minutes at 10k repositories). */
const WALK_LIMIT_MS = 120_000;

async function w4(ctx: Ctx) {
  const { client: c, profile: p } = ctx;
  const seedRepo = 'bench/w4seed';
  const blob = Buffer.from('{"bench":"w4"}');
  const digest = await pushMonolithic(c, seedRepo, blob);
  // One blob serves as config and layer: each repo costs one mount and one manifest PUT.
  const m = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: blob.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: blob.length }],
    }),
  );
  const pad = (i: number) => String(i).padStart(5, '0');
  await measure(
    ctx,
    4,
    'w4-seed-repos',
    `4: setup: ${p.w4Repos} repos (mount + manifest PUT) c=16`,
    'op/s',
    () =>
      runConcurrent(p.w4Repos, 16, async (i) => {
        const repo = `bench/w4/r${pad(i)}`;
        await mountOrPush(c, repo, seedRepo, blob, digest);
        await putManifest(c, repo, 'latest', m);
      }),
  );
  await mountOrPush(c, 'bench/w4tags', seedRepo, blob, digest);
  await measure(ctx, 4, 'w4-seed-tags', `4: setup: ${p.w4Tags} tags in one repo c=16`, 'op/s', () =>
    runConcurrent(p.w4Tags, 16, (i) => putManifest(c, 'bench/w4tags', `t${pad(i)}`, m)),
  );
  for (const [key, label, path, want] of [
    ['w4-catalog', `catalog page n=1000 (${p.w4Repos} repos)`, '/v2/_catalog?n=1000', p.w4Repos],
    [
      'w4-tags',
      `tag list page n=1000 (${p.w4Tags} tags)`,
      '/v2/bench/w4tags/tags/list?n=1000',
      p.w4Tags,
    ],
  ] as const) {
    // Bound the time: a registry that walks the bucket gets fewer samples.
    const t0 = performance.now();
    const probe = await c.request('GET', path, { keep: true, timeoutMs: 300_000 });
    const first = performance.now() - t0;
    expect(probe, [200], `GET ${path}`);
    const count = Math.max(3, Math.min(p.w4Requests, Math.floor(30_000 / Math.max(first, 1))));
    await measure(ctx, 4, key, `4: ${label}, c=4`, 'op/s', () =>
      blast(
        {
          base: ctx.reg.url,
          requests: [{ method: 'GET', path }],
          count,
          concurrency: Math.min(4, count),
          ok: [200],
        },
        1,
      ),
    );
    await measure(
      ctx,
      4,
      `${key}-walk`,
      `4: ${label.split(' page')[0]} full walk (Link pages)`,
      'op/s',
      single(async () => {
        let next: string | undefined = path;
        let entries = 0;
        const deadline = performance.now() + WALK_LIMIT_MS;
        while (next !== undefined) {
          if (performance.now() > deadline) {
            throw new Error(`walk stopped after ${WALK_LIMIT_MS / 1000} s at ${entries} entries`);
          }
          const r = expect(
            await c.request('GET', next, { keep: true, timeoutMs: 300_000 }),
            [200],
            `GET ${next}`,
          );
          const body = JSON.parse(r.body!.toString('utf8')) as {
            repositories?: string[];
            tags?: string[];
          };
          entries += (body.repositories ?? body.tags ?? []).filter(
            (x) => !x.startsWith('bench/w4seed'),
          ).length;
          const link = r.headers.link;
          const mm = typeof link === 'string' ? /<([^>]+)>/.exec(link) : null;
          next = mm ? mm[1] : undefined;
        }
        if (entries < want) throw new Error(`walk returned ${entries} entries, want ≥ ${want}`);
        return 0;
      }),
    );
  }
}

async function w5(ctx: Ctx) {
  if (!ctx.kind.replicas) {
    ctx.log(
      `  ${ctx.kind.name}: workload 5 skipped (no shared-bucket replicas without its cluster mode)`,
    );
    return;
  }
  const b = await ctx.reg.replica();
  const cb = new Client(b.url);
  try {
    const blob = new BigBlob(ctx.profile.w5Blob, `w5-${ctx.kind.name}`);
    const row = await measure(
      ctx,
      5,
      'w5-two-replicas',
      `5: ${blob.size / MiB} MiB in 8 MiB chunks alternating 2 replicas`,
      'MB/s',
      single(async () => {
        await pushChunked([ctx.client, cb], 'bench/w5', blob);
        return blob.size;
      }),
    );
    // Verify on replica B: the stored bytes must hash to the digest.
    const h = createHash('sha256');
    const r = await cb.request('GET', `/v2/bench/w5/blobs/${blob.digest}`, {
      follow: true,
      onData: (d) => h.update(d),
    });
    const got = 'sha256:' + h.digest('hex');
    if (r.status !== 200 || got !== blob.digest) {
      row.errors++;
      row.errorSamples.push(`GET on replica B: HTTP ${r.status}, digest ${got}`);
      ctx.log(`  ${ctx.kind.name} w5 verify FAILED: HTTP ${r.status} ${got}`);
    }
  } finally {
    cb.close();
    await b.stop();
  }
}

async function w6(ctx: Ctx) {
  const { client: c, profile: p } = ctx;
  await pushImage(c, 'bench/w6', 'storm', randomBytes(p.w6Layer));
  const storm = new Client(ctx.reg.url, p.w6Pulls);
  try {
    await measure(
      ctx,
      6,
      'w6-storm',
      `6: pull storm, ${p.w6Pulls} concurrent pulls (${p.w6Layer / MiB} MiB layer)`,
      'op/s',
      () => runConcurrent(p.w6Pulls, p.w6Pulls, () => pullImage(storm, 'bench/w6', 'storm')),
    );
  } finally {
    storm.close();
  }
}

async function w7(ctx: Ctx) {
  const { profile: p } = ctx;
  const c = new Client(ctx.reg.url, p.w7Pushes);
  const blobs = Array.from(
    { length: p.w7Pushes },
    (_, i) => new BigBlob(p.w7Blob, `w7-${i}-${ctx.kind.name}`),
  );
  try {
    await measure(
      ctx,
      7,
      'w7-8x-push',
      `7: ${p.w7Pushes} concurrent pushes of ${p.w7Blob / MiB} MiB`,
      'MB/s',
      () =>
        runConcurrent(p.w7Pushes, p.w7Pushes, async (i) => {
          const b = blobs[i]!;
          await pushStream(c, `bench/w7-${i}`, b.stream(), b.digest);
          return b.size;
        }),
    );
  } finally {
    c.close();
  }
}

/**
 * w8 is the pull-through cache (issue 17). An upstream, distribution v3 on filesystem storage
 * (startUpstream), holds two images of one big and several small layers. The first is pulled
 * straight from the upstream (three pulls in a row), then through a dedicated process of the
 * registry that mirrors the upstream, on a bucket of its own, empty: after an unmeasured
 * warm-up on a small third image, the first pull, and once the server and MinIO are idle,
 * three more in a row (warm). Then the same with curl for the second image's big layer (its
 * manifest fetched first, unmeasured, as a client does), so that curl's first pull through
 * the mirror is uncached too. The registry under test in the other workloads never gets the
 * mirror's settings.
 */
async function w8(ctx: Ctx) {
  const { profile: p } = ctx;
  if (ctx.kind.mirrors !== undefined) {
    ctx.log(`  ${ctx.kind.name}: workload 8 skipped (${ctx.kind.mirrors})`);
    return;
  }
  const repo = 'bench/w8';
  const bucket = `${ctx.bucket}-w8`;
  const up = await startUpstream();
  const upCtx: Ctx = {
    ...ctx,
    as: 'upstream (distribution v3, filesystem)',
    reg: up,
    client: new Client(up.url),
    replicas: [],
  };
  let mctx: Ctx | undefined;
  try {
    const small = Array.from({ length: p.w8Small }, () => randomBytes(p.w8SmallSize));
    // push puts one image on the upstream and returns its big layer and its size in bytes
    // (manifest, config and layers: what a whole pull moves).
    const push = async (tag: string): Promise<{ big: BigBlob; bytes: number }> => {
      const c = upCtx.client;
      const big = new BigBlob(p.w8Big, `w8-${tag}-${ctx.kind.name}`);
      await pushStream(c, repo, big.stream(), big.digest);
      const layers = [{ digest: big.digest, size: big.size }];
      for (const b of small)
        layers.push({ digest: await pushMonolithic(c, repo, b), size: b.length });
      const config = configBlob(`w8-${tag}`);
      await pushMonolithic(c, repo, config);
      const { manifest } = imageManifest(config, layers);
      await putManifest(c, repo, tag, manifest);
      const bytes = manifest.length + config.length + layers.reduce((a, l) => a + l.size, 0);
      return { big, bytes };
    };
    const { bytes } = await push('v1');
    const { big: forCurl } = await push('curl');
    // A small image every mirror pulls through twice, unmeasured, before the first pull is
    // timed: a fresh process's first requests pay for its JIT and connection pools, which a
    // mirror in service has long paid (as workload 2 warms up every registry).
    const warmup = randomBytes(p.w8SmallSize);
    const warmupConfig = configBlob('w8-warmup');
    await pushMonolithic(upCtx.client, repo, warmup);
    await pushMonolithic(upCtx.client, repo, warmupConfig);
    await putManifest(
      upCtx.client,
      repo,
      'warmup',
      imageManifest(warmupConfig, [{ digest: sha256(warmup), size: warmup.length }]).manifest,
    );
    const what = `${p.w8Big / MiB} MiB + ${p.w8Small} × ${p.w8SmallSize / 1024} KiB`;
    const pull = (x: Ctx) => () => pullWhole(x.client, repo, 'v1');
    const curlPull = (x: Ctx) => async () => {
      const n = await curlGet(`${x.reg.url}/v2/${repo}/blobs/${forCurl.digest}`);
      if (n !== p.w8Big) throw new Error(`curl pulled ${n} bytes, want ${p.w8Big}`);
      return n;
    };
    const inRun = `in ${ctx.kind.name}'s run`;
    const direct = await measure(
      upCtx,
      8,
      'w8-direct',
      `8: pull ${what}, direct from the upstream, 3 in a row`,
      'MB/s',
      () => runConcurrent(3, 1, pull(upCtx)),
      inRun,
    );
    const directCurl = await measure(
      upCtx,
      8,
      'w8-direct-curl',
      `8: pull the ${p.w8Big / MiB} MiB layer, direct from the upstream, 3 in a row, curl`,
      'MB/s',
      () => runConcurrent(3, 1, curlPull(upCtx)),
      inRun,
    );
    perGiB(upCtx, direct, 3 * bytes);
    perGiB(upCtx, directCurl, 3 * p.w8Big);
    const mirror = await ctx.kind.start(ctx.minio, bucket, { ...ctx.start, mirrorOf: up.url });
    mctx = { ...ctx, reg: mirror, client: new Client(mirror.url), replicas: [] };
    const m = mctx;
    await pullWhole(m.client, repo, 'warmup');
    await pullWhole(m.client, repo, 'warmup');
    await settle(m);
    const vsDirect = (row: Row, d: Row, bytes: number) => {
      perGiB(m, row, bytes);
      if (row.errors > 0 || d.errors > 0) return;
      row.note = [row.note, `${ratio(row.value, d.value)} direct`].filter(Boolean).join('; ');
    };
    const first = await measure(
      m,
      8,
      'w8-mirror-first',
      `8: pull ${what} through the mirror, first (empty cache)`,
      'MB/s',
      single(pull(m)),
    );
    vsDirect(first, direct, bytes);
    await settle(m);
    const warm = await measure(
      m,
      8,
      'w8-mirror-warm',
      `8: pull ${what} through the mirror, warm, 3 in a row`,
      'MB/s',
      () => runConcurrent(3, 1, pull(m)),
    );
    vsDirect(warm, direct, 3 * bytes);
    expect(
      await m.client.request('GET', `/v2/${repo}/manifests/curl`, {
        keep: true,
        headers: { accept: MANIFEST_ACCEPT },
      }),
      [200],
      'GET manifest through the mirror',
    );
    await settle(m);
    const firstCurl = await measure(
      m,
      8,
      'w8-mirror-first-curl',
      `8: pull the ${p.w8Big / MiB} MiB layer through the mirror, first (empty cache), curl`,
      'MB/s',
      single(curlPull(m)),
    );
    vsDirect(firstCurl, directCurl, p.w8Big);
    await settle(m);
    const warmCurl = await measure(
      m,
      8,
      'w8-mirror-warm-curl',
      `8: pull the ${p.w8Big / MiB} MiB layer through the mirror, warm, 3 in a row, curl`,
      'MB/s',
      () => runConcurrent(3, 1, curlPull(m)),
    );
    vsDirect(warmCurl, directCurl, 3 * p.w8Big);
  } finally {
    upCtx.client.close();
    if (mctx) {
      mctx.client.close();
      await mctx.reg.stop();
    }
    await ctx.minio
      .dropBucket(bucket)
      .catch((err: unknown) => ctx.log(`bench: drop ${bucket}: ${String(err)}`));
    await up.stop();
  }
}

const WORKLOADS: Record<number, (ctx: Ctx) => Promise<void>> = {
  1: w1,
  7: w7,
  2: w2,
  3: w3,
  4: w4,
  6: w6,
  5: w5,
  8: w8,
};
const ORDER = [1, 7, 2, 3, 6, 5, 4, 8];

// ---- client ceiling ----------------------------------------------------------------------

async function ceiling(profile: Profile, log: (m: string) => void): Promise<Row[]> {
  const size = profile.bigBlob;
  // With the size, the server also serves an image of one layer that big (for containerd).
  const srv = spawn(
    process.execPath,
    [new URL('./lib/trivial-server.mjs', import.meta.url).pathname, String(size)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((resolve) =>
    srv.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))),
  );
  const url = `http://127.0.0.1:${port}`;
  const c = new Client(url);
  const rows: Row[] = [];
  const row = (key: string, label: string, unit: string, s: Sample) =>
    rows.push(ceilingRow({ key, label, unit, server: 'trivial node:http server' }, s, log));
  try {
    row(
      'ceil-small',
      '0: client ceiling: small GET c=32 (2 threads)',
      'op/s',
      await blast({
        base: url,
        requests: [{ method: 'GET', path: '/small' }],
        count: profile.w3Warm,
        concurrency: 32,
        ok: [200],
      }),
    );
    const blob = new BigBlob(size, 'ceiling');
    row(
      'ceil-push',
      `0: client ceiling: ${size / MiB} MiB one-stream PATCH`,
      'MB/s',
      await runConcurrent(1, 1, async () => {
        expect(
          await c.request('PATCH', '/upload', { body: blob.stream(), keep: true }),
          [202],
          'PATCH',
        );
        return size;
      }),
    );
    row(
      'ceil-pull',
      `0: client ceiling: ${size / MiB} MiB GET`,
      'MB/s',
      await runConcurrent(1, 1, async () => (await c.download(`/big?size=${size}`)).bytes),
    );
    // The neutral clients' ceilings: the most any registry could get from them on this host,
    // what the pull goals of issue 19 are read against (`targets`).
    row(
      'ceil-curl',
      `0: client ceiling: ${size / MiB} MiB GET, curl`,
      'MB/s',
      await runConcurrent(1, 1, () => curlGet(`${url}/big?size=${size}`)),
    );
    row(
      'ceil-ctr',
      `0: client ceiling: an image of one ${size / MiB} MiB layer, twice, containerd's fetcher`,
      'MB/s',
      await ctrCeiling(port, size),
    );
  } finally {
    c.close();
    srv.kill('SIGTERM');
  }
  return rows;
}

/** ceilingRow records one ceiling measurement (workload 0) and logs it. */
function ceilingRow(
  what: { key: string; label: string; unit: string; server: string },
  s: Sample,
  log: (m: string) => void,
): Row {
  const sum = summarize(s);
  const r: Row = {
    workload: 0,
    key: what.key,
    label: what.label,
    registry: what.server,
    unit: what.unit,
    value: what.unit === 'MB/s' ? sum.mbPerSec : sum.opsPerSec,
    p50: sum.p50,
    p99: sum.p99,
    ops: s.ops,
    errors: s.errors,
    errorSamples: s.errorSamples,
    calls: 0,
    readCalls: 0,
    callsText: '-',
    rss: 0,
    cpu: 0,
  };
  log(`  ceiling ${r.key}: ${fmtValue(r)} p50 ${fmtMs(r.p50)} p99 ${fmtMs(r.p99)}`);
  return r;
}

/**
 * minioCeiling is what curl gets straight from the bench's MinIO (a presigned GET of an
 * object as big as workload 1's blobs, three in a row): a first pull through a registry that
 * relays from MinIO, on the same cores, cannot beat it.
 */
async function minioCeiling(minio: BenchMinio, size: number, log: (m: string) => void) {
  const bucket = 'bench-ceiling';
  await minio.makeBucket(bucket);
  try {
    const blob = new BigBlob(size, 'ceiling-minio');
    await minio.client.putObject(bucket, 'blob', Readable.from(blob.stream()), size);
    const url = await minio.client.presignedGetObject(bucket, 'blob', 600);
    const s = await runConcurrent(3, 1, () => curlGet(url));
    return ceilingRow(
      {
        key: 'ceil-minio-curl',
        label: `0: client ceiling: ${size / MiB} MiB GET straight from MinIO, curl, 3 in a row`,
        unit: 'MB/s',
        server: 'MinIO (presigned GET)',
      },
      s,
      log,
    );
  } finally {
    await minio.dropBucket(bucket);
  }
}

/**
 * ctrCeiling fetches the trivial server's image twice with containerd's fetcher, as
 * w1Containerd fetches a registry's (each into a new namespace, so both transfer the layer).
 */
async function ctrCeiling(port: number, size: number): Promise<Sample> {
  const fetcher = await startContainerd();
  try {
    return await runConcurrent(2, 1, async () => {
      await fetcher.fetch(`127.0.0.1:${port}/ceiling:t`);
      return size;
    });
  } finally {
    await fetcher.stop();
  }
}

// ---- report --------------------------------------------------------------------------------

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(2)} ms`;
}

function fmtValue(r: Row): string {
  if (!Number.isFinite(r.value) || r.value === 0) return `0 ${r.unit}`;
  const v =
    r.value >= 100 ? r.value.toFixed(0) : r.value >= 10 ? r.value.toFixed(1) : r.value.toFixed(2);
  return `${v} ${r.unit}`;
}

function ratio(a: number, b: number): string {
  if (!Number.isFinite(a) || !Number.isFinite(b) || b === 0 || a === 0) return '-';
  return `${(a / b).toFixed(2)}×`;
}

/** table renders every row as one Markdown table, with Berth's throughput ratio to each peer. */
export function table(ceilingRows: Row[], rows: Row[]): string {
  const head =
    '| workload | registry | throughput | p50 | p99 | errors | S3 calls/op | peak RSS | Berth ÷ peer |\n' +
    '|---|---|---:|---:|---:|---:|---|---:|---:|';
  const lines = [head];
  for (const r of ceilingRows) {
    lines.push(
      `| ${r.label} | ${r.registry} | ${fmtValue(r)} | ${fmtMs(r.p50)} | ${fmtMs(r.p99)} | ${r.errors} | - | - | - |`,
    );
  }
  const keys = [...new Set(rows.map((r) => r.key))];
  for (const key of keys) {
    const group = rows.filter((r) => r.key === key);
    const b = group.find((r) => r.registry === 'berth');
    for (const r of group) {
      const rr =
        r.registry === 'berth' || !b || b.errors > 0 || r.errors > 0 ? '' : ratio(b.value, r.value);
      lines.push(
        `| ${r.label} | ${r.registry}${r.note ? ` (${r.note})` : ''} | ${fmtValue(r)} | ${fmtMs(r.p50)} | ${fmtMs(r.p99)} | ${r.errors} | ${r.callsText} | ${(r.rss / MiB).toFixed(0)} MiB | ${rr} |`,
      );
    }
  }
  return lines.join('\n');
}

/**
 * targets checks issue #5's table against the rows of this run; a goal measured with a
 * neutral client also says the most that client's ceiling (`ceiling` rows) allows here.
 */
export function targets(rows: Row[], ceiling: Row[] = []): Target[] {
  const get = (key: string, reg: string) => rows.find((r) => r.key === key && r.registry === reg);
  const peers = (key: string) =>
    rows.filter((r) => r.key === key && r.registry !== 'berth' && r.errors === 0);
  const best = (key: string) => peers(key).sort((a, b) => b.value - a.value)[0];
  const out: Target[] = [];
  const vs = (measure: string, key: string, want: number, extra?: (b: Row, p: Row) => boolean) => {
    const b = get(key, 'berth');
    const p = best(key);
    if (!b || !p) {
      out.push({
        measure,
        target: `≥ ${want}× best peer`,
        measured: b ? 'no peer ran' : 'Berth did not run',
        met: undefined,
      });
      return;
    }
    const x = b.value / p.value;
    const ok = b.errors === 0 && x >= want && (extra ? extra(b, p) : true);
    out.push({
      measure,
      target: `≥ ${want}× best peer`,
      measured: `${x.toFixed(2)}× (${fmtValue(b)} vs ${p.registry} ${fmtValue(p)}; p99 ${fmtMs(b.p99)} vs ${fmtMs(p.p99)})`,
      met: ok,
    });
  };
  vs('1 GiB single-stream push throughput', 'w1-push-stream', 1.2);
  vs('1 GiB pull throughput (proxied), repeat pulls', 'w1-pull', 1.0);
  // Issue 19: what neutral clients see, against distribution v3.
  const vsPeer = (measure: string, key: string, peer: string, want?: number, ceils?: string[]) => {
    const b = get(key, 'berth');
    const p = get(key, peer);
    // The lowest of the client's ceilings that ran binds.
    const c = ceiling
      .filter((r) => ceils?.includes(r.key) && r.errors === 0 && r.value > 0)
      .sort((x, y) => x.value - y.value)[0];
    const target = want === undefined ? `reported (no goal) vs ${peer}` : `≥ ${want}× ${peer}`;
    if (!b || !p) {
      const measured = b ? `${peer} did not run` : 'Berth did not run';
      out.push({ measure, target, measured, met: undefined });
      return;
    }
    const x = b.value / p.value;
    // What a registry serving this client at its ceiling would score against the peer.
    const most =
      c && p.errors === 0 && p.value > 0
        ? `; the client's ceiling here (${fmtValue(c)}) allows at most ${(c.value / p.value).toFixed(2)}×`
        : '';
    out.push({
      measure,
      target,
      measured: `${x.toFixed(2)}× (${fmtValue(b)} vs ${fmtValue(p)}; p99 ${fmtMs(b.p99)} vs ${fmtMs(p.p99)})${most}`,
      met: want === undefined ? undefined : b.errors === 0 && p.errors === 0 ? x >= want : false,
    });
  };
  const v3 = 'distribution-v3';
  // A first pull reads MinIO through the registry: curl straight from MinIO bounds it too.
  const first = ['ceil-curl', 'ceil-minio-curl'];
  vsPeer('1 GiB first pull (proxied), curl', 'w1-pull-first-curl', v3, 1.2, first);
  vsPeer('1 GiB later pulls (proxied), curl', 'w1-pull-curl', v3, 1.5, ['ceil-curl']);
  vsPeer('1 GiB first pull (proxied), containerd', 'w1-pull-first-ctr', v3, 1.2, ['ceil-ctr']);
  vsPeer('1 GiB later pulls (proxied), containerd', 'w1-pull-ctr', v3, 1.5, ['ceil-ctr']);
  vsPeer(
    'manifest GET by tag, warm, 3 replicas, wrk c=33',
    'w3-get-tag-warm-3r',
    'distribution-v3',
    3,
  );
  vsPeer('tag list full walk at 10k', 'w4-tags-walk', 'distribution-v2.8');
  // Issue 17: the pull-through cache against distribution's proxy mode.
  vsPeer('mirror: first pull (empty cache)', 'w8-mirror-first', 'distribution-v3');
  vsPeer('mirror: warm pull', 'w8-mirror-warm', 'distribution-v3');
  vsPeer('mirror: first pull of the big layer, curl', 'w8-mirror-first-curl', 'distribution-v3');
  vsPeer('mirror: warm pull of the big layer, curl', 'w8-mirror-warm-curl', 'distribution-v3');
  const zbPush = peers('w2-zb-push').length > 0 && get('w2-zb-push', 'berth');
  vs(
    `small-image push, images/s${zbPush ? ' (zb)' : ' (own client)'}`,
    zbPush ? 'w2-zb-push' : 'w2-push',
    1.5,
  );
  vs(
    'manifest GET by tag, warm, req/s at c=32 (p99 no worse)',
    'w3-get-tag-warm',
    2,
    (b, p) => b.p99 <= p.p99,
  );
  for (const key of ['w4-catalog', 'w4-tags']) {
    const b = get(key, 'berth');
    const d = get(key, 'distribution-v3');
    if (!b) continue;
    const x = d ? b.value / d.value : NaN;
    out.push({
      measure: `${key === 'w4-catalog' ? 'catalog' : 'tag list'} page at 10k: p99 ≤ 50 ms and ≥ 10× distribution v3`,
      target: 'p99 ≤ 50 ms, ≥ 10×',
      measured: `p99 ${fmtMs(b.p99)}; ${d ? `${x.toFixed(1)}× (${fmtValue(b)} vs ${fmtValue(d)})` : 'distribution v3 did not run'}`,
      met: b.errors === 0 && b.p99 <= 50 && (d ? x >= 10 : true),
    });
  }
  const w7 = get('w7-8x-push', 'berth');
  if (w7) {
    out.push({
      measure: 'peak RSS, 8 concurrent big pushes',
      target: '≤ 256 MiB',
      measured: `${(w7.rss / MiB).toFixed(0)} MiB (all Berth processes, sum of VmHWM)`,
      met: w7.errors === 0 && w7.rss <= 256 * MiB,
    });
  }
  const calls = (key: string, max: number, what: string) => {
    const r = get(key, 'berth');
    if (!r) return;
    out.push({
      measure: `storage calls: ${what}`,
      target: `≤ ${max} reads`,
      measured: `${r.readCalls.toFixed(2)} reads/op (all calls: ${r.callsText})`,
      met: r.errors === 0 && r.readCalls <= max + 0.005,
    });
  };
  calls('w3-blob-head-cold', 1, 'blob HEAD cold');
  calls('w3-blob-head-warm', 0, 'blob HEAD warm');
  calls('w3-get-digest-cold', 1, 'manifest GET by digest cold');
  calls('w3-get-tag-cold', 2, 'manifest GET by tag cold');
  const storm = get('w6-storm', 'berth');
  if (storm)
    out.push({
      measure: 'pull storm',
      target: '0 errors',
      measured: `${storm.errors} errors of ${storm.ops}`,
      met: storm.errors === 0,
    });
  return out;
}

export function targetTable(ts: Target[]): string {
  return [
    '| measure | target | measured | met |',
    '|---|---|---|---|',
    ...ts.map(
      (t) =>
        `| ${t.measure} | ${t.target} | ${t.measured} | ${t.met === undefined ? 'n/a' : t.met ? 'yes' : 'NO'} |`,
    ),
  ].join('\n');
}

/**
 * stealSeconds is the CPU time the hypervisor gave to other guests since boot (/proc/stat,
 * all CPUs): on a shared VM, what moves between two runs of the same workload.
 */
function stealSeconds(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
    return Number(f[8] ?? 0) / 100;
  } catch {
    return 0;
  }
}

export function machine(): Record<string, string | number> {
  const cpu = cpus();
  const uptime = spawnSync('uptime', [], { encoding: 'utf8' }).stdout.trim();
  return {
    cpu: `${cpu.length} × ${cpu[0]?.model ?? '?'}`,
    memory: `${(totalmem() / GiB).toFixed(0)} GiB`,
    node: process.version,
    load: loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    uptime,
    steal: stealSeconds(),
  };
}

// ---- run -------------------------------------------------------------------------------------

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const startedAt = new Date().toISOString();
  const machineBefore = machine();
  log(`bench: profile ${opts.profile.name}; load ${machineBefore.load}`);
  const want = (n: number) => !opts.workloads || opts.workloads.includes(n);
  const kinds = ALL.filter((k) => !opts.registries || opts.registries.includes(k.name));
  const regInfo: BenchResult['registries'] = [];
  log('bench: client ceiling against a trivial server');
  const ceil = await ceiling(opts.profile, log);
  const rows: Row[] = [];
  const minio = await startBenchMinio();
  if (want(1)) ceil.push(await minioCeiling(minio, opts.profile.bigBlob, log));
  try {
    for (const kind of kinds) {
      const why = kind.missing();
      if (why !== undefined) {
        log(`bench: ${kind.name} skipped: ${why}`);
        regInfo.push({ name: kind.name, version: kind.version, ran: false, why });
        continue;
      }
      const version =
        kind.name === 'berth' && opts.berthCompiled
          ? kind.version.replace('tsx, server/cli.ts', `compiled: ${opts.berthCompiled}`)
          : kind.version;
      const bucket = `bench-${kind.name.replace(/[^a-z0-9]/g, '')}`;
      log(`bench: ${kind.name} (${version}) on bucket ${bucket}`);
      const start: StartOptions = {
        nodeArgs: opts.berthNodeArgs,
        workers: opts.berthWorkers,
        compiled: opts.berthCompiled,
      };
      let reg: Running;
      try {
        reg = await kind.start(minio, bucket, start);
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        log(`bench: ${kind.name} did not start: ${msg}`);
        regInfo.push({
          name: kind.name,
          version: kind.version,
          ran: false,
          why: msg.slice(0, 500),
        });
        continue;
      }
      regInfo.push({ name: kind.name, version, ran: true });
      const ctx: Ctx = {
        kind,
        reg,
        minio,
        client: new Client(reg.url),
        profile: opts.profile,
        rows,
        bucket,
        log,
        replicas: [],
        start,
      };
      try {
        for (const n of ORDER) {
          if (!want(n)) continue;
          try {
            await WORKLOADS[n]!(ctx);
          } catch (err) {
            const msg = err instanceof Error ? err.message : String(err);
            log(`bench: ${kind.name} workload ${n} failed: ${msg}\n${reg.output().slice(-1500)}`);
            rows.push({
              workload: n,
              key: `w${n}-failed`,
              label: `${n}: workload failed`,
              registry: kind.name,
              value: 0,
              unit: '-',
              p50: NaN,
              p99: NaN,
              ops: 1,
              errors: 1,
              errorSamples: [msg],
              calls: 0,
              readCalls: 0,
              callsText: '-',
              rss: 0,
              cpu: 0,
            });
          }
        }
      } finally {
        ctx.client.close();
        await reg.stop();
        await minio
          .dropBucket(bucket)
          .catch((err: unknown) => log(`bench: drop ${bucket}: ${String(err)}`));
      }
    }
  } finally {
    await minio.stop();
  }
  rows.sort((a, b) => a.workload - b.workload);
  const ts = targets(rows, ceil);
  const machineAfter = machine();
  const out =
    table(ceil, rows) +
    '\n\n' +
    targetTable(ts) +
    `\n\nload before: ${machineBefore.load}; after: ${machineAfter.load} (1/5/15 min); ` +
    `CPU stolen by other guests during the run: ${(Number(machineAfter.steal) - Number(machineBefore.steal)).toFixed(0)} s; ` +
    `${machineAfter.cpu}; ${machineAfter.memory}; node ${machineAfter.node}`;
  return {
    profile: opts.profile.name,
    machine: { ...machineAfter, loadBefore: String(machineBefore.load) },
    registries: regInfo,
    ceiling: ceil,
    rows,
    targets: ts,
    table: out,
    startedAt,
    finishedAt: new Date().toISOString(),
  };
}

export { sha256 };
