import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../server/config/load.js';

/**
 * fixtures/resolved.json holds what parseConfig returned for these inputs before the defaults
 * moved into the schema (ADR 0020); the resolved configs must not change.
 */
const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'resolved.json');

const S3 = `
storage:
  driver: s3
  s3:
    endpoint: http://minio:9000
    bucket: berth
    accessKey: berth-access
    secretKey: berth-secret-key
`;

const MIXED = `
http:
  tls: {certFile: /c.pem, keyFile: /k.pem}
storage:
  driver: s3
  filesystem: {root: /ignored}
  s3: {endpoint: "http://minio:9000", bucket: berth, accessKey: a, secretKey: b, tls: {caFile: /ca.pem}}
limits:
  rate: {requestsPerSecond: 5}
notifications:
  endpoints:
    - {name: audit, url: "https://hooks.example.com/x", ignore: {actions: [pull]}}
metrics:
  repositories: ["team/*"]
auth:
  mode: token
  htpasswd: {path: /h}
  token: {expiresSeconds: 600}
  groups: [{name: g, members: [u]}]
  rules: [{repositories: ["**"], users: ["*"], actions: [pull]}]
  admins: {users: [root]}
gc:
  policies: [{repositories: ["a/**"], keepTags: [{mostRecentlyPushed: 3}]}]
`;

const FS_WITH_S3 = `
storage:
  driver: filesystem
  s3: {region: eu-west-1}
`;

describe('resolved config', () => {
  it.each([
    ['empty', undefined, {}],
    ['s3Minimal', S3, {}],
    ['mixed', MIXED, {}],
    ['filesystemWithS3Section', FS_WITH_S3, {}],
    ['inmemory', undefined, { BERTH_STORAGE_DRIVER: 'inmemory' }],
  ] as const)(
    'GIVEN the %s input WHEN parsing THEN the result equals the recorded one',
    async (name, text, env) => {
      const want = (JSON.parse(await readFile(fixture, 'utf8')) as Record<string, unknown>)[name];
      expect(want).toBeDefined();
      expect(parseConfig(text, { ...env })).toEqual(want);
    },
  );
});
