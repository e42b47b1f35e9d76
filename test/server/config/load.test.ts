import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ConfigError,
  defaults,
  envBindings,
  envName,
  loadConfig,
  parseConfig,
} from '../../../server/config/load.js';
import { authDefaults } from '../../../server/config/auth.js';
import { gcDefaults } from '../../../server/config/gc.js';
import type { JsonSchema } from '../../../server/config/json-schema.js';
import { configSchema } from '../../../server/config/schema.js';
import type { BerthConfig, S3Config } from '../../../server/config/types.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** S3_FILE is a valid s3 config with only the required fields. */
const S3_FILE = `
storage:
  driver: s3
  s3:
    endpoint: http://minio:9000
    bucket: berth
    accessKey: berth-access
    secretKey: berth-secret-key
`;

/** s3Env is the environment equivalent of S3_FILE. */
const s3Env = (): NodeJS.ProcessEnv => ({
  BERTH_STORAGE_DRIVER: 's3',
  BERTH_STORAGE_S3_ENDPOINT: 'http://minio:9000',
  BERTH_STORAGE_S3_BUCKET: 'berth',
  BERTH_STORAGE_S3_ACCESS_KEY: 'berth-access',
  BERTH_STORAGE_S3_SECRET_KEY: 'berth-secret-key',
});

/** configError runs fn and returns the ConfigError it throws (failing if it throws none). */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, got none');
}

async function configErrorAsync(p: Promise<unknown>): Promise<ConfigError> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

function s3Of(c: BerthConfig): S3Config {
  if (c.storage.driver !== 's3') throw new Error(`driver is ${c.storage.driver}`);
  return c.storage.s3;
}

function get(obj: unknown, path: readonly string[]): unknown {
  let v = obj;
  for (const seg of path) v = (v as Record<string, unknown> | undefined)?.[seg];
  return v;
}

