import { describe, expect, it } from 'vitest';
import { ConfigError, defaults, envBindings, parseConfig } from '../../../server/config/load.js';

function problems(text: string, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseConfig(text, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('notifications and metrics config', () => {
  it('GIVEN endpoints in the file WHEN parsing THEN they come through with their fields and the section keeps its defaults', () => {
    const c = parseConfig(
      [
        'notifications:',
        '  includeReferences: true',
        '  endpoints:',
        '    - name: audit',
        '      url: https://hooks.example.com/registry',
        '      format: cloudevents-binary',
        '      secret: s3cret',
        '      headers: {Authorization: Bearer x}',
        '      maxAttempts: 5',
        '      ignore: {actions: [pull], repositories: ["tmp/**"]}',
        'metrics:',
        '  repositories: ["team/*"]',
      ].join('\n'),
      {},
    );
    expect(c.notifications).toEqual({
      ...defaults().notifications,
      includeReferences: true,
      endpoints: [
        {
          name: 'audit',
          url: 'https://hooks.example.com/registry',
          format: 'cloudevents-binary',
          secret: 's3cret',
          headers: { Authorization: 'Bearer x' },
          maxAttempts: 5,
          ignore: { actions: ['pull'], repositories: ['tmp/**'] },
        },
      ],
    });
    expect(c.metrics).toEqual({ ...defaults().metrics, repositories: ['team/*'] });
  });

  it('GIVEN a bad endpoint WHEN parsing THEN each problem names its path and the secret is not echoed', () => {
    const p = problems(
      [
        'notifications:',
        '  endpoints:',
        '    - name: Bad_Name',
        '      url: ftp://x',
        '      format: xml',
        '      secret: 42',
        '    - url: http://ok',
      ].join('\n'),
    );
    expect(p).toEqual(
      expect.arrayContaining([
        'notifications.endpoints.0.name: must be 1..63 lowercase letters, digits and hyphens, starting and ending with a letter or digit (got "Bad_Name")',
        'notifications.endpoints.0.url: must be an http(s) URL (got "ftp://x")',
        'notifications.endpoints.0.format: must be one of distribution, cloudevents-structured, cloudevents-binary (got "xml")',
        'notifications.endpoints.0.secret: must be a string',
        'notifications.endpoints.1.name: is required',
      ]),
    );
  });

  it('GIVEN the new scalar fields WHEN deriving environment variables THEN each has one, and lists have none', () => {
    const envs = envBindings().map((b) => b.env);
    for (const v of [
      'BERTH_NOTIFICATIONS_INCLUDE_REFERENCES',
      'BERTH_NOTIFICATIONS_PULL_FLUSH_MILLIS',
      'BERTH_NOTIFICATIONS_SETTLE_MILLIS',
      'BERTH_NOTIFICATIONS_POLL_MILLIS',
      'BERTH_NOTIFICATIONS_LEASE_SECONDS',
      'BERTH_METRICS_ENABLED',
      'BERTH_METRICS_PATH',
      'BERTH_METRICS_REPOSITORY_LIMIT',
    ])
      expect(envs).toContain(v);
    expect(
      envs.filter((e) => e.includes('ENDPOINTS') || e === 'BERTH_METRICS_REPOSITORIES'),
    ).toEqual([]);
    expect(parseConfig(undefined, { BERTH_METRICS_ENABLED: 'false' }).metrics.enabled).toBe(false);
    expect(problems('', { BERTH_NOTIFICATIONS_ENDPOINTS: 'x' })[0]).toMatch(
      /^BERTH_NOTIFICATIONS_ENDPOINTS: not a config field/,
    );
  });
});
