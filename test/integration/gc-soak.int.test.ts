import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GcReport } from '../../server/gc/collector.js';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { Paths } from '../../server/storage/paths.js';
import { blob, image, index, type Built } from '../support/image.js';
import { berthS3Env, bucketKeys, startMinio, type MinioServer } from '../support/minio.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';

/**
 * The GC soak: two replicas on one MinIO bucket, both scheduling garbage collection every
 * second with a five-second grace window (the lease lets one work at a time), while workers
 * push, pull, move tags, delete manifests, hold chunked uploads open past the grace window and
 * push indexes and referrers. Then the store is checked from the outside: everything reachable
 * pulls byte-exact, and nothing unreachable is left. BERTH_SOAK_SECONDS sets the load time.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOAK_SECONDS = Number(process.env.BERTH_SOAK_SECONDS ?? 60);
const GRACE = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** ClientLog records every response a client did not expect, by error code. */
class ClientLog {
  readonly unexpected: string[] = [];
  readonly codes = new Map<string, number>();
  ops = 0;
  async check(what: string, r: Response, want: number[]): Promise<void> {
    this.ops++;
    if (want.includes(r.status)) return;
    const body = await r.text().catch(() => '');
    for (const m of body.matchAll(/"code":"([A-Z_]+)"/g))
      this.codes.set(m[1]!, (this.codes.get(m[1]!) ?? 0) + 1);
    this.unexpected.push(`${what}: ${r.status} ${body.slice(0, 300)}`);
  }
}

/** Soaker is one client working on its own repository through either replica. */
class Soaker {
  private slowPushes = 0;
  /** tags maps each tag this worker set to the digest it points to. */
  readonly tags = new Map<string, string>();
  /** pushed are top-level manifests this worker pushed and has not deleted. */
  readonly pushed = new Map<string, Built>();
  private n = 0;

  constructor(
    readonly repo: string,
    private readonly urls: string[],
    private readonly bases: Buffer[],
    private readonly log: ClientLog,
    private readonly opts: { pull: boolean; remove: boolean; freshTags?: boolean },
  ) {}

  private url(): string {
    return this.urls[Math.floor(Math.random() * this.urls.length)]!;
  }

