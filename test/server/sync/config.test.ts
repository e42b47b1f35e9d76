import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../server/config/load.js';
import { resolveSyncJob } from '../../../server/config/sync.js';

const UPSTREAM = `
mirrors:
  upstreams:
    - name: hub
      url: https://registry-1.docker.io
      prefix: docker.io
  sync:
`;

function problems(syncYaml: string): string[] {
  try {
    parseConfig(UPSTREAM + syncYaml, {});
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('mirrors.sync configuration', () => {
  it('GIVEN a job with only the required fields WHEN parsed and resolved THEN the schema defaults fill the rest', () => {
    const c = parseConfig(
      UPSTREAM + '    - { name: alpine, upstream: hub, repositories: [library/alpine] }\n',
      {},
    );
    expect(c.mirrors.sync).toHaveLength(1);
    expect(resolveSyncJob(c.mirrors.sync[0]!)).toEqual({
      name: 'alpine',
      upstream: 'hub',
      repositories: ['library/alpine'],
      platforms: [],
      referrers: true,
      intervalSeconds: 3600,
      onStart: false,
      leaseSeconds: 120,
    });
  });

  it('GIVEN no sync section WHEN parsed THEN there are no jobs', () => {
    expect(parseConfig('', {}).mirrors.sync).toEqual([]);
  });

  it('GIVEN a job naming an upstream that is not configured WHEN parsed THEN the error names the field and the known upstreams', () => {
    expect(problems('    - { name: a, upstream: quay, repositories: [x] }\n')).toEqual([
      'mirrors.sync.0.upstream: no mirrors.upstreams entry is named "quay" (known: hub)',
    ]);
  });

  it('GIVEN a bad regex, a bad semver range and an empty tags section WHEN parsed THEN each is named', () => {
    const got = problems(
      [
        '    - { name: a, upstream: hub, repositories: [x], tags: { regex: "(" } }',
        '    - { name: b, upstream: hub, repositories: [x], tags: { semver: ">>1" } }',
        '    - { name: c, upstream: hub, repositories: [x], tags: {} }',
        '',
      ].join('\n'),
    );
    expect(got).toHaveLength(3);
    expect(got[0]).toMatch(/^mirrors\.sync\.0\.tags\.regex: not a regular expression/);
    expect(got[1]).toMatch(/^mirrors\.sync\.1\.tags\.semver: not a version range/);
    expect(got[2]).toBe(
      'mirrors.sync.2.tags: give glob, regex or semver (or leave tags out to copy every tag)',
    );
  });

  it('GIVEN a cron schedule that does not parse, one that never fires and one beside intervalSeconds WHEN parsed THEN each is named; a good one parses', () => {
    const got = problems(
      [
        '    - { name: a, upstream: hub, repositories: [x], schedule: "61 * * * *" }',
        '    - { name: b, upstream: hub, repositories: [x], schedule: "0 0 31 4 *" }',
        '    - { name: c, upstream: hub, repositories: [x], schedule: "@daily", intervalSeconds: 60 }',
        '    - { name: d, upstream: hub, repositories: [x], schedule: "30 2 * * mon-fri" }',
        '',
      ].join('\n'),
    );
    expect(got).toEqual([
      'mirrors.sync.0.schedule: minute: "61" is not between 0 and 59',
      'mirrors.sync.1.schedule: 0 0 31 4 * never fires',
      'mirrors.sync.2.schedule: set either schedule or intervalSeconds, not both',
    ]);
  });

  it('GIVEN two jobs with one name and one with no repositories WHEN parsed THEN both problems are named', () => {
    const got = problems(
      [
        '    - { name: a, upstream: hub, repositories: [x] }',
        '    - { name: a, upstream: hub, repositories: [] }',
        '',
      ].join('\n'),
    );
    expect(got).toEqual([
      'mirrors.sync.1.name: "a" is used twice',
      'mirrors.sync.1.repositories: name at least one repository',
    ]);
  });

  it('GIVEN a bad platform, an unknown key and a missing repositories WHEN parsed THEN the schema names each field', () => {
    const got = problems(
      [
        '    - { name: a, upstream: hub, repositories: [x], platforms: [amd64] }',
        '    - { name: b, upstream: hub, repositories: [x], interval: 60 }',
        '    - { name: c, upstream: hub }',
        '',
      ].join('\n'),
    );
    expect(got.some((p) => p.startsWith('mirrors.sync.0.platforms.0: must match'))).toBe(true);
    expect(got).toContain('mirrors.sync.1.interval: unknown key');
    expect(got).toContain('mirrors.sync.2.repositories: is required');
  });
});
