import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { GcConfig } from '../config/types.js';
import { parseDigest, type Digest } from '../registry/reference.js';
import type { DeleteOptions, StoredManifest } from '../registry/repository.js';
import { Errors, isRegistryError } from '../errors.js';
import type { UploadState } from '../registry/uploads.js';
import { isNotFound, type StorageDriver } from '../storage/driver.js';
import { Paths } from '../storage/paths.js';
import type { Logger } from '../util/log.js';
import { StorageLease } from '../storage/lease.js';
import { compilePolicies, planRetention, policyFor, type CompiledPolicy } from './retention.js';
import {
  listAll,
  mapLimit,
  readDescriptors,
  readRepository,
  readSegments,
  readUploads,
  RefCache,
  refsOfBody,
  walkRepositories,
  type RepoSnapshot,
  type Snapshot,
} from './snapshot.js';

/** GcKind is the kind of object a run deletes. */
export type GcKind = 'tag' | 'manifest' | 'link' | 'blob' | 'upload' | 'segment';
export const GC_KINDS: readonly GcKind[] = ['tag', 'manifest', 'link', 'blob', 'upload', 'segment'];

/** GcItem is one object a run deleted (or, in a dry run, would delete). */
export interface GcItem {
  kind: GcKind;
  /** key is the storage key of the object. */
  key: string;
  /** bytes is the object's size when planned (segments carry the blob bytes). */
  bytes: number;
  repo?: string;
  digest?: string;
  tag?: string;
  /** reason: `unreferenced`, `retention`, `untagged`, `orphan-referrer` or `expired`. */
  reason: string;
}

/** GcReport is the outcome of one run. */
export interface GcReport {
  runId: string;
  dryRun: boolean;
  /** resumedFrom is the id of an interrupted run this one finished. */
  resumedFrom?: string;
  startedAt: string;
  finishedAt: string;
  /** cutoff: nothing modified at or after it was a candidate (start minus the grace window). */
  cutoff: string;
  /** deleted lists what was deleted; in a dry run, what the real run would delete. */
  deleted: GcItem[];
  /** skipped are candidates the re-check right before deletion kept. */
  skipped: GcItem[];
  /** restored are deletions undone because a concurrent push came to need them. */
  restored: GcItem[];
  counts: Record<GcKind, number>;
  bytesFreed: number;
  /** multipartAborted counts unfinished backend multipart uploads aborted (S3). */
  multipartAborted: number;
}

/** GcStats are cumulative counters since the process started, for metrics. */
export interface GcStats {
  runs: number;
  dryRuns: number;
  failures: number;
  /** busy counts runs skipped because another replica held the lease. */
  busy: number;
  deleted: Record<GcKind, number>;
  skipped: number;
  restored: number;
  bytesFreed: number;
  running: boolean;
  phase?: string;
  lastRun?: {
    runId: string;
    dryRun: boolean;
    finishedAt: string;
    bytesFreed: number;
    deleted: number;
  };
}

/**
 * GcEvents are what a GarbageCollector emits, for metrics and events modules: `deleted` per
 * object actually deleted (never in a dry run), `skipped` when a re-check kept a candidate,
 * `restored` when a deletion was undone, and one `run-finished` or `run-failed` per run.
 */
export interface GcEvents {
  'run-started': [{ runId: string; dryRun: boolean; resumedFrom?: string }];
  phase: [{ runId: string; phase: string }];
  deleted: [GcItem];
  skipped: [GcItem];
  restored: [GcItem];
  'run-finished': [GcReport];
  'run-failed': [{ runId: string; error: Error }];
  busy: [{ holder?: string }];
}

/** RetentionTarget is the narrow part of the registry retention deletes through. */
export interface RetentionTarget {
  repository(name: string): {
    untag(tag: string, expected?: Digest): Promise<void>;
    delete(digest: Digest, opts?: DeleteOptions): Promise<void>;
    get(digest: Digest): Promise<StoredManifest>;
    put(body: Buffer, contentType: string | undefined): Promise<unknown>;
  };
}

