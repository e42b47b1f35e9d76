import { parseDigest } from '../registry/reference.js';
import { Paths } from '../storage/paths.js';
import type { Logger } from '../util/log.js';
import {
  byKey,
  type BlobItem,
  type GcItem,
  type LinkItem,
  type ManifestItem,
  type SegmentItem,
  type TagItem,
  type UploadItem,
} from './report.js';
import {
  planRetention,
  policyFor,
  type CompiledPolicy,
  type ManifestFact,
  type TagFact,
} from './retention.js';
import type { Age, Ages, PointerFact, RepoSnapshot, Snapshot } from './snapshot.js';
import { deferredAt, type GcState } from './state.js';

// Planning decides from the mark's snapshot what a run deletes. Each kind of object has a
// pure planner; those that judge age come in two steps: which keys are candidates, then,
// given their ages (`stat`, read by `plan`), which of them are older than the cutoff.
// Nothing modified at or after the cutoff is ever planned (docs/adr/0007-online-gc.md).

/** Plan is what a run deletes, each kind sorted by key, in the order the sweep deletes. */
export interface Plan {
  tags: TagItem[];
  manifests: ManifestItem[];
  links: LinkItem[];
  blobs: BlobItem[];
  uploads: UploadItem[];
  segments: SegmentItem[];
  /**
   * pointers are the planned links and descriptors as the mark read them, by key: a link's
   * data is its undo copy, and the uploads of their segments are deferred when they go.
   */
  pointers: Map<string, PointerFact>;
}

/** planItems lists every item of a plan in plan order (what a dry run reports). */
export function planItems(plan: Plan): GcItem[] {
  return [
    ...plan.tags,
    ...plan.manifests,
    ...plan.links,
    ...plan.blobs,
    ...plan.uploads,
    ...plan.segments,
  ];
}

/** uploadsOf names the uploads whose segments a pointer names. */
export function uploadsOf(pointer: PointerFact | undefined): Set<string> {
  return new Set((pointer?.segments ?? []).map(Paths.segmentUpload));
}

/** oldAge is the age of `key` if it is older than `cutoff`; undefined if younger or gone. */
function oldAge(ages: Ages, key: string, cutoff: number): Age | undefined {
  const age = ages.get(key);
  return age !== undefined && age.modified < cutoff ? age : undefined;
}

const manifestKey = (repo: string, digest: string) => Paths.manifest(repo, parseDigest(digest));

// ---------------------------------------------------------------------------------------------
// Tags and manifests: retention

/** judgesTags: a policy with `keepTags` rules deletes tags, by their age. */
const judgesTags = (p: CompiledPolicy) => p.keep !== undefined && p.keep.length > 0;

/** judgesManifests: a policy that deletes untagged manifests or referrers needs their age. */
const judgesManifests = (p: CompiledPolicy) =>
  p.policy.deleteUntaggedAfterSeconds !== undefined || p.policy.deleteReferrers === true;

/** retentionKeys are the keys (tags, manifests) whose ages `policy` needs to judge `repo`. */
export function retentionKeys(repo: RepoSnapshot, policy: CompiledPolicy): string[] {
  return [
    ...(judgesTags(policy) ? [...repo.tags.keys()].map((t) => Paths.tag(repo.name, t)) : []),
    ...(judgesManifests(policy)
      ? [...repo.manifests.keys()].map((d) => manifestKey(repo.name, d))
      : []),
  ];
}

/**
 * retentionFacts are `repo`'s tags and manifests as retention judges them, by the ages of
 * `retentionKeys`. A tag a judging policy found gone is left out; a manifest whose
 * references or age are unknown counts as new, so it is never condemned.
 */
export function retentionFacts(
  repo: RepoSnapshot,
  policy: CompiledPolicy,
  ages: Ages,
): { tags: TagFact[]; manifests: Map<string, ManifestFact> } {
  const never = Number.POSITIVE_INFINITY;
  const tags = [...repo.tags]
    .filter(([tag]) => ages.has(Paths.tag(repo.name, tag)) || !judgesTags(policy))
    .map(([tag, digest]) => ({
      tag,
      digest,
      modified: ages.get(Paths.tag(repo.name, tag))?.modified ?? never,
    }));
  const manifests = new Map(
    [...repo.manifests].map(([digest, refs]) => [
      digest,
      {
        digest,
        modified:
          refs === undefined
            ? never
            : (ages.get(manifestKey(repo.name, digest))?.modified ?? never),
        children: refs?.children ?? [],
        subject: refs?.subject,
      },
    ]),
  );
  return { tags, manifests };
}

