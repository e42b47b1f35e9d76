import { randomUUID } from 'node:crypto';
import type { RegistryClient } from '../client/registry.js';
import type { ResolvedSyncJob } from '../config/sync.js';
import { copy, hostPlatform } from '../copy/copy.js';
import { parseDigest } from '../registry/reference.js';
import type { Uploads } from '../registry/uploads.js';
import type { Logger } from '../util/log.js';
import { runInScope, type RequestScope } from '../util/scope.js';
import { LocalDestination, resolveLocal, type LocalRepository } from './local.js';
import { PlatformFilter, RepositorySelector, TagSelector } from './select.js';
import { isReferrersTag, UpstreamSource } from './source.js';

/** SyncCounts is what a pass (or one step of it) copied and found already here. */
export interface SyncCounts {
  tagsCopied: number;
  tagsUnchanged: number;
  manifestsCopied: number;
  manifestsSkipped: number;
  blobsCopied: number;
  blobsSkipped: number;
  bytes: number;
}

/** SyncSummary is the outcome of one pass: counts, and each repository or tag that failed. */
export interface SyncSummary extends SyncCounts {
  repositories: number;
  tagsChosen: number;
  errors: { repository: string; tag?: string; error: string }[];
}

/** PassDeps is what one pass reads from and writes to. */
export interface PassDeps {
  /** client speaks to the job's upstream. */
  client: RegistryClient;
  /** prefix is the upstream's prefix: remote `a/b` lands in `<prefix>/a/b`. */
  prefix: string;
  /** mapped: the local name maps back to the job's upstream (its prefix and repository globs). */
  mapped: (local: string) => boolean;
  /** local is a repository as a push writes it, never the pull-through view. */
  local: (name: string) => LocalRepository;
  uploads: Pick<Uploads, 'oneShot' | 'complete'>;
  log: Logger;
  /** guard throws when the pass must stop (aborted, lease lost); called before each tag. */
  guard: () => Promise<void>;
  /** progress hears each step's counts as it ends (metrics). */
  progress?: (delta: Partial<SyncCounts>) => void;
}

/** emptySummary is a summary of a pass that has done nothing yet. */
export function emptySummary(): SyncSummary {
  return {
    repositories: 0,
    tagsChosen: 0,
    tagsCopied: 0,
    tagsUnchanged: 0,
    manifestsCopied: 0,
    manifestsSkipped: 0,
    blobsCopied: 0,
    blobsSkipped: 0,
    bytes: 0,
    errors: [],
  };
}

/** localName is where an upstream repository lands: under the upstream's prefix. */
export function localName(prefix: string, remote: string): string {
  return prefix === '' ? remote : `${prefix}/${remote}`;
}

/**
 * syncPass copies every chosen tag of every chosen repository of `job` from its upstream
 * (ADR 0027). It is idempotent and so resumable: a tag whose local digest equals the
 * upstream's costs one HEAD (and, with referrers, one listing of the root's referrers) and
 * writes nothing; a copy writes only the blobs and manifests not stored yet and the tag last,
 * so a pass cut anywhere leaves no tag naming content that is missing (except children of an
 * index outside `platforms`, on purpose) and the next pass finishes the job. A repository or
 * tag that fails is recorded in the summary and the pass goes on; `guard` failing ends it.
 */
export async function syncPass(job: ResolvedSyncJob, deps: PassDeps): Promise<SyncSummary> {
  const summary = emptySummary();
  const selector = new RepositorySelector(job.repositories);
  const catalog = selector.needsCatalog ? await deps.client.catalog() : [];
  const repositories = selector.select(catalog);
  summary.repositories = repositories.length;
  const pass = new Pass(job, deps, summary);
  for (const remote of repositories) await pass.repository(remote);
  return summary;
}

/**
 * asOnePush runs one tag's copy as one push request runs: in a scope of its own, so the
 * events it causes are recorded together at its end (the tag folded into the push event of
 * its manifest, as for a PUT by tag), with `actor` as the actor. Events of what was written
 * are recorded also when the copy fails midway.
 */