export interface CollectorOptions {
  /** driver is the store; its `abortStaleMultipartUploads`, if any, runs after each sweep. */
  driver: StorageDriver;
  registry: RetentionTarget;
  log: Logger;
  gc: Pick<GcConfig, 'graceSeconds' | 'leaseSeconds' | 'settleMillis' | 'policies'>;
  /** uploadTtlSeconds is `uploads.ttlSeconds`: sessions older than it plus grace are purged. */
  uploadTtlSeconds: number;
  clock?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** holder names this process in the lease. */
  holder?: string;
  /** concurrency bounds storage calls in flight. */
  concurrency?: number;
}

/** GcAbortedError stops a run that `abort()` was called on (its checkpoint stays). */
export class GcAbortedError extends Error {
  override readonly name = 'GcAbortedError';
  constructor() {
    super('gc run aborted');
  }
}

/** LeaseLostError stops a run whose lease can no longer be relied on. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor() {
    super('gc lease lost');
  }
}

/** UndoEntry is a link a run is deleting, kept until the run's post-check passed. */
interface UndoEntry {
  key: string;
  repo: string;
  digest: string;
  data: string;
}

/** GcState is the `gc/state` object, written only by the lease holder. */
interface GcState {
  /** run is the run in progress (a crash leaves it for the next run to resume). */
  run?: {
    id: string;
    holder: string;
    startedAt: number;
    phase: string;
    deleted: number;
    bytesFreed: number;
    undo: UndoEntry[];
  };
  /** deferred maps upload ids to when their segments may go (their pointers were deleted). */
  deferred: Record<string, number>;
  last?: { id: string; finishedAt: number; deleted: number; bytesFreed: number };
}

interface Plan {
  tags: GcItem[];
  manifests: GcItem[];
  links: GcItem[];
  blobs: GcItem[];
  uploads: GcItem[];
  segments: GcItem[];
  /** pointerUploads names the upload ids of the segments of each planned pointer. */
  pointerUploads: Map<string, Set<string>>;
  /** linkData holds each planned link as read, for the undo log. */
  linkData: Map<string, string>;
}

const emptyCounts = (): Record<GcKind, number> =>
  Object.fromEntries(GC_KINDS.map((k) => [k, 0])) as Record<GcKind, number>;

/**
 * GarbageCollector runs online garbage collection and retention over a store that replicas
 * keep writing to. One run: mark (read the store in a fixed order), plan (decide purely what
 * is unreachable and older than the grace window), then sweep with a re-check of every
 * candidate right before its deletion. Pointers (tags, manifests, links, descriptors) go
 * first; bytes (segments) named by a deleted pointer wait at least one grace window more, so
 * a reader that saw the pointer just before it went can still link it. Deleted links a
 * concurrent push came to reference are restored after a settle pause. A real run holds the
 * lease `gc/lease/…`; a crash leaves `gc/state` naming the run, and the next run finishes it.
 * The safety argument is in docs/adr/0007-online-gc.md.
 */
export class GarbageCollector extends EventEmitter<GcEvents> {
  private readonly clock: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly policies: CompiledPolicy[];
  private readonly lease: StorageLease;
  private readonly cache = new RefCache();
  private readonly concurrency: number;
  private readonly counters: GcStats = {
    runs: 0,
    dryRuns: 0,
    failures: 0,
    busy: 0,
    deleted: emptyCounts(),
    skipped: 0,
    restored: 0,
    bytesFreed: 0,
    running: false,
  };
  private active: Promise<GcReport | undefined> | undefined;
  private readonly holder: string;
  private aborting = false;