/** planRepoRetention condemns what `policy` deletes from `repo` (see planRetention). */
export function planRepoRetention(
  repo: RepoSnapshot,
  policy: CompiledPolicy,
  ages: Ages,
  cutoff: number,
  now: number,
): { tags: TagItem[]; manifests: ManifestItem[] } {
  const facts = retentionFacts(repo, policy, ages);
  const r = planRetention(policy, facts.tags, facts.manifests, cutoff, now);
  const sizeOf = (key: string) => ages.get(key)?.size ?? 0;
  return {
    tags: r.tags.map(({ tag, digest }) => {
      const key = Paths.tag(repo.name, tag);
      return {
        kind: 'tag',
        key,
        bytes: sizeOf(key),
        repo: repo.name,
        tag,
        digest,
        reason: 'retention',
      };
    }),
    manifests: r.manifests.map(({ digest, reason }) => {
      const key = manifestKey(repo.name, digest);
      return { kind: 'manifest', key, bytes: sizeOf(key), repo: repo.name, digest, reason };
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// Links

/** LinkScan is what the links of every repository come to before their ages are read. */
export interface LinkScan {
  /** live are the digests a surviving manifest names, and every link of a blind repository. */
  live: Set<string>;
  /** blind are repositories with an unreadable surviving manifest: none of their links go. */
  blind: string[];
  /** candidates are the links no surviving manifest of their repository names. */
  candidates: { repo: string; digest: string; link: PointerFact }[];
}

/**
 * scanLinks finds the links that no manifest of their repository names once `condemned`
 * (the manifests retention deletes) are gone; the digests the survivors name are live.
 */
export function scanLinks(
  repos: readonly RepoSnapshot[],
  condemned: readonly ManifestItem[],
): LinkScan {
  const scan: LinkScan = { live: new Set(), blind: [], candidates: [] };
  const goneIn = new Map<string, Set<string>>();
  for (const m of condemned) goneIn.set(m.repo, (goneIn.get(m.repo) ?? new Set()).add(m.digest));
  for (const repo of repos) {
    const gone = goneIn.get(repo.name) ?? new Set<string>();
    const referenced = new Set<string>();
    let blind = false;
    for (const [digest, refs] of repo.manifests) {
      if (gone.has(digest)) continue;
      if (refs === undefined) {
        blind = true;
        continue;
      }
      for (const b of [...refs.blobs, ...refs.children]) referenced.add(b);
      if (refs.subject !== undefined) referenced.add(refs.subject);
    }
    for (const b of referenced) scan.live.add(b);
    if (blind) {
      scan.blind.push(repo.name);
      for (const d of repo.links.keys()) scan.live.add(d);
      continue;
    }
    for (const [digest, link] of repo.links)
      if (!referenced.has(digest)) scan.candidates.push({ repo: repo.name, digest, link });
  }
  return scan;
}

/**
 * planLinks condemns the candidate links older than the cutoff. The others (young, or gone
 * since the mark) join the live digests, which keep their descriptors.
 */
export function planLinks(
  scan: LinkScan,
  ages: Ages,
  cutoff: number,
): { links: LinkItem[]; live: Set<string> } {
  const live = new Set(scan.live);
  const links: LinkItem[] = [];
  for (const { repo, digest, link } of scan.candidates) {
    const age = oldAge(ages, link.key, cutoff);
    if (age === undefined) live.add(digest);
    else
      links.push({
        kind: 'link',
        key: link.key,
        bytes: age.size,
        repo,
        digest,
        reason: 'unreferenced',
      });
  }
  return { links, live };
}

// ---------------------------------------------------------------------------------------------
// Blob descriptors

/** blobCandidates are the descriptors whose digest is not live. */
export function blobCandidates(
  descriptors: ReadonlyMap<string, PointerFact>,
  live: ReadonlySet<string>,
): [string, PointerFact][] {
  return [...descriptors].filter(([digest]) => !live.has(digest));
}

/** planBlobs condemns the candidate descriptors older than the cutoff. */
export function planBlobs(
  candidates: readonly [string, PointerFact][],
  ages: Ages,
  cutoff: number,
): BlobItem[] {
  return candidates.flatMap(([digest, desc]): BlobItem[] => {
    const age = oldAge(ages, desc.key, cutoff);
    return age === undefined
      ? []
      : [{ kind: 'blob', key: desc.key, bytes: age.size, digest, reason: 'unreferenced' }];
  });
}

// ---------------------------------------------------------------------------------------------
// Upload sessions

/** expiredUploads are the sessions expired (`startedAt` + TTL) before the cutoff. */
export function expiredUploads(
  uploads: Snapshot['uploads'],
  ttlMs: number,
  cutoff: number,
): string[] {
  return [...uploads]
    .filter(([, st]) => st !== undefined && st.startedAt + ttlMs < cutoff)
    .map(([id]) => id);
}

/** planUploads condemns expired sessions, with their sizes from `ages` (0 when gone). */
export function planUploads(expired: readonly string[], ages: Ages): UploadItem[] {
  return expired.map((id) => {
    const key = Paths.upload(id);
    return { kind: 'upload', key, bytes: ages.get(key)?.size ?? 0, reason: 'expired' };
  });
}

// ---------------------------------------------------------------------------------------------
// Segments

/**
 * segmentCandidates are the segments named by no session (but expired ones), descriptor or
 * link the mark read, including the pointers this run deletes (their bytes wait for a later
 * run), outside a live session's upload and not deferred at `now`. Undefined when a
 * descriptor or link was unreadable: then no segment may go.
 */
export function segmentCandidates(
  snap: Snapshot,
  expired: ReadonlySet<string>,
  deferred: Readonly<GcState['deferred']>,
  now: number,
): string[] | undefined {
  const marked = new Set<string>();
  for (const [id, st] of snap.uploads) {
    if (expired.has(id)) continue;
    for (const s of st?.segments ?? []) marked.add(s.key);
  }
  const pointers = [
    ...snap.descriptors.values(),
    ...snap.repos.flatMap((r) => [...r.links.values()]),
  ];
  for (const p of pointers) {
    if (p.segments === undefined) return undefined;
    for (const s of p.segments) marked.add(s);
  }
  const out: string[] = [];
  for (const [id, keys] of snap.segments) {
    if (deferredAt(deferred, id, now)) continue;
    if (snap.uploads.has(id) && !expired.has(id)) continue;
    for (const k of keys) if (!marked.has(k)) out.push(k);
  }
  return out;
}

/** planSegments condemns the candidate segments older than the cutoff. */
export function planSegments(
  candidates: readonly string[],
  ages: Ages,
  cutoff: number,
): SegmentItem[] {
  return candidates.flatMap((key): SegmentItem[] => {
    const age = oldAge(ages, key, cutoff);
    return age === undefined
      ? []
      : [{ kind: 'segment', key, bytes: age.size, reason: 'unreferenced' }];
  });
}

// ---------------------------------------------------------------------------------------------
// The plan

export interface PlanInput {
  snap: Snapshot;
  policies: readonly CompiledPolicy[];
  /** now is the run's start (ms): retention ages and deferrals are judged at it. */
  now: number;
  /** cutoff is `now` minus the grace window: nothing modified since is planned. */
  cutoff: number;
  deferred: Readonly<GcState['deferred']>;
  /** uploadTtlMs is how long an upload session lives (`uploads.ttlSeconds`). */
  uploadTtlMs: number;
}

export interface PlanReads {
  /** ages stats keys; a key left out of the answer was gone. */
  ages(keys: readonly string[]): Promise<Ages>;
  log: Logger;
}

/** planAllRetention applies to each repository the first policy that matches it, if any. */
async function planAllRetention(
  { snap, policies, cutoff, now }: PlanInput,
  reads: PlanReads,
): Promise<{ tags: TagItem[]; manifests: ManifestItem[] }> {
  const out = { tags: [] as TagItem[], manifests: [] as ManifestItem[] };
  for (const repo of snap.repos) {
    const policy = policyFor(policies, repo.name);
    if (!policy) continue;
    const ages = await reads.ages(retentionKeys(repo, policy));
    const r = planRepoRetention(repo, policy, ages, cutoff, now);
    out.tags.push(...r.tags);
    out.manifests.push(...r.manifests);
  }
  return out;
}

/**
 * plan runs the planners in dependency order (retention, links, descriptors, sessions,
 * segments), reading the ages of each kind's candidates in between. It writes nothing.
 */
export async function plan(input: PlanInput, reads: PlanReads): Promise<Plan> {
  const { snap, cutoff, now } = input;
  const { tags, manifests } = await planAllRetention(input, reads);
  const scan = scanLinks(snap.repos, manifests);
  for (const repo of scan.blind)
    reads.log.warn({ repo }, 'gc keeps every link of a repository with an unreadable manifest');
  const { links, live } = planLinks(
    scan,
    await reads.ages(scan.candidates.map((c) => c.link.key)),
    cutoff,
  );

  // Without every repository's references, no descriptor may go.
  const blobScan = scan.blind.length > 0 ? [] : blobCandidates(snap.descriptors, live);
  const blobs = planBlobs(blobScan, await reads.ages(blobScan.map(([, d]) => d.key)), cutoff);

  const expired = expiredUploads(snap.uploads, input.uploadTtlMs, cutoff);
  const uploads = planUploads(expired, await reads.ages(expired.map(Paths.upload)));

  const segmentScan = segmentCandidates(snap, new Set(expired), input.deferred, now);
  if (segmentScan === undefined)
    reads.log.warn({}, 'gc keeps every segment: a blob descriptor is unreadable');
  const segments = planSegments(segmentScan ?? [], await reads.ages(segmentScan ?? []), cutoff);

  const read = new Map<string, PointerFact>([
    ...scan.candidates.map((c): [string, PointerFact] => [c.link.key, c.link]),
    ...blobScan.map(([, d]): [string, PointerFact] => [d.key, d]),
  ]);
  const sorted = <T extends GcItem>(items: T[]) => items.sort(byKey);
  return {
    tags: sorted(tags),
    manifests: sorted(manifests),
    links: sorted(links),
    blobs: sorted(blobs),
    uploads: sorted(uploads),
    segments: sorted(segments),
    pointers: new Map([...links, ...blobs].map((i) => [i.key, read.get(i.key)!])),
  };
}