/** escape makes a JSON scalar (quotes dropped) a literal regular expression. */
function escape(json: string): string {
  return json.replace(/^"|"$/g, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function schemaAt(path: readonly string[]): JsonSchema | undefined {
  let s: JsonSchema | undefined = configSchema;
  for (const seg of path) s = s?.properties?.[seg];
  return s;
}

describe('configSchema', () => {
  it('GIVEN the schema WHEN ajv checks it as draft-07 in strict mode THEN it is valid', () => {
    const ajv = new Ajv({ strict: true, strictRequired: false });
    expect(ajv.validateSchema(configSchema)).toBe(true);
    expect(configSchema.$schema).toBe('http://json-schema.org/draft-07/schema#');
  });

  it('GIVEN the schema WHEN walking it THEN every object forbids additional properties and no property is required at the top', () => {
    const walk = (node: JsonSchema, at: string): void => {
      if (node.type === 'object' && node.properties) {
        expect(node.additionalProperties, at).toBe(false);
        expect(node.required, at).toBeUndefined();
      }
      for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, `${at}.${k}`);
    };
    walk(configSchema, '(root)');
  });

  it('GIVEN every schema default WHEN compared with defaults() and the s3 defaults THEN they agree', () => {
    const d = defaults();
    const s3 = parseConfig(S3_FILE, {});
    let checked = 0;
    for (const b of envBindings()) {
      const def = schemaAt(b.path)?.default;
      if (def === undefined) continue;
      const source = b.path[1] === 's3' ? s3 : d;
      expect(get(source, b.path), b.path.join('.')).toEqual(def);
      checked++;
    }
    expect(checked).toBe(58);
    expect(schemaAt(['storage'])?.default).toEqual(d.storage);
  });
});

describe('defaults', () => {
  it('GIVEN no file and no env WHEN parsing THEN the result is defaults()', () => {
    const c = parseConfig(undefined, {});
    expect(c).toEqual(defaults());
    expect(c).toEqual({
      http: { addr: '0.0.0.0:5000', workers: 1, shutdownTimeoutSeconds: 30 },
      storage: { driver: 'filesystem', filesystem: { root: './data' } },
      delete: { enabled: true },
      readOnly: false,
      cache: {
        ttlSeconds: 60,
        tagTtlSeconds: 0,
        tagsWhenAlone: true,
        peerListen: '',
        peerAdvertise: '',
        listTtlSeconds: 5,
        maxMiB: 32,
        blobDir: '',
        blobMaxGiB: 10,
      },
      uploads: { ttlSeconds: 43200, purgeIntervalSeconds: 600 },
      limits: {
        manifestBytes: 4194304,
        importBytes: 17179869184,
        maxListEntries: 1000,
        defaultListEntries: 100,
        maxTagsPerPush: 32,
        headerBytes: 16384,
        uploadSessionsPerClient: 1000,
        rate: { requestsPerSecond: 0, burst: 200 },
      },
      validation: { allowSparse: false },
      log: { level: 'info' },
      auth: authDefaults(),
      gc: gcDefaults(),
      mirrors: { upstreams: [], sync: [] },
      notifications: {
        includeReferences: false,
        pullFlushMillis: 1000,
        settleMillis: 1000,
        pollMillis: 500,
        leaseSeconds: 15,
        retentionHours: 168,
        endpoints: [],
      },
      metrics: { enabled: true, path: '/metrics', repositoryLimit: 100, repositories: [] },
      ui: { enabled: true, prefix: '/ui' },
    });
  });

  it.each([
    ['an empty file', ''],
    ['a comments-only file', '# nothing here\n'],
    ['an empty mapping', '{}\n'],
  ])('GIVEN %s WHEN parsing THEN the result is defaults()', (_, text) => {
    expect(parseConfig(text, {})).toEqual(defaults());
  });

  it('GIVEN a file setting one field of a section WHEN parsing THEN the section keeps its other defaults', () => {
    const c = parseConfig('http:\n  workers: 4\nlimits:\n  maxTagsPerPush: 8\n', {});
    expect(c.http).toEqual({ addr: '0.0.0.0:5000', workers: 4, shutdownTimeoutSeconds: 30 });
    expect(c.limits.maxTagsPerPush).toBe(8);
    expect(c.limits.manifestBytes).toBe(4194304);
  });

  it('GIVEN a storage section with only filesystem.root WHEN parsing THEN the driver defaults to filesystem', () => {
    const c = parseConfig('storage:\n  filesystem:\n    root: /var/lib/berth\n', {});
    expect(c.storage).toEqual({ driver: 'filesystem', filesystem: { root: '/var/lib/berth' } });
  });

  it('GIVEN a config from defaults() WHEN it is mutated THEN later defaults() and parses are unaffected', () => {
    const a = defaults();
    a.http.workers = 99;
    a.limits.maxListEntries = 1;
    expect(defaults().http.workers).toBe(1);
    const b = parseConfig(undefined, {});
    b.log.level = 'error';
    expect(parseConfig(undefined, {}).log.level).toBe('info');
    expect(defaults().limits.maxListEntries).toBe(1000);
  });
});

describe('s3 storage', () => {
  it('GIVEN a file setting every s3 field WHEN parsing THEN they all come through typed', () => {
    const text = `
http:
  addr: 127.0.0.1:5001
  secret: a-long-shared-secret
  workers: 0
  debugAddr: 127.0.0.1:5002
  shutdownTimeoutSeconds: 10
storage:
  driver: s3
  s3:
    endpoint: https://s3.example.com:9000
    bucket: my.registry-bucket
    region: eu-west-1
    accessKey: AKIAEXAMPLE
    secretKey: s3cr3t/key+value
    pathStyle: false
    prefix: team/registry
    partSizeMiB: 64
    bufferMiB: 256
    redirect: true
    tls:
      caFile: /etc/ssl/minio-ca.pem
      insecureSkipVerify: false
delete:
  enabled: false
readOnly: true
uploads:
  ttlSeconds: 3600
  purgeIntervalSeconds: 0
limits:
  manifestBytes: 8388608
  maxListEntries: 500
  defaultListEntries: 50
  maxTagsPerPush: 4
validation:
  allowSparse: true
log:
  level: debug
`;
    expect(parseConfig(text, {})).toEqual({
      http: {
        addr: '127.0.0.1:5001',
        secret: 'a-long-shared-secret',
        workers: 0,
        debugAddr: '127.0.0.1:5002',
        shutdownTimeoutSeconds: 10,
      },
      storage: {
        driver: 's3',
        s3: {
          endpoint: 'https://s3.example.com:9000',
          bucket: 'my.registry-bucket',
          region: 'eu-west-1',
          accessKey: 'AKIAEXAMPLE',
          secretKey: 's3cr3t/key+value',
          pathStyle: false,
          prefix: 'team/registry',
          partSizeMiB: 64,
          bufferMiB: 256,
          redirect: true,
          tls: { caFile: '/etc/ssl/minio-ca.pem', insecureSkipVerify: false },
        },
      },
      delete: { enabled: false },
      readOnly: true,
      uploads: { ttlSeconds: 3600, purgeIntervalSeconds: 0 },
      limits: {
        manifestBytes: 8388608,
        importBytes: 17179869184,
        maxListEntries: 500,
        defaultListEntries: 50,
        maxTagsPerPush: 4,
        headerBytes: 16384,
        uploadSessionsPerClient: 1000,
        rate: { requestsPerSecond: 0, burst: 200 },
      },
      validation: { allowSparse: true },
      log: { level: 'debug' },
      auth: authDefaults(),
      gc: gcDefaults(),
      mirrors: { upstreams: [], sync: [] },
      notifications: defaults().notifications,
      metrics: defaults().metrics,
      cache: defaults().cache,
      ui: defaults().ui,
    } satisfies BerthConfig);
  });

  it('GIVEN an s3 file with only the required fields WHEN parsing THEN the s3 defaults fill the rest', () => {
    expect(s3Of(parseConfig(S3_FILE, {}))).toEqual({
      endpoint: 'http://minio:9000',
      bucket: 'berth',
      accessKey: 'berth-access',
      secretKey: 'berth-secret-key',
      region: 'us-east-1',
      pathStyle: true,
      partSizeMiB: 16,
      bufferMiB: 64,
      redirect: false,
    });
  });

  it('GIVEN driver s3 and an s3 section missing every required field WHEN parsing THEN each is named as required', () => {
    const e = configError(() => parseConfig('storage:\n  driver: s3\n  s3:\n    region: x\n', {}));
    for (const f of ['endpoint', 'bucket', 'accessKey', 'secretKey'])
      expect(e.message).toContain(`storage.s3.${f}: is required when storage.driver is s3`);
    expect(e.problems).toHaveLength(4);
  });

  it('GIVEN driver s3 and no s3 section WHEN parsing THEN storage.s3 is named as required', () => {
    const e = configError(() => parseConfig('storage:\n  driver: s3\n', {}));
    expect(e.message).toBe('config: storage.s3: is required when storage.driver is s3');
  });

  it('GIVEN driver s3 with only the bucket missing WHEN parsing THEN exactly that field is named', () => {
    const text = S3_FILE.replace(/^ {4}bucket: .*\n/m, '');
    const e = configError(() => parseConfig(text, {}));
    expect(e.message).toBe('config: storage.s3.bucket: is required when storage.driver is s3');
  });

  it('GIVEN driver filesystem and an s3 section WHEN parsing THEN the s3 section is checked but not returned', () => {
    const text = S3_FILE.replace('driver: s3', 'driver: filesystem');
    expect(parseConfig(text, {}).storage).toEqual(defaults().storage);
    const bad = text.replace('partSizeMiB', 'x').replace('bucket: berth', 'bucket: B');
    expect(configError(() => parseConfig(bad, {})).message).toContain('storage.s3.bucket:');
  });

  it('GIVEN driver filesystem and an s3 section without credentials WHEN parsing THEN nothing is required', () => {
    const c = parseConfig('storage:\n  s3:\n    bucket: berth\n', {});
    expect(c.storage.driver).toBe('filesystem');
  });

  it('GIVEN driver inmemory WHEN parsing THEN storage has only the driver', () => {
    expect(parseConfig('storage:\n  driver: inmemory\n', {}).storage).toEqual({
      driver: 'inmemory',
    });
  });
});

describe('environment overrides', () => {
  it.each([
    [['http', 'addr'], 'BERTH_HTTP_ADDR'],
    [['http', 'secret'], 'BERTH_HTTP_SECRET'],
    [['storage', 'driver'], 'BERTH_STORAGE_DRIVER'],
    [['storage', 'filesystem', 'root'], 'BERTH_STORAGE_FILESYSTEM_ROOT'],
    [['storage', 's3', 'accessKey'], 'BERTH_STORAGE_S3_ACCESS_KEY'],
    [['storage', 's3', 'partSizeMiB'], 'BERTH_STORAGE_S3_PART_SIZE_MIB'],
    [['storage', 's3', 'tls', 'insecureSkipVerify'], 'BERTH_STORAGE_S3_TLS_INSECURE_SKIP_VERIFY'],
    [['http', 'shutdownTimeoutSeconds'], 'BERTH_HTTP_SHUTDOWN_TIMEOUT_SECONDS'],
    [['delete', 'enabled'], 'BERTH_DELETE_ENABLED'],
    [['readOnly'], 'BERTH_READ_ONLY'],
  ])('GIVEN the path %j WHEN naming its variable THEN it is %s', (path, env) => {
    expect(envName(path)).toBe(env);
    expect(envBindings().find((b) => b.env === env)?.path).toEqual(path);
  });

  it('GIVEN the schema WHEN deriving bindings THEN there is one unique variable per leaf field', () => {
    const names = envBindings().map((b) => b.env);
    expect(names).toHaveLength(75);
    expect(new Set(names).size).toBe(names.length);
    expect(names).not.toContain('BERTH_CONFIG');
    expect(names).not.toContain('BERTH_TOOLS');
  });

  it('GIVEN string variables WHEN parsing THEN they set their fields', () => {
    const c = parseConfig(undefined, {
      BERTH_HTTP_ADDR: '127.0.0.1:8080',
      BERTH_HTTP_SECRET: 'from-env',
      BERTH_HTTP_DEBUG_ADDR: '[::1]:9090',
      BERTH_STORAGE_FILESYSTEM_ROOT: '/srv/berth',
      BERTH_LOG_LEVEL: 'warn',
    });
    expect(c.http.addr).toBe('127.0.0.1:8080');
    expect(c.http.secret).toBe('from-env');
    expect(c.http.debugAddr).toBe('[::1]:9090');
    expect(c.storage).toEqual({ driver: 'filesystem', filesystem: { root: '/srv/berth' } });
    expect(c.log.level).toBe('warn');
  });

  it('GIVEN integer variables WHEN parsing THEN they become numbers', () => {
    const c = parseConfig(undefined, {
      ...s3Env(),
      BERTH_STORAGE_S3_PART_SIZE_MIB: '64',
      BERTH_HTTP_WORKERS: '0',
      BERTH_UPLOADS_TTL_SECONDS: ' 3600 ',
      BERTH_LIMITS_MAX_LIST_ENTRIES: '+2000',
    });
    expect(s3Of(c).partSizeMiB).toBe(64);
    expect(c.http.workers).toBe(0);
    expect(c.uploads.ttlSeconds).toBe(3600);
    expect(c.limits.maxListEntries).toBe(2000);
  });

  it.each([
    ['true', true],
    ['TRUE', true],
    ['1', true],
    ['false', false],
    ['False', false],
    ['0', false],
  ])('GIVEN boolean variables set to %s WHEN parsing THEN the fields are %s', (raw, want) => {
    const c = parseConfig(undefined, {
      ...s3Env(),
      BERTH_READ_ONLY: raw,
      BERTH_DELETE_ENABLED: raw,
      BERTH_STORAGE_S3_PATH_STYLE: raw,
      BERTH_STORAGE_S3_REDIRECT: raw,
      BERTH_STORAGE_S3_TLS_INSECURE_SKIP_VERIFY: raw,
      BERTH_VALIDATION_ALLOW_SPARSE: raw,
    });
    expect(c.readOnly).toBe(want);
    expect(c.delete.enabled).toBe(want);
    expect(s3Of(c).pathStyle).toBe(want);
    expect(s3Of(c).redirect).toBe(want);
    expect(s3Of(c).tls).toEqual({ insecureSkipVerify: want });
    expect(c.validation.allowSparse).toBe(want);
  });

  it('GIVEN BERTH_STORAGE_DRIVER=s3 and the s3 variables WHEN parsing with no file THEN the s3 config is complete', () => {
    expect(parseConfig(undefined, s3Env())).toEqual(parseConfig(S3_FILE, {}));
  });

  it('GIVEN BERTH_STORAGE_DRIVER=inmemory over a filesystem file WHEN parsing THEN the driver switches', () => {
    const c = parseConfig('storage:\n  filesystem:\n    root: /x\n', {
      BERTH_STORAGE_DRIVER: 'inmemory',
    });
    expect(c.storage).toEqual({ driver: 'inmemory' });
  });

  it('GIVEN a file and a variable for the same field WHEN parsing THEN the variable wins and siblings stay', () => {
    const text = S3_FILE + '    partSizeMiB: 32\n    region: eu-central-1\n';
    const c = parseConfig(text, {
      BERTH_STORAGE_S3_PART_SIZE_MIB: '128',
      BERTH_STORAGE_S3_SECRET_KEY: 'rotated',
    });
    expect(s3Of(c)).toMatchObject({
      partSizeMiB: 128,
      secretKey: 'rotated',
      region: 'eu-central-1',
      accessKey: 'berth-access',
    });
  });

  it('GIVEN BERTH_CONFIG, BERTH_TOOLS, non-BERTH and empty BERTH_ variables WHEN parsing THEN they are ignored', () => {
    const c = parseConfig(undefined, {
      BERTH_CONFIG: '/etc/berth.yaml',
      BERTH_TOOLS: '/tmp/tools',
      HOME: '/root',
      berth_http_addr: 'lower-case-is-not-ours',
      BERTH_HTTP_WORKERS: '',
      BERTH_READ_ONLY: '',
    });
    expect(c).toEqual(defaults());
  });

  it('GIVEN a BERTH_ variable that maps to no field WHEN parsing THEN the error names it', () => {
    const e = configError(() => parseConfig(undefined, { BERTH_STORAGE_S3_BUKET: 'x' }));
    expect(e.message).toBe(
      'config: BERTH_STORAGE_S3_BUKET: not a config field (did you mean BERTH_STORAGE_S3_BUCKET?)',
    );
    const e2 = configError(() => parseConfig(undefined, { BERTH_HTTP: '1' }));
    expect(e2.message).toContain('BERTH_HTTP: not a config field');
  });

  it.each(['4x', '1.5', '1e3', 'four', '0x10', '99999999999999999999'])(
    'GIVEN BERTH_HTTP_WORKERS=%s WHEN parsing THEN the error names the variable',
    (raw) => {
      const e = configError(() => parseConfig(undefined, { BERTH_HTTP_WORKERS: raw }));
      expect(e.message).toBe(`config: BERTH_HTTP_WORKERS: must be an integer (got "${raw}")`);
    },
  );

  it.each(['yes', 'on', '2'])(
    'GIVEN BERTH_READ_ONLY=%s WHEN parsing THEN the error names the variable',
    (raw) => {
      const e = configError(() => parseConfig(undefined, { BERTH_READ_ONLY: raw }));
      expect(e.message).toBe(`config: BERTH_READ_ONLY: must be true, false, 1 or 0 (got "${raw}")`);
    },
  );

  it('GIVEN a variable whose value breaks a schema rule WHEN parsing THEN the error names the field and the variable', () => {
    const e = configError(() =>
      parseConfig(undefined, { ...s3Env(), BERTH_STORAGE_S3_PART_SIZE_MIB: '2' }),
    );
    expect(e.message).toBe(
      'config: storage.s3.partSizeMiB: must be >= 5 (got 2) (from BERTH_STORAGE_S3_PART_SIZE_MIB)',
    );
    const e2 = configError(() => parseConfig(undefined, { BERTH_STORAGE_DRIVER: 'gcs' }));
    expect(e2.message).toBe(
      'config: storage.driver: must be one of filesystem, s3, inmemory (got "gcs") (from BERTH_STORAGE_DRIVER)',
    );
  });

  it('GIVEN a variable under a section the file sets to a scalar WHEN parsing THEN the file error is reported', () => {
    const e = configError(() => parseConfig('http: 5000\n', { BERTH_HTTP_ADDR: '0.0.0.0:1' }));
    expect(e.message).toBe('config: http: must be a mapping (got 5000)');
  });
});

describe('bad values', () => {
  it('GIVEN partSizeMiB 2 WHEN parsing THEN the error names the field, the bound and the value', () => {
    const e = configError(() => parseConfig(S3_FILE + '    partSizeMiB: 2\n', {}));
    expect(e.message).toBe('config: storage.s3.partSizeMiB: must be >= 5 (got 2)');
    expect(e.name).toBe('ConfigError');
    expect(e).toBeInstanceOf(Error);
  });

  it('GIVEN a metrics allow-list glob with a character no repository name has WHEN parsing THEN the error names the field (one glob dialect for every rule)', () => {
    const e = configError(() => parseConfig('metrics:\n  repositories: ["team/[ab]"]\n', {}));
    expect(e.message).toBe(
      'config: metrics.repositories.0: must match ^[A-Za-z0-9._/*?-]{1,255}$ (got "team/[ab]")',
    );
  });

  it('GIVEN partSizeMiB 6000 WHEN parsing THEN the upper bound is named', () => {
    const e = configError(() => parseConfig(S3_FILE + '    partSizeMiB: 6000\n', {}));
    expect(e.message).toBe('config: storage.s3.partSizeMiB: must be <= 5120 (got 6000)');
  });

  it.each(['My_Bucket', 'UPPER', '-abc', 'abc-', 'abc.', 'a..b', 'ab', 'a'.repeat(64), 'a b c'])(
    'GIVEN bucket %j WHEN parsing THEN the error names storage.s3.bucket',
    (bucket) => {
      const e = configError(() =>
        parseConfig(S3_FILE.replace('bucket: berth', `bucket: "${bucket}"`), {}),
      );
      expect(e.problems).toHaveLength(1);
      expect(e.message).toMatch(/^config: storage\.s3\.bucket: must be /);
    },
  );

  it.each(['abc', 'my.bucket-1', '123', 'a'.repeat(63)])(
    'GIVEN bucket %j WHEN parsing THEN it is accepted',
    (bucket) => {
      const c = parseConfig(S3_FILE.replace('bucket: berth', `bucket: "${bucket}"`), {});
      expect(s3Of(c).bucket).toBe(bucket);
    },
  );

  it.each([
    'foo',
    '0.0.0.0',
    ':5000',
    '0.0.0.0:',
    'host:70000',
    'host:05000',
    '0.0.0.0:5000x',
    'http://h:1',
  ])('GIVEN http.addr %j WHEN parsing THEN the error names http.addr', (addr) => {
    const e = configError(() => parseConfig(`http:\n  addr: "${addr}"\n`, {}));
    expect(e.message).toBe(
      `config: http.addr: must be host:port, e.g. 0.0.0.0:5000 (got "${addr}")`,
    );
  });

  it.each(['localhost:5000', '127.0.0.1:0', '[::]:5000', 'registry.example.com:65535'])(
    'GIVEN http.addr %j WHEN parsing THEN it is accepted',
    (addr) => {
      expect(parseConfig(`http:\n  addr: "${addr}"\n`, {}).http.addr).toBe(addr);
    },
  );

  it.each(['minio:9000', 'ftp://minio', 'http://minio:9000/bucket', 'http://', 'https://a b'])(
    'GIVEN s3.endpoint %j WHEN parsing THEN the error names storage.s3.endpoint',
    (endpoint) => {
      const text = S3_FILE.replace('endpoint: http://minio:9000', `endpoint: "${endpoint}"`);
      const e = configError(() => parseConfig(text, {}));
      expect(e.message).toMatch(/^config: storage\.s3\.endpoint: must be an http\(s\) URL/);
    },
  );

  it.each(['https://s3.amazonaws.com', 'http://10.0.0.5:9000/', 'http://[::1]:9000'])(
    'GIVEN s3.endpoint %j WHEN parsing THEN it is accepted',
    (endpoint) => {
      const text = S3_FILE.replace('endpoint: http://minio:9000', `endpoint: "${endpoint}"`);
      expect(s3Of(parseConfig(text, {})).endpoint).toBe(endpoint);
    },
  );

  it.each(['/lead', 'trail/'])('GIVEN s3.prefix %j WHEN parsing THEN it is rejected', (prefix) => {
    const e = configError(() => parseConfig(S3_FILE + `    prefix: "${prefix}"\n`, {}));
    expect(e.message).toBe(
      `config: storage.s3.prefix: must not start or end with "/" (got "${prefix}")`,
    );
  });

  it('GIVEN an unknown top-level key WHEN parsing THEN the error names the key', () => {
    const e = configError(() => parseConfig('listen: 0.0.0.0:5000\n', {}));
    expect(e.message).toBe('config: listen: unknown key');
  });

  it('GIVEN a misspelt nested key WHEN parsing THEN the error names its path and suggests the field', () => {
    const e = configError(() => parseConfig(S3_FILE + '    partsizemib: 8\n', {}));
    expect(e.message).toBe(
      'config: storage.s3.partsizemib: unknown key (did you mean partSizeMiB?)',
    );
    const e2 = configError(() => parseConfig('http:\n  adr: 0.0.0.0:1\n', {}));
    expect(e2.message).toBe('config: http.adr: unknown key (did you mean addr?)');
  });

  it.each([
    ['http:\n  workers: "4"\n', 'http.workers: must be an integer (got "4")'],
    ['http:\n  workers: 1.5\n', 'http.workers: must be an integer (got 1.5)'],
    ['http:\n  workers: 300\n', 'http.workers: must be <= 256 (got 300)'],
    ['http:\n  workers: -1\n', 'http.workers: must be >= 0 (got -1)'],
    ['readOnly: yes\n', 'readOnly: must be true or false (got "yes")'],
    ['http:\n  secret:\n', 'http.secret: must be a string'],
    [
      'log:\n  level: verbose\n',
      'log.level: must be one of debug, info, warn, error (got "verbose")',
    ],
    ['uploads:\n  ttlSeconds: 86400\n', 'uploads.ttlSeconds: must be <= 86399 (got 86400)'],
    ['uploads:\n  ttlSeconds: 59\n', 'uploads.ttlSeconds: must be >= 60 (got 59)'],
    [
      'limits:\n  manifestBytes: 33554433\n',
      'limits.manifestBytes: must be <= 33554432 (got 33554433)',
    ],
    ['limits:\n  maxListEntries: 0\n', 'limits.maxListEntries: must be >= 1 (got 0)'],
    ['limits:\n  maxListEntries: 10001\n', 'limits.maxListEntries: must be <= 10000 (got 10001)'],
    [
      'storage:\n  driver: gcs\n',
      'storage.driver: must be one of filesystem, s3, inmemory (got "gcs")',
    ],
    ['storage: s3\n', 'storage: must be a mapping (got "s3")'],
    ['delete: [true]\n', 'delete: must be a mapping (got a list)'],
    [
      'storage:\n  filesystem:\n    root: ""\n',
      'storage.filesystem.root: must be at least 1 characters long (got "")',
    ],
  ])('GIVEN %j WHEN parsing THEN the error is %j', (text, want) => {
    expect(configError(() => parseConfig(text, {})).message).toBe(`config: ${want}`);
  });

  it('GIVEN defaultListEntries above maxListEntries WHEN parsing THEN both fields are named', () => {
    const e = configError(() =>
      parseConfig('limits:\n  maxListEntries: 50\n  defaultListEntries: 100\n', {}),
    );
    expect(e.message).toBe(
      'config: limits.defaultListEntries: must be <= limits.maxListEntries (got 100 > 50)',
    );
  });

  it('GIVEN a wrongly typed secret WHEN parsing THEN its value is not echoed', () => {
    const e = configError(() =>
      parseConfig(S3_FILE.replace('secretKey: berth-secret-key', 'secretKey: 123456789'), {}),
    );
    expect(e.message).toBe('config: storage.s3.secretKey: must be a string');
    expect(e.message).not.toContain('123456789');
  });

  it('GIVEN a YAML syntax error WHEN parsing THEN the error gives the line number', () => {
    const text = 'http:\n  addr: 0.0.0.0:5000\nstorage: [filesystem,\n';
    const e = configError(() => parseConfig(text, {}));
    expect(e.message).toMatch(/^config: berth\.yaml: YAML syntax error at line \d+, column \d+: /);
    expect(e.message).not.toContain('\n');
    const e2 = configError(() => parseConfig('log:\n\tlevel: info\n', {}, 'my.yaml'));
    expect(e2.message).toBe(
      'config: my.yaml: YAML syntax error at line 2, column 1: Tabs are not allowed as indentation',
    );
  });

  it('GIVEN a duplicated key WHEN parsing THEN the error gives its line', () => {
    const e = configError(() => parseConfig('readOnly: true\nlog: {}\nreadOnly: false\n', {}));
    expect(e.message).toMatch(
      /^config: berth\.yaml: YAML syntax error at line 3, column 1: Map keys must be unique/,
    );
  });

  it.each([
    ['- a\n- b\n', 'a list'],
    ['just a string\n', '"just a string"'],
  ])(
    'GIVEN a top level that is not a mapping (%j) WHEN parsing THEN the error says so',
    (text, got) => {
      const e = configError(() => parseConfig(text, {}));
      expect(e.message).toBe(`config: berth.yaml: the top level must be a mapping (got ${got})`);
    },
  );

  it('GIVEN several problems in file and env WHEN parsing THEN one message lists the first five joined with "; "', () => {
    const text = `
http:
  addr: nope
  workers: 1000
storage:
  driver: s3
  s3:
    partSizeMiB: 2
    bucket: Bad_Bucket
log:
  level: loud
extra: 1
`;
    const e = configError(() => parseConfig(text, { BERTH_NOPE: '1' }));
    // Env problems first, then by schema order; unknown keys lead their section.
    expect(e.problems).toEqual([
      'BERTH_NOPE: not a config field',
      'extra: unknown key',
      'http.addr: must be host:port, e.g. 0.0.0.0:5000 (got "nope")',
      'http.workers: must be <= 256 (got 1000)',
      'storage.s3.endpoint: is required when storage.driver is s3',
      expect.stringMatching(
        /^storage\.s3\.bucket: must be an S3 bucket name.*\(got "Bad_Bucket"\)$/,
      ),
      'storage.s3.accessKey: is required when storage.driver is s3',
      'storage.s3.secretKey: is required when storage.driver is s3',
      'storage.s3.partSizeMiB: must be >= 5 (got 2)',
      'log.level: must be one of debug, info, warn, error (got "loud")',
    ]);
    expect(e.message).toBe(`config: ${e.problems.slice(0, 5).join('; ')}; and 5 more`);
  });
});

describe('loadConfig', () => {
  let dir: string;
  let cwd: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-config-'));
    cwd = process.cwd();
  });
  afterEach(async () => {
    process.chdir(cwd);
    await rm(dir, { recursive: true, force: true });
  });

  it('GIVEN an explicit file WHEN loading THEN it is read and env applies on top', async () => {
    const file = join(dir, 'custom.yaml');
    await writeFile(file, S3_FILE);
    const c = await loadConfig({ file, env: { BERTH_STORAGE_S3_REGION: 'eu-north-1' } });
    expect(s3Of(c)).toMatchObject({ bucket: 'berth', region: 'eu-north-1' });
  });

  it('GIVEN an explicit file that does not exist WHEN loading THEN the error names the path', async () => {
    const file = join(dir, 'missing.yaml');
    const e = await configErrorAsync(loadConfig({ file, env: {} }));
    expect(e.message).toBe(`config: ${file}: file not found`);
  });

  it('GIVEN BERTH_CONFIG WHEN loading without a file option THEN that file is read', async () => {
    const file = join(dir, 'from-env.yaml');
    await writeFile(file, 'log:\n  level: error\n');
    const c = await loadConfig({ env: { BERTH_CONFIG: file } });
    expect(c.log.level).toBe('error');
  });

  it('GIVEN BERTH_CONFIG naming a missing file WHEN loading THEN the error names the path and the variable', async () => {
    const file = join(dir, 'nope.yaml');
    const e = await configErrorAsync(loadConfig({ env: { BERTH_CONFIG: file } }));
    expect(e.message).toBe(`config: ${file}: file not found (from BERTH_CONFIG)`);
  });

  it('GIVEN both a file option and BERTH_CONFIG WHEN loading THEN the file option wins', async () => {
    const file = join(dir, 'opt.yaml');
    await writeFile(file, 'readOnly: true\n');
    const c = await loadConfig({ file, env: { BERTH_CONFIG: join(dir, 'ignored.yaml') } });
    expect(c.readOnly).toBe(true);
  });

  it('GIVEN ./berth.yaml in the working directory WHEN loading with no file named THEN it is read', async () => {
    await writeFile(join(dir, 'berth.yaml'), 'http:\n  workers: 3\n');
    process.chdir(dir);
    const c = await loadConfig({ env: {} });
    expect(c.http.workers).toBe(3);
  });

  it('GIVEN no file named and no ./berth.yaml WHEN loading THEN defaults and env apply', async () => {
    process.chdir(dir);
    expect(await loadConfig({ env: {} })).toEqual(defaults());
    const c = await loadConfig({ env: { BERTH_READ_ONLY: '1' } });
    expect(c.readOnly).toBe(true);
  });

  it('GIVEN a directory as the file WHEN loading THEN the error names the path', async () => {
    const sub = join(dir, 'conf.d');
    await mkdir(sub);
    const e = await configErrorAsync(loadConfig({ file: sub, env: {} }));
    expect(e.message).toBe(`config: ${sub}: cannot read: is a directory`);
  });

  it('GIVEN a file with a YAML error WHEN loading THEN the error names the file and line', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'http:\n  addr: [\n');
    const e = await configErrorAsync(loadConfig({ file, env: {} }));
    expect(e.message).toContain(`config: ${file}: YAML syntax error at line `);
  });
});

