/**
 * GLOB_PATTERN is what a repository or tag glob may contain: name characters plus `*` and `?`.
 * Every glob in the configuration (auth rules, immutable tags, retention policies, event
 * filters, metrics label allow-list) is one dialect, this one.
 */
export const GLOB_PATTERN = '^[A-Za-z0-9._/*?-]{1,255}$';

/**
 * compileGlob turns a repository or tag pattern into an anchored RegExp: `*` matches within one
 * path segment, `**` matches across segments (so `team/**` covers `team/a/b`), `?` matches one
 * character other than `/`. Every other character is literal.
 */
export function compileGlob(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** GlobSet matches a name against any of several patterns. */
export class GlobSet {
  private readonly res: RegExp[];

  constructor(readonly patterns: readonly string[]) {
    this.res = patterns.map(compileGlob);
  }

  /** matches is true when any pattern matches the whole of `name`. */
  matches(name: string): boolean {
    return this.res.some((r) => r.test(name));
  }

  get empty(): boolean {
    return this.res.length === 0;
  }
}
