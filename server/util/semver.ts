/**
 * A small semantic-version range matcher for sync tag selection (semver.org 2.0 versions, an
 * optional leading `v`). Ranges are the npm dialect's common subset:
 *
 * - comparators `>=1.2`, `>1.2.3`, `<2`, `<=2.1`, `=1.2.3`, `1.2.3` (exact), joined by spaces
 *   (all must hold);
 * - `^1.2.3` (same major; for 0.x same minor), `~1.2.3` (same minor), `1.2.x`/`1.x`/`*`;
 * - alternatives separated by `||` (any may hold).
 *
 * A missing minor or patch in a comparator counts as 0 (`<2` is `<2.0.0`). A pre-release
 * version (`1.2.3-rc.1`) matches only a range with a comparator naming a pre-release of the
 * same major.minor.patch, as npm does, so `>=1.0` never picks release candidates.
 */

/** Version is a parsed semantic version. */
export interface Version {
  major: number;
  minor: number;
  patch: number;
  pre: (string | number)[];
}

const VERSION =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

/** parseVersion reads a tag as a version (`1.2.3`, `v1.2.3-rc.1`), or undefined. */
export function parseVersion(tag: string): Version | undefined {
  const m = VERSION.exec(tag);
  if (!m) return undefined;
  const pre =
    m[4] === undefined ? [] : m[4].split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre };
}

/** compareVersions orders versions by semver precedence (negative, zero or positive). */
export function compareVersions(a: Version, b: Version): number {
  const d = a.major - b.major || a.minor - b.minor || a.patch - b.patch;
  if (d !== 0) return d;
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length;
  for (let i = 0; i < Math.max(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    if (typeof x === 'number') return -1;
    if (typeof y === 'number') return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

type Op = '<' | '<=' | '>' | '>=' | '=';

interface Comparator {
  op: Op;
  v: Version;
}

/** SemverRangeError is a range that cannot be read; the message says which part. */
export class SemverRangeError extends Error {
  override readonly name = 'SemverRangeError';
}

const PARTIAL =
  /^(<=|>=|<|>|=|\^|~)?v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$/;

const ver = (major: number, minor: number, patch: number, pre: Version['pre'] = []): Version => ({
  major,
  minor,
  patch,
  pre,
});

/** comparators expands one range word (`^1.2`, `>=1`, `1.x`) into plain comparators. */
function comparators(word: string): Comparator[] {
  const m = PARTIAL.exec(word);
  if (!m) throw new SemverRangeError(`not a version comparator: ${JSON.stringify(word)}`);
  const op = m[1] ?? '';
  const wild = (s: string | undefined) => s === undefined || /^[xX*]$/.test(s);
  const [maj, min, pat] = [m[2], m[3], m[4]];
  if (wild(maj)) return op === '<' || op === '>' ? [{ op: '<', v: ver(0, 0, 0) }] : [];
  const M = Number(maj);
  const pre = m[5] === undefined ? [] : parseVersion(`0.0.0-${m[5]}`)!.pre;
  if (wild(min)) return wildRange(op, M, undefined);
  const N = Number(min);
  if (wild(pat)) return wildRange(op, M, N);
  const v = ver(M, N, Number(pat), pre);
  if (op === '^') {
    const upper = M > 0 ? ver(M + 1, 0, 0) : N > 0 ? ver(0, N + 1, 0) : ver(0, 0, v.patch + 1);
    return [
      { op: '>=', v },
      { op: '<', v: upper },
    ];
  }
  if (op === '~')
    return [
      { op: '>=', v },
      { op: '<', v: ver(M, N + 1, 0) },
    ];
  return [{ op: (op || '=') as Op, v }];
}

/** wildRange is `op M[.N].x`: a partial version as a range of whole versions. */
function wildRange(op: string, M: number, N: number | undefined): Comparator[] {
  const low = ver(M, N ?? 0, 0);
  const high = N === undefined ? ver(M + 1, 0, 0) : ver(M, N + 1, 0);
  switch (op) {
    case '>=':
      return [{ op: '>=', v: low }];
    case '>':
      return [{ op: '>=', v: high }];
    case '<':
      return [{ op: '<', v: low }];
    case '<=':
      return [{ op: '<', v: high }];
    case '^':
      return [
        { op: '>=', v: low },
        { op: '<', v: M > 0 || N === undefined ? ver(M + 1, 0, 0) : ver(0, N + 1, 0) },
      ];
    default: // '', '=', '~'
      return [
        { op: '>=', v: low },
        { op: '<', v: high },
      ];
  }
}

function holds(c: Comparator, v: Version): boolean {
  const d = compareVersions(v, c.v);
  switch (c.op) {
    case '<':
      return d < 0;
    case '<=':
      return d <= 0;
    case '>':
      return d > 0;
    case '>=':
      return d >= 0;
    case '=':
      return d === 0;
  }
}

/**
 * SemverRange is a parsed range. `matches` is true for a tag that reads as a version
 * satisfying it; a tag that is not a version never matches. The constructor throws
 * SemverRangeError for a range it cannot read.
 */
export class SemverRange {
  private readonly sets: Comparator[][];

  constructor(readonly range: string) {
    const alternatives = range.split('||').map((s) => s.trim());
    if (range.trim() === '') throw new SemverRangeError('empty range');
    this.sets = alternatives.map((alt) => {
      if (alt === '') throw new SemverRangeError(`empty alternative in ${JSON.stringify(range)}`);
      // `>= 1.2` is `>=1.2`: an operator standing alone joins the next word.
      const words = alt.replace(/(<=|>=|<|>|=|\^|~)\s+/g, '$1').split(/\s+/);
      return words.flatMap(comparators);
    });
  }

  matches(tag: string): boolean {
    const v = parseVersion(tag);
    if (!v) return false;
    return this.sets.some(
      (set) =>
        set.every((c) => holds(c, v)) &&
        (v.pre.length === 0 ||
          set.some(
            (c) =>
              c.v.pre.length > 0 &&
              c.v.major === v.major &&
              c.v.minor === v.minor &&
              c.v.patch === v.patch,
          )),
    );
  }
}
