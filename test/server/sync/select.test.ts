import { describe, expect, it } from 'vitest';
import {
  PlatformFilter,
  RepositorySelector,
  TagSelector,
  parsePlatform,
} from '../../../server/sync/select.js';
import { SemverRange, SemverRangeError, parseVersion } from '../../../server/util/semver.js';
import { isReferrersTag, referrersTag } from '../../../server/sync/source.js';

const TAGS = [
  'latest',
  '1.0.0',
  'v1.2.0',
  '1.2.5',
  '1.3.0-rc.1',
  '1.9.9',
  '2.0.0',
  'v2.1',
  'edge',
  'nightly-2026',
];

describe('semver ranges', () => {
  it('GIVEN versions with and without a leading v WHEN parsed THEN they read alike and non-versions are refused', () => {
    expect(parseVersion('v1.2.3')).toEqual(parseVersion('1.2.3'));
    expect(parseVersion('1.2.3-rc.1')?.pre).toEqual(['rc', 1]);
    expect(parseVersion('1.2')).toBeUndefined();
    expect(parseVersion('latest')).toBeUndefined();
    expect(parseVersion('01.2.3')).toBeUndefined();
  });

  it.each([
    ['>=1.2 <2', ['v1.2.0', '1.2.5', '1.9.9']],
    ['^1.2.0', ['v1.2.0', '1.2.5', '1.9.9']],
    ['~1.2.0', ['v1.2.0', '1.2.5']],
    ['1.x', ['1.0.0', 'v1.2.0', '1.2.5', '1.9.9']],
    ['1.2.x || >=2', ['v1.2.0', '1.2.5', '2.0.0']],
    ['=1.0.0', ['1.0.0']],
    ['>= 1.9.9', ['1.9.9', '2.0.0']],
    ['>1.2.5 <=2.0.0', ['1.9.9', '2.0.0']],
    ['>=1.3.0-rc.0 <1.4', ['1.3.0-rc.1']],
    ['*', ['1.0.0', 'v1.2.0', '1.2.5', '1.9.9', '2.0.0']],
  ])('GIVEN the range %s WHEN tags are matched THEN exactly %j match', (range, want) => {
    const r = new SemverRange(range);
    expect(TAGS.filter((t) => r.matches(t))).toEqual(want);
  });

  it('GIVEN a pre-release WHEN the range names no pre-release of that version THEN it does not match', () => {
    expect(new SemverRange('>=1.0').matches('1.3.0-rc.1')).toBe(false);
    expect(new SemverRange('^1.3.0-rc.0').matches('1.3.0-rc.1')).toBe(true);
    expect(new SemverRange('^1.3.0-rc.2').matches('1.3.0-rc.1')).toBe(false);
  });

  it.each(['', '>=', 'one.two', '1.2 || ', '>>1'])(
    'GIVEN the unreadable range %j WHEN parsed THEN SemverRangeError says why',
    (range) => {
      expect(() => new SemverRange(range)).toThrow(SemverRangeError);
    },
  );
});

describe('tag selection', () => {
  it('GIVEN no tags section WHEN selecting THEN every tag is chosen, sorted', () => {
    expect(new TagSelector(undefined).select(['b', 'a', 'b'])).toEqual(['a', 'b']);
  });

  it('GIVEN globs, a regex and a semver range WHEN selecting THEN a tag matching any one form is chosen and no other', () => {
    const s = new TagSelector({
      glob: ['latest', 'nightly-*'],
      regex: 'v2\\.[0-9]+',
      semver: '~1.2',
    });
    expect(s.select(TAGS)).toEqual(['1.2.5', 'latest', 'nightly-2026', 'v1.2.0', 'v2.1']);
  });

  it('GIVEN a regex WHEN matching THEN it must match the whole tag', () => {
    const s = new TagSelector({ regex: '1\\.2' });
    expect(s.matches('1.2')).toBe(true);
    expect(s.matches('1.2.5')).toBe(false);
    expect(s.matches('v1.2')).toBe(false);
  });

  it('GIVEN the referrers tag schema WHEN naming a subject THEN its tag is recognised as such', () => {
    const d = `sha256:${'a'.repeat(64)}`;
    expect(referrersTag(d)).toBe(`sha256-${'a'.repeat(64)}`);
    expect(isReferrersTag(referrersTag(d))).toBe(true);
    expect(isReferrersTag('sha256-abc')).toBe(false);
  });
});

describe('platform selection', () => {
  const amd64 = { platform: { os: 'linux', architecture: 'amd64' } };
  const armv7 = { platform: { os: 'linux', architecture: 'arm', variant: 'v7' } };
  const armv6 = { platform: { os: 'linux', architecture: 'arm', variant: 'v6' } };
  const attestation = {};

  it('GIVEN no platforms WHEN filtering THEN every child is kept, even one without a platform', () => {
    const f = new PlatformFilter([]);
    expect([amd64, armv7, attestation].every((c) => f.matches(c))).toBe(true);
  });

  it('GIVEN linux/amd64 and linux/arm/v7 WHEN filtering THEN only those children are kept', () => {
    const f = new PlatformFilter(['linux/amd64', 'linux/arm/v7']);
    expect([amd64, armv7, armv6, attestation].map((c) => f.matches(c))).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });

  it('GIVEN a platform without a variant WHEN filtering THEN every variant of it is kept', () => {
    const f = new PlatformFilter(['linux/arm']);
    expect([armv7, armv6, amd64].map((c) => f.matches(c))).toEqual([true, true, false]);
    expect(parsePlatform('linux/arm64/v8')).toEqual({
      os: 'linux',
      architecture: 'arm64',
      variant: 'v8',
    });
  });
});

describe('repository selection', () => {
  it('GIVEN only literal names WHEN selecting THEN the catalog is not needed and the names are used as they are', () => {
    const s = new RepositorySelector(['library/alpine', 'team/app']);
    expect(s.needsCatalog).toBe(false);
    expect(s.select([])).toEqual(['library/alpine', 'team/app']);
  });

  it('GIVEN globs WHEN selecting from the catalog THEN matching names and the literals are chosen', () => {
    const s = new RepositorySelector(['team/*', 'tools/**', 'solo']);
    expect(s.needsCatalog).toBe(true);
    expect(s.select(['team/a', 'team/a/b', 'tools/x/y', 'other/z', 'solo'])).toEqual([
      'solo',
      'team/a',
      'tools/x/y',
    ]);
  });
});
