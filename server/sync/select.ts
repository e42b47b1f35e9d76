import type { ResolvedSyncJob } from '../config/sync.js';
import type { Platform } from '../copy/copy.js';
import type { Descriptor } from '../copy/spec.js';
import { GlobSet } from '../util/glob.js';
import { SemverRange } from '../util/semver.js';

/**
 * TagSelector decides which upstream tags a sync job copies: a tag is chosen when it matches
 * any form the job gives (globs, a whole-tag regular expression, a semver range); with no
 * `tags` every tag is chosen. Pure, so it is tested on its own.
 */
export class TagSelector {
  private readonly globs: GlobSet | undefined;
  private readonly regex: RegExp | undefined;
  private readonly semver: SemverRange | undefined;
  private readonly all: boolean;

  constructor(tags: ResolvedSyncJob['tags']) {
    this.all = tags === undefined;
    this.globs = tags?.glob?.length ? new GlobSet(tags.glob) : undefined;
    this.regex = tags?.regex === undefined ? undefined : new RegExp(`^(?:${tags.regex})$`);
    this.semver = tags?.semver === undefined ? undefined : new SemverRange(tags.semver);
  }

  matches(tag: string): boolean {
    if (this.all) return true;
    return (
      (this.globs?.matches(tag) ?? false) ||
      (this.regex?.test(tag) ?? false) ||
      (this.semver?.matches(tag) ?? false)
    );
  }

  /** select is the chosen tags of `tags`, sorted, without duplicates. */
  select(tags: readonly string[]): string[] {
    return [...new Set(tags.filter((t) => this.matches(t)))].sort();
  }
}

/** parsePlatform reads `os/arch[/variant]` (the schema checked its shape). */
export function parsePlatform(s: string): Platform {
  const [os = '', architecture = '', variant] = s.split('/');
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/**
 * PlatformFilter picks the children of an index a sync job copies: with no platforms
 * configured every child; else a child whose platform has the os and architecture of one
 * configured, and its variant when that one names a variant. A child without a platform
 * (an attestation manifest, say) is kept only when every child is.
 */
export class PlatformFilter {
  private readonly wanted: Platform[];

  constructor(platforms: readonly string[]) {
    this.wanted = platforms.map(parsePlatform);
  }

  get all(): boolean {
    return this.wanted.length === 0;
  }

  matches(d: Pick<Descriptor, 'platform'>): boolean {
    if (this.all) return true;
    const p = d.platform;
    if (p === undefined) return false;
    return this.wanted.some(
      (w) =>
        w.os === p.os &&
        w.architecture === p.architecture &&
        (w.variant === undefined || w.variant === p.variant),
    );
  }
}

/** isGlob: the pattern has a wildcard, so naming its repositories needs the upstream catalog. */
export function isGlob(pattern: string): boolean {
  return /[*?]/.test(pattern);
}

/**
 * RepositorySelector names the upstream repositories of a job: its literal names as they
 * are, and the catalog's names matching its globs (the catalog is read only when there is
 * a glob).
 */
export class RepositorySelector {
  private readonly literal: string[];
  private readonly globs: GlobSet;

  constructor(patterns: readonly string[]) {
    this.literal = patterns.filter((p) => !isGlob(p));
    this.globs = new GlobSet(patterns.filter(isGlob));
  }

  get needsCatalog(): boolean {
    return !this.globs.empty;
  }

  /** select is the repositories to copy, sorted: literals plus catalog names the globs match. */
  select(catalog: readonly string[]): string[] {
    const names = new Set(this.literal);
    for (const name of catalog) if (this.globs.matches(name)) names.add(name);
    return [...names].sort();
  }
}
