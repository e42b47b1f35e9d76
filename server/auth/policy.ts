import type { AuthConfig } from '../config/types.js';
import { GlobSet } from '../util/glob.js';

/** Action is what a caller may do in a repository. */
export type Action = 'pull' | 'push' | 'delete';
export const ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

/** ROBOT_PREFIX marks a robot account's user name (`robot$ci`), as in Harbor. */
export const ROBOT_PREFIX = 'robot$';

/**
 * Principal is who is calling. `name` of a robot keeps its `robot$` prefix; anonymous callers
 * have the empty name.
 */
export type Principal =
  | { kind: 'anonymous'; name: '' }
  | { kind: 'user'; name: string }
  | { kind: 'robot'; name: string };

export const ANONYMOUS: Principal = { kind: 'anonymous', name: '' };

/** principalOf classifies an authenticated account name. */
export function principalOf(name: string): Principal {
  return name.startsWith(ROBOT_PREFIX) ? { kind: 'robot', name } : { kind: 'user', name };
}

interface CompiledRule {
  repositories: GlobSet;
  users: Set<string>;
  groups: Set<string>;
  robots: Set<string>;
  actions: Set<Action>;
}

const CACHE_LIMIT = 10_000;

/**
 * AccessPolicy answers "what may this principal do in this repository" from the configured
 * rules, groups and anonymous-pull patterns. It is pure and in memory: evaluating it never
 * touches storage. Results are memoised per (principal, repository).
 */
export class AccessPolicy {
  private readonly rules: CompiledRule[];
  private readonly anonymous: GlobSet;
  private readonly immutable: { repositories: GlobSet; tags: GlobSet }[];
  private readonly groupsOf = new Map<string, string[]>();
  private readonly cache = new Map<string, ReadonlySet<Action>>();
  private readonly admins: { users: Set<string>; groups: Set<string> };

  constructor(
    auth: Pick<AuthConfig, 'rules' | 'groups' | 'anonymousPull' | 'immutableTags'> &
      Partial<Pick<AuthConfig, 'admins'>>,
  ) {
    this.admins = {
      users: new Set(auth.admins?.users ?? []),
      groups: new Set(auth.admins?.groups ?? []),
    };
    this.rules = auth.rules.map((r) => ({
      repositories: new GlobSet(r.repositories),
      users: new Set(r.users ?? []),
      groups: new Set(r.groups ?? []),
      robots: new Set((r.robots ?? []).map((n) => ROBOT_PREFIX + n)),
      actions: new Set(r.actions),
    }));
    this.anonymous = new GlobSet(auth.anonymousPull);
    this.immutable = auth.immutableTags.map((t) => ({
      repositories: new GlobSet(t.repositories),
      tags: new GlobSet(t.tags),
    }));
    for (const g of auth.groups)
      for (const m of g.members) this.groupsOf.set(m, [...(this.groupsOf.get(m) ?? []), g.name]);
  }

  /** isAdmin is true when `who` has the admin role (`auth.admins`). */
  isAdmin(who: Principal): boolean {
    if (who.kind === 'anonymous') return false;
    if (this.admins.users.has(who.name)) return true;
    return (this.groupsOf.get(who.name) ?? []).some((g) => this.admins.groups.has(g));
  }

  /** anonymousEmpty is true when no repository is open to anonymous pulls. */
  get anonymousEmpty(): boolean {
    return this.anonymous.empty;
  }

  /** anonymousPull is true when anyone, without credentials, may pull `repo`. */
  anonymousPull(repo: string): boolean {
    return this.anonymous.matches(repo);
  }

  /** actions is every action `who` may take in `repo` (anonymous pull included). */
  actions(who: Principal, repo: string): ReadonlySet<Action> {
    const key = `${who.kind}\0${who.name}\0${repo}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const out = new Set<Action>();
    if (this.anonymous.matches(repo)) out.add('pull');
    if (who.kind !== 'anonymous') {
      const groups = this.groupsOf.get(who.name) ?? [];
      for (const r of this.rules) {
        const applies =
          (who.kind === 'user' && r.users.has(who.name)) ||
          (who.kind === 'robot' && r.robots.has(who.name)) ||
          groups.some((g) => r.groups.has(g)) ||
          r.users.has('*');
        if (applies && r.repositories.matches(repo)) for (const a of r.actions) out.add(a);
      }
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(key, out);
    return out;
  }

  /** immutableTag is true when `tag` in `repo` may not be moved or deleted once it exists. */
  immutableTag(repo: string, tag: string): boolean {
    return this.immutable.some((p) => p.repositories.matches(repo) && p.tags.matches(tag));
  }

  /** hasImmutableTags is true when some pattern covers `repo`. */
  hasImmutableTags(repo: string): boolean {
    return this.immutable.some((p) => p.repositories.matches(repo));
  }
}