  constructor(private readonly opts: CollectorOptions) {
    super();
    this.clock = opts.clock ?? Date.now;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.policies = compilePolicies(opts.gc.policies);
    this.concurrency = opts.concurrency ?? 16;
    this.holder = opts.holder ?? `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
    this.lease = new StorageLease(opts.driver, {
      root: Paths.gcLeaseRoot(),
      key: Paths.gcLease,
      holder: this.holder,
      ttlMs: opts.gc.leaseSeconds * 1000,
      clock: this.clock,
    });
  }

  /**
   * abort stops the run in progress at its next storage step (it rejects with
   * GcAbortedError); its checkpoint stays, so the next run finishes the job.
   */
  abort(): void {
    if (this.active) this.aborting = true;
  }

  /** stats returns a copy of the cumulative counters. */
  stats(): GcStats {
    return structuredClone(this.counters);
  }

  /**
   * run does one collection. A dry run reads only and reports what a real run would delete
   * now. A real run resolves undefined without doing anything when another replica holds the
   * lease. Runs in one process never overlap: a call during a run waits for it and returns
   * its report.
   */
  run(opts: { dryRun: boolean }): Promise<GcReport | undefined> {
    if (this.active) return this.active;
    const p = this.runOnce(opts.dryRun).finally(() => {
      this.active = undefined;
      this.aborting = false;
    });
    this.active = p;
    return p;
  }

  private async runOnce(dryRun: boolean): Promise<GcReport | undefined> {
    if (!dryRun && !(await this.lease.acquire())) {
      this.counters.busy++;
      const holder = (await this.lease.current().catch(() => undefined))?.holder;
      this.opts.log.info({ holder }, 'gc skipped: another replica holds the lease');
      this.emit('busy', { holder });
      return undefined;
    }
    const runId = `${new Date(this.clock()).toISOString().replace(/[:.]/g, '')}-${randomBytes(3).toString('hex')}`;
    this.counters.running = true;
    // Long steps (a big mark) must not let the lease lapse: renew in the background too.
    const keepalive = dryRun
      ? undefined
      : setInterval(
          () => void this.lease.ensure().catch(() => undefined),
          (this.opts.gc.leaseSeconds * 1000) / 4,
        );
    keepalive?.unref();
    try {
      const report = await this.collect(runId, dryRun);
      if (dryRun) this.counters.dryRuns++;
      else this.counters.runs++;
      this.counters.lastRun = {
        runId,
        dryRun,
        finishedAt: report.finishedAt,
        bytesFreed: report.bytesFreed,
        deleted: report.deleted.length,
      };
      this.emit('run-finished', report);
      this.opts.log.info(
        {
          runId,
          dryRun,
          resumedFrom: report.resumedFrom,
          counts: report.counts,
          bytesFreed: report.bytesFreed,
          skipped: report.skipped.length,
          restored: report.restored.length,
          durationMs: Date.parse(report.finishedAt) - Date.parse(report.startedAt),
        },
        dryRun ? 'gc dry run finished' : 'gc run finished',
      );
      return report;
    } catch (err) {
      this.counters.failures++;
      this.emit('run-failed', { runId, error: err as Error });
      this.opts.log.error({ runId, err }, 'gc run failed');
      throw err;
    } finally {
      clearInterval(keepalive);
      this.counters.running = false;
      delete this.counters.phase;
      if (!dryRun) await this.lease.release().catch(() => undefined);
    }
  }

  private setPhase(runId: string, phase: string): void {
    this.counters.phase = phase;
    this.emit('phase', { runId, phase });
  }

  private async loadState(): Promise<GcState> {
    try {
      const s = JSON.parse(
        (await this.opts.driver.get(Paths.gcState())).toString('utf8'),
      ) as GcState;
      return { ...s, deferred: s.deferred ?? {} };
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError) return { deferred: {} };
      throw err;
    }
  }

  private async saveState(state: GcState): Promise<void> {
    await this.guard();
    await this.opts.driver.put(Paths.gcState(), JSON.stringify(state));
  }

  /** guard throws unless the lease may still be relied on (renewing it when due). */
  private async guard(): Promise<void> {
    if (this.aborting) throw new GcAbortedError();
    if (!(await this.lease.ensure()) || !this.lease.valid()) throw new LeaseLostError();
  }

  private async collect(runId: string, dryRun: boolean): Promise<GcReport> {
    const start = this.clock();
    const cutoff = start - this.opts.gc.graceSeconds * 1000;
    const state = await this.loadState();
    const resumed = state.run;
    if (resumed && !dryRun)
      this.opts.log.warn(
        { runId, resumedFrom: resumed.id, phase: resumed.phase, holder: resumed.holder },
        'resuming interrupted gc run',
      );
    this.emit('run-started', { runId, dryRun, resumedFrom: resumed?.id });
    const report: GcReport = {
      runId,
      dryRun,
      resumedFrom: resumed?.id,
      startedAt: new Date(start).toISOString(),
      finishedAt: '',
      cutoff: new Date(cutoff).toISOString(),
      deleted: [],
      skipped: [],
      restored: [],
      counts: emptyCounts(),
      bytesFreed: 0,
      multipartAborted: 0,
    };
    if (!dryRun) {
      state.run = {
        id: runId,
        holder: this.holder,
        startedAt: start,
        phase: 'mark',
        deleted: 0,
        bytesFreed: 0,
        // An interrupted run's undo log survives until this run's post-check covered it.
        undo: resumed?.undo ?? [],
      };
      await this.saveState(state);
    }

    this.setPhase(runId, 'mark');
    let snap = await this.snapshot();
    if (!dryRun && resumed && resumed.undo.length > 0) {
      await this.restoreNeeded(snap.repos, resumed.undo, new Map(), report);
      // Restored links name segments the mark must see.
      if (report.restored.length > 0) snap = await this.snapshot();
    }
    this.setPhase(runId, 'plan');
    const plan = await this.plan(snap, start, cutoff, state.deferred);

    if (dryRun) {
      for (const item of [
        ...plan.tags,
        ...plan.manifests,
        ...plan.links,
        ...plan.blobs,
        ...plan.uploads,
        ...plan.segments,
      ])
        this.account(report, item);
      report.finishedAt = new Date(this.clock()).toISOString();
      return report;
    }

    await this.sweep(runId, plan, state, report, cutoff, start);
    // Deletions ran concurrently: report them in plan order, as a dry run does.
    const rank = (i: GcItem) => GC_KINDS.indexOf(i.kind);
    report.deleted.sort(
      (a, b) => rank(a) - rank(b) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
    );
    report.finishedAt = new Date(this.clock()).toISOString();
    return report;
  }

  private account(report: GcReport, item: GcItem): void {
    report.deleted.push(item);
    report.counts[item.kind]++;
    report.bytesFreed += item.bytes;
  }

  // -------------------------------------------------------------------------------------------
  // Mark

  /** snapshot reads the store in the order the safety argument needs (see Snapshot). */
  private async snapshot(): Promise<Snapshot> {
    const { driver } = this.opts;
    const uploads = await readUploads(driver, this.concurrency);
    const descriptors = await readDescriptors(driver, this.concurrency);
    const repos = await mapLimit(await walkRepositories(driver), 4, (name) =>
      readRepository(driver, name, this.cache, this.concurrency),
    );
    const segments = await readSegments(driver, this.concurrency);
    return { uploads, descriptors, repos, segments };
  }

  /** modified stats an object: its mtime and size, or undefined when it is gone. */
  private async statOf(key: string): Promise<{ modified: number; size: number } | undefined> {
    try {
      const s = await this.opts.driver.stat(key);
      return { modified: s.modified.getTime(), size: s.size };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Plan

  private async plan(
    snap: Snapshot,
    now: number,
    cutoff: number,
    deferred: Record<string, number>,
  ): Promise<Plan> {
    const plan: Plan = {
      tags: [],
      manifests: [],
      links: [],
      blobs: [],
      uploads: [],
      segments: [],
      pointerUploads: new Map(),
      linkData: new Map(),
    };
    const old = async (key: string) => {
      const s = await this.statOf(key);
      return s !== undefined && s.modified < cutoff ? s : undefined;
    };

    // Retention, per repository, with the first matching policy.
    const survivorsOf = new Map<string, Set<string>>();
    for (const repo of snap.repos) {
      const survivors = new Set(repo.manifests.keys());
      survivorsOf.set(repo.name, survivors);
      const policy = policyFor(this.policies, repo.name);
      if (!policy) continue;
      const p = policy.policy;
      const tagStats = new Map<string, { modified: number; size: number }>();
      if (policy.keep !== undefined && policy.keep.length > 0) {
        await mapLimit([...repo.tags.keys()], this.concurrency, async (tag) => {
          const s = await this.statOf(Paths.tag(repo.name, tag));
          if (s) tagStats.set(tag, s);
        });
      }
      const manifestStats = new Map<string, { modified: number; size: number }>();
      if (p.deleteUntaggedAfterSeconds !== undefined || p.deleteReferrers === true) {
        await mapLimit([...repo.manifests.keys()], this.concurrency, async (d) => {
          const s = await this.statOf(Paths.manifest(repo.name, parseDigest(d)));
          if (s) manifestStats.set(d, s);
        });
      }
      const tags = [...repo.tags]
        .filter(
          ([tag]) => tagStats.has(tag) || policy.keep === undefined || policy.keep.length === 0,
        )
        .map(([tag, digest]) => ({
          tag,
          digest,
          modified: tagStats.get(tag)?.modified ?? Number.POSITIVE_INFINITY,
        }));
      const facts = new Map(
        [...repo.manifests].map(([digest, refs]) => [
          digest,
          {
            digest,
            // Unparseable or unstatted manifests are never condemned: they count as new.
            modified:
              refs === undefined
                ? Number.POSITIVE_INFINITY
                : (manifestStats.get(digest)?.modified ?? Number.POSITIVE_INFINITY),
            children: refs?.children ?? [],
            subject: refs?.subject,
          },
        ]),
      );
      const r = planRetention(policy, tags, facts, cutoff, now);
      for (const t of r.tags)
        plan.tags.push({
          kind: 'tag',
          key: Paths.tag(repo.name, t.tag),
          bytes: tagStats.get(t.tag)?.size ?? 0,
          repo: repo.name,
          tag: t.tag,
          digest: t.digest,
          reason: 'retention',
        });
      for (const m of r.manifests) {
        survivors.delete(m.digest);
        plan.manifests.push({
          kind: 'manifest',
          key: Paths.manifest(repo.name, parseDigest(m.digest)),
          bytes: manifestStats.get(m.digest)?.size ?? 0,
          repo: repo.name,
          digest: m.digest,
          reason: m.reason,
        });
      }
    }

    // Links: unreferenced by every surviving manifest of their repository.
    const live = new Set<string>();
    let unparseable = false;
    for (const repo of snap.repos) {
      const survivors = survivorsOf.get(repo.name)!;
      const referenced = new Set<string>();
      let blind = false;
      for (const d of survivors) {
        const refs = repo.manifests.get(d);
        if (refs === undefined) {
          blind = true;
          continue;
        }
        for (const b of [...refs.blobs, ...refs.children]) referenced.add(b);
        if (refs.subject !== undefined) referenced.add(refs.subject);
      }
      for (const b of referenced) live.add(b);
      if (blind) {
        // Without all of a repository's references, none of its links may go.
        unparseable = true;
        this.opts.log.warn(
          { repo: repo.name },
          'gc keeps every link of a repository with an unreadable manifest',
        );
        for (const d of repo.links.keys()) live.add(d);
        continue;
      }
      const candidates = [...repo.links].filter(([d]) => !referenced.has(d));
      const young = await mapLimit(candidates, this.concurrency, async ([digest, link]) => {
        const s = await old(link.key);
        if (!s) return digest;
        plan.links.push({
          kind: 'link',
          key: link.key,
          bytes: s.size,
          repo: repo.name,
          digest,
          reason: 'unreferenced',
        });
        plan.linkData.set(link.key, link.data);
        this.deferUploads(plan, link.key, link.segments);
        return undefined;
      });
      for (const d of young) if (d !== undefined) live.add(d);
    }

    // Descriptors: no surviving link or manifest anywhere names the digest.
    if (!unparseable) {
      const candidates = [...snap.descriptors].filter(([d]) => !live.has(d));
      await mapLimit(candidates, this.concurrency, async ([digest, desc]) => {
        const s = await old(desc.key);
        if (!s) return;
        plan.blobs.push({
          kind: 'blob',
          key: desc.key,
          bytes: s.size,
          digest,
          reason: 'unreferenced',
        });
        this.deferUploads(plan, desc.key, desc.segments);
      });
    }

    // Upload sessions expired for longer than the grace window.
    const ttlMs = this.opts.uploadTtlSeconds * 1000;
    const expired = new Set<string>();
    for (const [id, st] of snap.uploads) {
      if (st === undefined || st.startedAt + ttlMs >= cutoff) continue;
      expired.add(id);
      plan.uploads.push({ kind: 'upload', key: Paths.upload(id), bytes: 0, reason: 'expired' });
    }
    await mapLimit(plan.uploads, this.concurrency, async (item) => {
      item.bytes = (await this.statOf(item.key))?.size ?? 0;
    });

    // Segments: named by no session, descriptor or link read in the mark (including the
    // pointers this run deletes: their bytes wait for a later run), nor deferred.
    const marked = new Set<string>();
    let blindSegments = false;
    const markAll = (segs: string[] | undefined) => {
      if (segs === undefined) blindSegments = true;
      else for (const s of segs) marked.add(s);
    };
    for (const [id, st] of snap.uploads) {
      if (expired.has(id)) continue;
      for (const s of st?.segments ?? []) marked.add(s.key);
    }
    for (const d of snap.descriptors.values()) markAll(d.segments);
    for (const repo of snap.repos) for (const l of repo.links.values()) markAll(l.segments);
    if (blindSegments) {
      this.opts.log.warn({}, 'gc keeps every segment: a blob descriptor is unreadable');
    } else {
      const candidates: string[] = [];
      for (const [id, keys] of snap.segments) {
        if ((deferred[id] ?? 0) > now) continue;
        if (snap.uploads.has(id) && !expired.has(id)) continue;
        for (const k of keys) if (!marked.has(k)) candidates.push(k);
      }
      const found = await mapLimit(candidates, this.concurrency, async (key) => {
        const s = await old(key);
        const item: GcItem | undefined = s && {
          kind: 'segment',
          key,
          bytes: s.size,
          reason: 'unreferenced',
        };
        return item;
      });
      for (const f of found) if (f) plan.segments.push(f);
    }

    const byKey = (a: GcItem, b: GcItem) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    for (const list of [
      plan.tags,
      plan.manifests,
      plan.links,
      plan.blobs,
      plan.uploads,
      plan.segments,
    ])
      list.sort(byKey);
    return plan;
  }

  private deferUploads(plan: Plan, pointer: string, segments: string[] | undefined): void {
    plan.pointerUploads.set(pointer, new Set((segments ?? []).map(Paths.segmentUpload)));
  }

  // -------------------------------------------------------------------------------------------
  // Sweep

  private async sweep(
    runId: string,
    plan: Plan,
    state: GcState,
    report: GcReport,
    cutoff: number,
    start: number,
  ): Promise<void> {
    const run = state.run!;
    const grace = this.opts.gc.graceSeconds * 1000;
    let sinceCheckpoint = 0;
    const checkpoint = async (phase: string, force = false) => {
      run.phase = phase;
      run.deleted = report.deleted.length;
      run.bytesFreed = report.bytesFreed;
      if (force || ++sinceCheckpoint >= 200) {
        sinceCheckpoint = 0;
        await this.saveState(state);
      }
    };
    const deleted = (item: GcItem) => {
      this.account(report, item);
      this.counters.deleted[item.kind]++;
      this.counters.bytesFreed += item.bytes;
      this.emit('deleted', item);
      this.opts.log.debug({ runId, ...item }, 'gc deleted');
    };
    const skipped = (item: GcItem) => {
      report.skipped.push(item);
      this.counters.skipped++;
      this.emit('skipped', item);
      this.opts.log.debug({ runId, ...item }, 'gc kept a candidate after re-check');
    };
    const stillOld = async (key: string) => {
      const s = await this.statOf(key);
      return s !== undefined && s.modified < cutoff;
    };
    const each = async (phase: string, items: GcItem[], fn: (i: GcItem) => Promise<boolean>) => {
      this.setPhase(runId, phase);
      await checkpoint(phase, true);
      await mapLimit(items, this.concurrency, async (item) => {
        await this.guard();
        if (await fn(item)) deleted(item);
        else skipped(item);
        await checkpoint(phase);
      });
    };

    // 1. Retention: tags, then manifests.
    await each('tags', plan.tags, async (item) => {
      const repo = this.opts.registry.repository(item.repo!);
      const current = await this.opts.driver.get(item.key).then(
        (b) => b.toString('utf8'),
        () => undefined,
      );
      if (current !== item.digest || !(await stillOld(item.key))) return false;
      // Conditional: a tag moved since the check above is left where it now points.
      return repo.untag(item.tag!, parseDigest(item.digest!)).then(
        () => true,
        () => false,
      );
    });
    const deletedManifests = new Map<string, StoredManifest>();
    await each('manifests', plan.manifests, async (item) => {
      const digest = parseDigest(item.digest!);
      if (!(await stillOld(item.key))) return false;
      for (const tag of await listAll(this.opts.driver, Paths.tagsOfRoot(item.repo!, digest))) {
        const b = await this.opts.driver.get(Paths.tag(item.repo!, tag)).catch(() => undefined);
        if (b?.toString('utf8') === item.digest) return false; // tagged since the mark
      }
      const repo = this.opts.registry.repository(item.repo!);
      let stored: StoredManifest;
      try {
        stored = await repo.get(digest);
      } catch {
        return false;
      }
      // Conditional and fenced (ADR 0016): a push of the manifest or a tag pointed at it
      // since the checks above makes the delete refuse instead of taking them with it.
      try {
        await repo.delete(digest, {
          unchangedSince: cutoff,
          protect: (tag) =>
            Errors.denied({ tag, reason: 'tagged' }, undefined, `manifest is tagged ${tag}`),
        });
      } catch (err) {
        if (isRegistryError(err) && ['DENIED', 'MANIFEST_UNKNOWN'].includes(err.code)) return false;
        throw err;
      }
      deletedManifests.set(`${item.repo!}\n${item.digest!}`, stored);
      return true;
    });

    // 2. Pointers: record deferrals and the undo log before deleting anything.
    for (const item of [...plan.links, ...plan.blobs]) {
      for (const id of plan.pointerUploads.get(item.key) ?? []) {
        state.deferred[id] = Math.max(state.deferred[id] ?? 0, this.clock() + grace);
      }
    }
    for (const item of plan.links) {
      const data = plan.linkData.get(item.key)!;
      run.undo.push({ key: item.key, repo: item.repo!, digest: item.digest!, data });
    }
    await checkpoint('links', true);
    const pointer = async (item: GcItem) => {
      if (!(await stillOld(item.key))) return false;
      await this.opts.driver.delete(item.key);
      return true;
    };
    await each('links', plan.links, pointer);
    await each('blobs', plan.blobs, pointer);

    // 3. Settle, then restore anything a concurrent push came to need.
    const touched = new Set([
      ...report.deleted.filter((i) => i.kind === 'link').map((i) => i.repo!),
      ...[...deletedManifests.keys()].map((k) => k.split('\n')[0]!),
    ]);
    if (touched.size > 0) {
      this.setPhase(runId, 'recheck');
      await this.sleep(this.opts.gc.settleMillis);
      await this.guard();
      const repos: RepoSnapshot[] = [];
      for (const name of [...touched].sort())
        repos.push(await readRepository(this.opts.driver, name, this.cache, this.concurrency));
      await this.restoreNeeded(repos, run.undo, deletedManifests, report);
    }
    run.undo = [];
    await checkpoint('uploads', true);

    // 4. Expired upload sessions, then unreferenced segments.
    const ttlMs = this.opts.uploadTtlSeconds * 1000;
    await each('uploads', plan.uploads, async (item) => {
      const st = await this.opts.driver.get(item.key).then(
        (b) => JSON.parse(b.toString('utf8')) as UploadState,
        () => undefined,
      );
      if (st === undefined || st.startedAt + ttlMs >= cutoff) return false;
      await this.opts.driver.delete(item.key);
      return true;
    });
    const purged = new Set(report.deleted.filter((i) => i.kind === 'upload').map((i) => i.key));
    await each('segments', plan.segments, async (item) => {
      const id = Paths.segmentUpload(item.key);
      if ((state.deferred[id] ?? 0) > start) return false;
      if (!purged.has(Paths.upload(id)) && (await this.statOf(Paths.upload(id))) !== undefined)
        return false;
      if (!(await stillOld(item.key))) return false;
      await this.opts.driver.delete(item.key);
      return true;
    });
    const { driver } = this.opts;
    if (driver.abortStaleMultipartUploads) {
      await this.guard();
      report.multipartAborted = await driver.abortStaleMultipartUploads(new Date(cutoff - ttlMs));
    }

    // 5. Done: forget the run, keep deferrals that are still due.
    const now = this.clock();
    for (const [id, until] of Object.entries(state.deferred))
      if (until <= now) delete state.deferred[id];
    delete state.run;
    state.last = {
      id: runId,
      finishedAt: now,
      deleted: report.deleted.length,
      bytesFreed: report.bytesFreed,
    };
    await this.saveState(state);
  }

  /**
   * restoreNeeded puts back deleted links, descriptors and manifests that a manifest now in
   * `repos` needs: a push that checked a link just before it was deleted, or an index naming
   * a manifest retention removed. Restores happen in dependency order (links, then manifests).
   */
  private async restoreNeeded(
    repos: readonly RepoSnapshot[],
    undo: readonly UndoEntry[],
    manifests: ReadonlyMap<string, StoredManifest>,
    report: GcReport,
  ): Promise<void> {
    const restored = (item: GcItem) => {
      report.restored.push(item);
      this.counters.restored++;
      this.emit('restored', item);
      this.opts.log.warn({ ...item }, 'gc restored a deletion a concurrent push needed');
    };
    for (const repo of repos) {
      const needBlobs = new Set<string>();
      const needManifests: StoredManifest[] = [];
      const visit = (refs: { blobs: string[]; children: string[] } | undefined) => {
        for (const b of refs?.blobs ?? []) needBlobs.add(b);
        for (const c of refs?.children ?? []) {
          const m = manifests.get(`${repo.name}\n${c}`);
          if (m && !repo.manifests.has(c) && !needManifests.includes(m)) {
            needManifests.push(m);
            visit(refsOfBody(m.body));
          }
        }
      };
      for (const refs of repo.manifests.values()) visit(refs);
      for (const u of undo) {
        if (u.repo !== repo.name || !needBlobs.has(u.digest) || repo.links.has(u.digest)) continue;
        await this.opts.driver.put(u.key, u.data);
        restored({
          kind: 'link',
          key: u.key,
          bytes: u.data.length,
          repo: repo.name,
          digest: u.digest,
          reason: 'needed',
        });
      }
      // Children first: an index is accepted only once its children exist.
      for (const m of needManifests.reverse()) {
        try {
          await this.opts.registry.repository(repo.name).put(m.body, m.mediaType);
          restored({
            kind: 'manifest',
            key: Paths.manifest(repo.name, m.digest),
            bytes: m.body.length,
            repo: repo.name,
            digest: m.digest.value,
            reason: 'needed',
          });
        } catch (err) {
          this.opts.log.error(
            { repo: repo.name, digest: m.digest.value, err },
            'gc could not restore a manifest',
          );
        }
      }
    }
  }
}