  private async pushBlob(b: { digest: string; bytes: Buffer }): Promise<void> {
    const r = await fetch(`${this.url()}/v2/${this.repo}/blobs/uploads/?digest=${b.digest}`, {
      method: 'POST',
      body: b.bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    await this.log.check(`push blob ${this.repo}`, r, [201]);
  }

  async pushManifest(m: Built, ref: string): Promise<boolean> {
    for (const c of m.children) await this.pushManifest(c, c.digest);
    for (const b of m.blobs) await this.pushBlob(b);
    const r = await fetch(`${this.url()}/v2/${this.repo}/manifests/${ref}`, {
      method: 'PUT',
      body: m.body,
      headers: { 'content-type': m.mediaType },
    });
    await this.log.check(`push manifest ${this.repo}:${ref}`, r, [201]);
    return r.status === 201;
  }

  private newImage(): Built {
    // A shared base layer: the same digest lives in many repositories.
    const base = this.bases[Math.floor(Math.random() * this.bases.length)]!;
    return withBase(
      image()
        .layer(1024 + Math.floor(Math.random() * 4096))
        .build(),
      blob(base),
    );
  }

  async step(): Promise<void> {
    const roll = Math.random();
    if (roll < 0.45 || this.pushed.size < 2) {
      const m = this.n % 7 === 6 ? this.newIndex() : this.newImage();
      // Few tags that move often; or (for retention) a new tag each push, so older ones age.
      const tag = this.opts.freshTags ? `r${this.n}` : `t${Math.floor(Math.random() * 6)}`;
      this.n++;
      if (await this.pushManifest(m, tag)) {
        this.tags.set(tag, m.digest);
        this.pushed.set(m.digest, m);
        if (this.n % 5 === 0) {
          const sig = image().artifact('application/vnd.example.sig').subject(m).layer(32).build();
          await this.pushManifest(sig, sig.digest);
        }
      }
    } else if (roll < 0.8 && this.opts.pull) {
      // Deletes can leave this worker with no tag at all: then pull by digest only.
      const tagged = [...this.tags];
      if (tagged.length > 0) {
        const [tag, digest] = tagged[Math.floor(Math.random() * tagged.length)]!;
        await pull(this.url(), this.repo, tag, this.log, digest);
      }
      const any = [...this.pushed.keys()][Math.floor(Math.random() * this.pushed.size)]!;
      await pull(this.url(), this.repo, any, this.log, any);
    } else if (this.opts.remove && this.pushed.size > 2) {
      const victim = [...this.pushed.keys()][Math.floor(Math.random() * this.pushed.size)]!;
      const r = await fetch(`${this.url()}/v2/${this.repo}/manifests/${victim}`, {
        method: 'DELETE',
      });
      await this.log.check(`delete ${this.repo}@${victim}`, r, [202]);
      this.pushed.delete(victim);
      for (const [t, d] of this.tags) if (d === victim) this.tags.delete(t);
    }
  }

  private newIndex(): Built {
    return index([this.newImage(), this.newImage()]);
  }

  /**
   * slowUpload holds a chunked upload open for longer than the grace window between its
   * chunks, then commits and uses it: its first segment is old when GC sees it.
   */
  async slowUpload(): Promise<void> {
    const data = randomBytes(64 * 1024);
    const half = data.length / 2;
    const post = await fetch(`${this.url()}/v2/${this.repo}/blobs/uploads/`, { method: 'POST' });
    await this.log.check('slow upload start', post, [202]);
    const r1 = await fetch(new URL(post.headers.get('location')!, this.url()), {
      method: 'PATCH',
      body: data.subarray(0, half),
      headers: { 'content-range': `0-${half - 1}`, 'content-type': 'application/octet-stream' },
    });
    await this.log.check('slow upload chunk 1', r1, [202]);
    await sleep((GRACE + 3) * 1000);
    const r2 = await fetch(new URL(r1.headers.get('location')!, this.url()), {
      method: 'PATCH',
      body: data.subarray(half),
      headers: {
        'content-range': `${half}-${data.length - 1}`,
        'content-type': 'application/octet-stream',
      },
    });
    await this.log.check('slow upload chunk 2', r2, [202]);
    const put = await fetch(
      new URL(`${r2.headers.get('location')!}&digest=${sha(data)}`, this.url()),
      { method: 'PUT' },
    );
    await this.log.check('slow upload commit', put, [201]);
    // Use it at once (a push whose blob upload started long ago).
    const m = withBase(image().layer(8).build(), blob(data));
    const config = m.blobs[0]!;
    await this.pushBlob(config);
    for (const b of m.blobs.slice(1)) if (b.digest !== sha(data)) await this.pushBlob(b);
    // A fresh tag per slow push: it runs beside step() on the same worker, so moving one shared
    // tag would race with step()'s pull of it (the pull's expectation read before the move).
    const tag = `slow${++this.slowPushes}`;
    const r = await fetch(`${this.url()}/v2/${this.repo}/manifests/${tag}`, {
      method: 'PUT',
      body: m.body,
      headers: { 'content-type': m.mediaType },
    });
    await this.log.check('slow upload manifest', r, [201]);
    if (r.status === 201) {
      this.tags.set(tag, m.digest);
      this.pushed.set(m.digest, m);
    }
  }
}

/** withBase rebuilds an image manifest with `base` as an extra first layer. */
function withBase(m: Built, base: { digest: string; bytes: Buffer; mediaType: string }): Built {
  const doc = JSON.parse(m.body.toString()) as { layers: unknown[] };
  doc.layers.unshift({ mediaType: base.mediaType, digest: base.digest, size: base.bytes.length });
  const body = Buffer.from(JSON.stringify(doc));
  return { ...m, body, digest: sha(body), blobs: [...m.blobs, base] };
}

/** pull fetches a manifest and everything it names, verifying every digest. */
async function pull(
  url: string,
  repo: string,
  ref: string,
  log: ClientLog,
  expected?: string,
): Promise<void> {
  const r = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  await log.check(`pull manifest ${repo}:${ref}`, r, [200]);
  if (r.status !== 200) return;
  const body = Buffer.from(await r.arrayBuffer());
  if (expected !== undefined && !ref.startsWith('sha256:') && sha(body) !== expected) {
    // The tag moved under us (another worker never touches this repo, so this is a bug).
    log.unexpected.push(`tag ${repo}:${ref} points to ${sha(body)}, expected ${expected}`);
  }
  if (ref.startsWith('sha256:') && sha(body) !== ref)
    log.unexpected.push(`manifest ${repo}@${ref} has digest ${sha(body)}`);
  const doc = JSON.parse(body.toString()) as {
    config?: { digest: string };
    layers?: { digest: string }[];
    manifests?: { digest: string }[];
  };
  for (const c of doc.manifests ?? []) await pull(url, repo, c.digest, log, c.digest);
  for (const b of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
    const br = await fetch(`${url}/v2/${repo}/blobs/${b.digest}`);
    await log.check(`pull blob ${repo}@${b.digest}`, br, [200]);
    if (br.status !== 200) continue;
    const got = sha(Buffer.from(await br.arrayBuffer()));
    if (got !== b.digest) log.unexpected.push(`blob ${repo}@${b.digest} read as ${got}`);
  }
}

/** runGc runs `berth gc` as its own process and resolves with its exit code and output. */
function startGc(
  env: Record<string, string>,
  args: string[] = [],
): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(root, 'server', 'cli.ts'), 'gc', ...args],
    {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, BERTH_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

async function runGc(env: Record<string, string>, args: string[] = []): Promise<GcReport> {
  for (;;) {
    const { code, stdout, stderr } = await startGc(env, args).done;
    if (code === 3) {
      await sleep(500); // another holder's lease: wait for it to end or expire
      continue;
    }
    if (code !== 0) throw new Error(`berth gc exited with ${code}:\n${stderr}`);
    return JSON.parse(stdout) as GcReport;
  }
}

/**
 * audit checks the store from the outside, after the last collection: every manifest's blobs
 * are linked in its repository and every link's segments exist (nothing reachable is lost),
 * and every link, descriptor and segment is reachable from a manifest or a live upload
 * (nothing unreachable is left).
 */
async function audit(m: MinioServer, bucket: string, driver: S3Driver): Promise<string[]> {
  const keys = await bucketKeys(m, bucket);
  const problems: string[] = [];
  const set = new Set(keys);
  const manifests = keys
    .map((k) => /^repositories\/(.+)\/_manifests\/(sha256)\/([0-9a-f]+)$/.exec(k))
    .filter((x): x is RegExpExecArray => x !== null);
  const links = keys
    .map((k) => /^repositories\/(.+)\/_layers\/(sha256)\/([0-9a-f]+)$/.exec(k))
    .filter((x): x is RegExpExecArray => x !== null);
  const needed = new Set<string>(); // repo \n digest
  const named = new Set<string>(); // digests any manifest names
  for (const [key, repo] of manifests) {
    const env = await driver.get(key);
    const doc = JSON.parse(env.subarray(env.indexOf(10) + 1).toString()) as {
      config?: { digest: string };
      layers?: { digest: string }[];
    };
    for (const b of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
      needed.add(`${repo}\n${b.digest}`);
      named.add(b.digest);
    }
  }
  const liveSegments = new Set<string>();
  const linked = new Set<string>();
  for (const [key, repo, alg, hex] of links) {
    const d = `${alg}:${hex}`;
    linked.add(d);
    if (!needed.has(`${repo}\n${d}`)) problems.push(`unreferenced link ${key}`);
    const desc = JSON.parse((await driver.get(key)).toString()) as { segments: { key: string }[] };
    for (const s of desc.segments) {
      liveSegments.add(s.key);
      if (!set.has(s.key)) problems.push(`link ${key} names missing segment ${s.key}`);
    }
  }
  for (const n of needed) {
    const [repo, d] = n.split('\n') as [string, string];
    const [alg, hex] = d.split(':') as [string, string];
    if (!set.has(`repositories/${repo}/_layers/${alg}/${hex}`))
      problems.push(`manifest in ${repo} names unlinked blob ${d}`);
  }
  for (const k of keys.filter((x) => x.startsWith('blobs/'))) {
    const hex = k.split('/')[3]!;
    if (!linked.has(`sha256:${hex}`) && !named.has(`sha256:${hex}`))
      problems.push(`unreferenced descriptor ${k}`);
    const desc = JSON.parse((await driver.get(k)).toString()) as { segments: { key: string }[] };
    for (const s of desc.segments) liveSegments.add(s.key);
  }
  for (const k of keys.filter((x) => x.startsWith('uploads/'))) {
    const st = JSON.parse((await driver.get(k)).toString()) as { segments: { key: string }[] };
    for (const s of st.segments) liveSegments.add(s.key);
  }
  for (const k of keys.filter((x) => x.startsWith('segments/')))
    if (!liveSegments.has(k)) problems.push(`unreferenced segment ${k}`);
  return problems;
}

describe('online garbage collection under load (MinIO, two replicas)', () => {
  let minio: MinioServer;
  let dir: string;
  const bucket = 'gcsoak';
  let env: Record<string, string>;
  let driver: S3Driver;

  beforeAll(async () => {
    minio = await startMinio();
    const cfg = minio.config(bucket);
    await S3Driver.ensureBucket(cfg);
    driver = new S3Driver(cfg);
    dir = await mkdtemp(join(tmpdir(), 'berth-gc-'));
    const configFile = join(dir, 'berth.yaml');
    await writeFile(
      configFile,
      [
        'gc:',
        '  policies:',
        '    - repositories: ["soak/retained"]',
        '      keepTags:',
        '        - mostRecentlyPushed: 3',
        '      deleteUntaggedAfterSeconds: 0',
        '      deleteReferrers: true',
        '',
      ].join('\n'),
    );
    env = {
      BERTH_CONFIG: configFile,
      ...berthS3Env(cfg),
      BERTH_HTTP_SECRET: 'shared-between-replicas',
      BERTH_GC_GRACE_SECONDS: String(GRACE),
      BERTH_GC_LEASE_SECONDS: '6',
      BERTH_GC_SETTLE_MILLIS: '500',
      BERTH_UPLOADS_PURGE_INTERVAL_SECONDS: '0',
    };
  });
  afterAll(async () => {
    await minio?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(
    'GIVEN two replicas collecting every second WHEN workers push, pull, move tags and delete for a while THEN clients never see a lost blob, everything reachable pulls, and nothing unreachable is left',
    async () => {
      const serverEnv = {
        ...env,
        BERTH_GC_ENABLED: 'true',
        BERTH_GC_INTERVAL_SECONDS: '1',
        BERTH_LOG_LEVEL: 'info',
      };
      const [a, b] = await Promise.all([spawnBerth(serverEnv), spawnBerth(serverEnv)]);
      const log = new ClientLog();
      const bases = [randomBytes(8192), randomBytes(8192), randomBytes(8192)];
      const workers = [
        ...Array.from(
          { length: 4 },
          (_, i) =>
            new Soaker(`soak/w${i}`, [a.url, b.url], bases, log, { pull: true, remove: true }),
        ),
        new Soaker('soak/retained', [a.url, b.url], bases, log, {
          pull: false,
          remove: false,
          freshTags: true,
        }),
      ];
      let procs: BerthProcess[] = [a, b];
      try {
        const deadline = Date.now() + SOAK_SECONDS * 1000;
        await Promise.all([
          ...workers.map(async (w) => {
            while (Date.now() < deadline) await w.step();
          }),
          (async () => {
            while (Date.now() < deadline - (GRACE + 5) * 1000) await workers[0]!.slowUpload();
          })(),
        ]);

        // Both replicas ran collections, one at a time, and they deleted things.
        const runs = (p: BerthProcess) =>
          p
            .output()
            .split('\n')
            .filter((l) => l.includes('"gc run finished"'))
            .map(
              (l) =>
                JSON.parse(l) as {
                  counts: Record<string, number>;
                  durationMs: number;
                  skipped: number;
                  restored: number;
                },
            );
        const all = [...runs(a), ...runs(b)];
        expect(
          all.length,
          `run durations ${all.map((r) => r.durationMs).join(', ')}`,
        ).toBeGreaterThan(SOAK_SECONDS / 10);
        expect(all.reduce((n, r) => n + (r.counts.link ?? 0), 0)).toBeGreaterThan(0);
        expect(all.reduce((n, r) => n + (r.counts.segment ?? 0), 0)).toBeGreaterThan(0);
        expect(all.reduce((n, r) => n + (r.counts.tag ?? 0), 0)).toBeGreaterThan(0);
        const sum = (k: string) => all.reduce((n, r) => n + (r.counts[k] ?? 0), 0);
        console.info(
          `gc soak: ${log.ops} client requests, ${all.length} gc runs, deleted ${sum('tag')} tags, ` +
            `${sum('manifest')} manifests, ${sum('link')} links, ${sum('blob')} descriptors, ` +
            `${sum('segment')} segments; re-checks kept ${all.reduce((n, r) => n + r.skipped, 0)}, ` +
            `restored ${all.reduce((n, r) => n + r.restored, 0)}; run ms ${all.map((r) => r.durationMs).join(' ')}`,
        );
        expect(log.ops).toBeGreaterThan(500);
        expect(log.codes.get('BLOB_UNKNOWN') ?? 0).toBe(0);
        expect(log.codes.get('MANIFEST_BLOB_UNKNOWN') ?? 0).toBe(0);
        expect(log.unexpected).toEqual([]);

        // Quiesce: stop the replicas, let the grace window pass twice with two final runs.
        await Promise.all(procs.map((p) => p.kill('SIGTERM')));
        procs = [];
        await sleep((GRACE + 1) * 1000);
        await runGc(env);
        await sleep((GRACE + 1) * 1000);
        await runGc(env);
        const dry = await runGc(env, ['--dry-run']);
        expect(dry.deleted).toEqual([]);
        expect(await audit(minio, bucket, driver)).toEqual([]);

        // Every manifest, by tag and by digest, pulls completely with verified digests.
        const c = await spawnBerth({ ...env, BERTH_LOG_LEVEL: 'warn' });
        procs = [c];
        const final = new ClientLog();
        for (const w of workers) {
          for (const [tag, digest] of w.tags) {
            if (w === workers[4]) continue; // retention removed most of these tags
            await pull(c.url, w.repo, tag, final, digest);
          }
        }
        for (const k of await bucketKeys(minio, bucket)) {
          const mm = /^repositories\/(.+)\/_manifests\/sha256\/([0-9a-f]+)$/.exec(k);
          if (mm) await pull(c.url, mm[1]!, `sha256:${mm[2]!}`, final);
        }
        expect(final.unexpected).toEqual([]);
        const retained = (await (await fetch(`${c.url}/v2/soak/retained/tags/list`)).json()) as {
          tags: string[];
        };
        expect(retained.tags.length).toBeLessThanOrEqual(3);
      } finally {
        await Promise.all(procs.map((p) => p.kill('SIGKILL')));
      }
    },
    (SOAK_SECONDS + 120) * 1000,
  );

  it('GIVEN a gc run killed with SIGKILL midway WHEN the next run starts THEN the store is consistent, the run resumes and finishes, and a dry run lists exactly what the real run deletes', async () => {
    const c = await spawnBerth({ ...env, BERTH_LOG_LEVEL: 'warn' });
    const log = new ClientLog();
    try {
      const w = new Soaker('crash/app', [c.url], [randomBytes(4096)], log, {
        pull: false,
        remove: true,
      });
      // Lots of garbage: many small images pushed and deleted, one kept.
      const kept = image().layer(64).build();
      const keeper = new Soaker('crash/kept', [c.url], [randomBytes(4096)], log, {
        pull: false,
        remove: false,
      });
      await keeper.pushManifest(kept, 'v1');
      for (let i = 0; i < 100; i++) {
        const m = image().layer(64).layer(64).build();
        await w.pushManifest(m, m.digest);
        const r = await fetch(`${c.url}/v2/crash/app/manifests/${m.digest}`, { method: 'DELETE' });
        await log.check('delete', r, [202]);
      }
      expect(log.unexpected).toEqual([]);
      await sleep((GRACE + 1) * 1000);

      // Kill the run once it is deleting.
      const run = startGc(env);
      let phase: string | undefined;
      for (let i = 0; i < 400 && phase !== 'links' && phase !== 'blobs'; i++) {
        await sleep(25);
        phase = await driver
          .get(Paths.gcState())
          .then((b) => (JSON.parse(b.toString()) as { run?: { phase: string } }).run?.phase)
          .catch(() => undefined);
      }
      expect(['links', 'blobs']).toContain(phase);
      run.child.kill('SIGKILL');
      await run.done;

      // Consistent right away: what is reachable pulls.
      await pull(c.url, 'crash/kept', 'v1', log, kept.digest);
      expect(log.unexpected).toEqual([]);

      // The next run waits out the dead holder's lease, then resumes.
      const resumed = await runGc(env);
      expect(resumed.resumedFrom).toBeDefined();
      await sleep((GRACE + 1) * 1000);
      const dry = await runGc(env, ['--dry-run']);
      const real = await runGc(env);
      expect(real.deleted.map((i) => i.key)).toEqual(dry.deleted.map((i) => i.key));
      expect(real.counts.segment).toBeGreaterThan(0);
      expect((await runGc(env, ['--dry-run'])).deleted).toEqual([]);
      expect(await audit(minio, bucket, driver)).toEqual([]);
      await pull(c.url, 'crash/kept', 'v1', log, kept.digest);
      expect(log.unexpected).toEqual([]);
    } finally {
      await c.kill('SIGKILL');
    }
  });
});