async function asOnePush<T>(actor: string, fn: () => Promise<T>): Promise<T> {
  const scope: RequestScope = {
    id: randomUUID(),
    addr: '',
    host: '',
    scheme: 'http',
    method: 'PUT',
    useragent: 'berth-sync',
    actor,
    storageCalls: 0,
    deferred: [],
    bag: new Map(),
  };
  try {
    return await runInScope(scope, fn);
  } finally {
    await Promise.all(scope.deferred.splice(0).map((run) => run()));
  }
}

class Pass {
  private readonly tags: TagSelector;
  private readonly platforms: PlatformFilter;

  constructor(
    private readonly job: ResolvedSyncJob,
    private readonly deps: PassDeps,
    private readonly summary: SyncSummary,
  ) {
    this.tags = new TagSelector(job.tags);
    this.platforms = new PlatformFilter(job.platforms);
  }

  private add(delta: Partial<SyncCounts>): void {
    for (const [k, v] of Object.entries(delta) as [keyof SyncCounts, number][])
      this.summary[k] += v;
    this.deps.progress?.(delta);
  }

  private failed(repository: string, tag: string | undefined, err: unknown): void {
    const error = err instanceof Error ? err.message : String(err);
    this.summary.errors.push(
      tag === undefined ? { repository, error } : { repository, tag, error },
    );
    this.deps.log.warn({ job: this.job.name, repository, tag, err }, 'sync step failed');
  }

  async repository(remote: string): Promise<void> {
    await this.deps.guard();
    const name = localName(this.deps.prefix, remote);
    if (!this.deps.mapped(name)) {
      this.failed(
        remote,
        undefined,
        new Error(`${name} does not map to upstream ${this.job.upstream}`),
      );
      return;
    }
    let chosen: string[];
    try {
      const all = await this.deps.client.tags(remote);
      chosen = this.tags.select(all.filter((t) => !isReferrersTag(t)));
    } catch (err) {
      this.failed(remote, undefined, err);
      return;
    }
    this.summary.tagsChosen += chosen.length;
    const repo = this.deps.local(name);
    for (const tag of chosen) {
      await this.deps.guard();
      await asOnePush(`sync/${this.job.name}`, () => this.tag(remote, repo, tag)).catch(
        (err: unknown) => this.failed(remote, tag, err),
      );
    }
  }

  private async tag(remote: string, repo: LocalRepository, tag: string): Promise<void> {
    const head = await this.deps.client.headManifest(remote, tag);
    if (head === undefined) return; // removed upstream since the listing
    const source = new UpstreamSource(
      this.deps.client,
      remote,
      head.digest,
      `${this.job.upstream}/${remote}:${tag}`,
    );
    const here = await resolveLocal(repo, tag);
    if (here?.value === head.digest) {
      this.add({ tagsUnchanged: 1 });
      if (this.job.referrers) await this.newReferrers(source, repo, head.digest);
      return;
    }
    await this.copyInto(source, new LocalDestination(repo, this.deps.uploads, tag));
    this.add({ tagsCopied: 1 });
    this.deps.log.info(
      { job: this.job.name, repository: repo.name, tag, digest: head.digest },
      'sync tag copied',
    );
  }

  /**
   * newReferrers copies the referrers of an unchanged tag's root that are not stored yet (a
   * signature added upstream after the image was copied), each with its own referrers.
   */
  private async newReferrers(
    source: UpstreamSource,
    repo: LocalRepository,
    digest: string,
  ): Promise<void> {
    for (const r of await source.referrers(digest)) {
      if (await repo.has(parseDigest(r))) continue;
      await this.copyInto(source.at(r), new LocalDestination(repo, this.deps.uploads, undefined));
    }
  }

  private async copyInto(source: UpstreamSource, dst: LocalDestination): Promise<void> {
    const result = await copy(source, dst, {
      all: true,
      referrers: this.job.referrers,
      platform: hostPlatform(),
      children: (c) => this.platforms.matches(c),
    });
    this.add({
      manifestsCopied: dst.writes.manifestsCopied,
      manifestsSkipped: dst.writes.manifestsSkipped,
      blobsCopied: result.blobsCopied,
      blobsSkipped: result.blobsSkipped,
      bytes: result.bytes,
    });
  }
}