describe('berth.example.yaml and docs/configuration.md', () => {
  const commented = new Set(envBindings().flatMap((b) => b.path));

  it('GIVEN the example file as shipped WHEN parsing THEN it is valid and equals the defaults', async () => {
    const text = await readFile(join(repoRoot, 'berth.example.yaml'), 'utf8');
    expect(parseConfig(text, {})).toEqual(defaults());
  });

  it('GIVEN the example with its commented-out settings enabled and driver s3 WHEN parsing THEN every field is set', async () => {
    const text = (await readFile(join(repoRoot, 'berth.example.yaml'), 'utf8'))
      .split('\n')
      .map((line) => {
        const m = /^(\s*)# (\s*)([A-Za-z]+):/.exec(line);
        return m && commented.has(m[3]!) ? line.replace('# ', '') : line;
      })
      .join('\n')
      .replace('driver: filesystem', 'driver: s3');
    const c = parseConfig(text, {});
    for (const b of envBindings()) {
      if (b.path[1] === 'filesystem') continue; // not used with driver s3
      expect(get(c, b.path), b.path.join('.')).toBeDefined();
    }
    for (const b of envBindings())
      expect(text, `example mentions ${b.env}`).toContain(`env: ${b.env}\n`);
  });

  it('GIVEN the docs table WHEN compared with the schema THEN every field, variable and default agrees', async () => {
    const md = await readFile(join(repoRoot, 'docs', 'configuration.md'), 'utf8');
    // Table rows, split on pipes that are not escaped as \|.
    const rows = md
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) =>
        l
          .slice(1, -1)
          .split(/(?<!\\)\|/)
          .map((c) => c.trim()),
      )
      .map(([path = '', env = '', , def = '']) => [path.slice(1, -1), env.slice(1, -1), def]);
    const bindings = envBindings();
    expect(rows.map((r) => r[0])).toEqual(bindings.map((b) => b.path.join('.')));
    for (const [path = '', env, def] of rows) {
      const b = bindings.find((x) => x.path.join('.') === path)!;
      expect(env).toBe(b.env);
      const want = schemaAt(b.path)?.default;
      if (want === undefined) expect(def, path).toMatch(/^_\(/);
      else if (want === '') expect(def, path).toMatch(/^`""`/);
      else expect(def, path).toMatch(new RegExp(`^\`${escape(JSON.stringify(want))}\``));
    }
  });
});
