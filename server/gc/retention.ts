import { GlobSet } from '../util/glob.js';
import type { RetentionPolicy } from '../config/types.js';
import type { Digest } from '../registry/reference.js';
import type { DeleteOptions, StoredManifest } from '../registry/repository.js';

/**
 * RetentionTarget is the narrow part of the registry retention deletes through (so events
 * and policies wrap its deletions) and puts back manifests that a concurrent push needs.
 */
export interface RetentionTarget {
  repository(name: string): {
    untag(tag: string, expected?: Digest): Promise<void>;
    delete(digest: Digest, opts?: DeleteOptions): Promise<void>;
    get(digest: Digest): Promise<StoredManifest>;
    put(body: Buffer, contentType: string | undefined): Promise<unknown>;
  };
}

/** TagFact is one tag as retention sees it. */
export interface TagFact {
  tag: string;
  digest: string;
  /** modified is when the tag was last pushed (ms). */
  modified: number;
}

/** ManifestFact is one stored manifest as retention sees it. */
export interface ManifestFact {
  digest: string;
  /** modified is when the manifest was last pushed (ms). */
  modified: number;
  /** children are the manifests an index lists. */
  children: readonly string[];
  subject?: string;
}

/** RetentionPlan is what retention deletes in one repository. */
export interface RetentionPlan {
  /** tags to delete, each with the digest it pointed to when planned. */
  tags: TagFact[];
  /** manifests to delete, with the rule that condemned each. */
  manifests: { digest: string; reason: 'untagged' | 'orphan-referrer' }[];
}

/** CompiledPolicy is a RetentionPolicy with its patterns compiled. */
export interface CompiledPolicy {
  policy: RetentionPolicy;
  repositories: GlobSet;
  keep?: { patterns?: RegExp[]; mostRecentlyPushed?: number }[];
}

/** compilePolicies compiles every pattern once; throws on an invalid regular expression. */
export function compilePolicies(policies: readonly RetentionPolicy[]): CompiledPolicy[] {
  return policies.map((policy) => ({
    policy,
    repositories: new GlobSet(policy.repositories),
    keep: policy.keepTags?.map((r) => ({
      patterns: r.patterns?.map((p) => new RegExp(p)),
      mostRecentlyPushed: r.mostRecentlyPushed,
    })),
  }));
}

/** policyFor is the first policy whose repository patterns match `repo`, if any. */
export function policyFor(
  policies: readonly CompiledPolicy[],
  repo: string,
): CompiledPolicy | undefined {
  return policies.find((p) => p.repositories.matches(repo));
}

/**
 * planRetention decides, purely, what `policy` deletes from one repository. Nothing modified
 * at or after `cutoff` (the grace window) is ever chosen.
 *
 * Tags: without `keepTags` every tag stays; otherwise a tag stays when it is in the grace
 * window or any rule keeps it (a rule covers the tags matching any of its patterns, or all,
 * and keeps the `mostRecentlyPushed` newest of them, or all).
 *
 * Manifests: the survivors are the closure of the *pinned* manifests over index children and
 * over referrers of survivors. A manifest is pinned when a kept tag points to it, when it is in
 * the grace window, or when neither `deleteUntaggedAfterSeconds` condemns it (older than that
 * at `now`) nor `deleteReferrers` does (its subject is not a survivor). Computed to a fixed
 * point, so a signature of a deleted image goes with it in the same run.
 */
export function planRetention(
  policy: CompiledPolicy,
  tags: readonly TagFact[],
  manifests: ReadonlyMap<string, ManifestFact>,
  cutoff: number,
  now: number,
): RetentionPlan {
  const keptTags = keepTags(policy, tags, cutoff);
  const deletedTags = tags.filter((t) => !keptTags.has(t.tag));
  const tagged = new Set(tags.filter((t) => keptTags.has(t.tag)).map((t) => t.digest));

  const untaggedAge = policy.policy.deleteUntaggedAfterSeconds;
  const dropReferrers = policy.policy.deleteReferrers === true;
  const aged = (m: ManifestFact) =>
    untaggedAge !== undefined && m.modified < now - untaggedAge * 1000;

  let survivors = new Set(manifests.keys());
  for (;;) {
    const pinned = [...survivors].filter((d) => {
      const m = manifests.get(d)!;
      if (tagged.has(d) || m.modified >= cutoff) return true;
      if (aged(m)) return false;
      if (dropReferrers && m.subject !== undefined && !survivors.has(m.subject)) return false;
      return true;
    });
    const next = closure(pinned, survivors, manifests);
    if (next.size === survivors.size) break;
    survivors = next;
  }
  const deleted = [...manifests.keys()].filter((d) => !survivors.has(d)).sort();
  return {
    tags: deletedTags,
    manifests: deleted.map((digest) => ({
      digest,
      reason: aged(manifests.get(digest)!) ? 'untagged' : 'orphan-referrer',
    })),
  };
}

function keepTags(policy: CompiledPolicy, tags: readonly TagFact[], cutoff: number): Set<string> {
  if (policy.keep === undefined || policy.keep.length === 0) return new Set(tags.map((t) => t.tag));
  const kept = new Set(tags.filter((t) => t.modified >= cutoff).map((t) => t.tag));
  for (const rule of policy.keep) {
    let covered = tags.filter(
      (t) => rule.patterns === undefined || rule.patterns.some((p) => p.test(t.tag)),
    );
    if (rule.mostRecentlyPushed !== undefined) {
      covered = [...covered]
        .sort((a, b) => b.modified - a.modified || (a.tag < b.tag ? -1 : 1))
        .slice(0, rule.mostRecentlyPushed);
    }
    for (const t of covered) kept.add(t.tag);
  }
  return kept;
}

/** closure is every manifest of `within` reachable from `roots` via children and referrers. */
function closure(
  roots: readonly string[],
  within: ReadonlySet<string>,
  manifests: ReadonlyMap<string, ManifestFact>,
): Set<string> {
  const referrersOf = new Map<string, string[]>();
  for (const d of within) {
    const s = manifests.get(d)!.subject;
    if (s !== undefined) referrersOf.set(s, [...(referrersOf.get(s) ?? []), d]);
  }
  const out = new Set<string>();
  const stack = [...roots];
  while (stack.length > 0) {
    const d = stack.pop()!;
    if (out.has(d) || !within.has(d)) continue;
    out.add(d);
    stack.push(...manifests.get(d)!.children, ...(referrersOf.get(d) ?? []));
  }
  return out;
}
