import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import { scratchDir } from '../support/scratch.js';
import { tool } from '../support/tools.js';

interface SuiteResult {
  apis: Record<string, string>;
  data: Record<string, string>;
  summary: string;
}

/**
 * runSuite runs the official distribution-spec conformance suite (the redesigned
 * suite of the spec's main branch, built from its Go module) against `registry`,
 * with every optional API and every data set switched on.
 */
async function runSuite(
  registry: string,
  version: 'dev' | '1.1',
  sparse: boolean,
): Promise<SuiteResult> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-conformance-'));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    OCI_REGISTRY: registry,
    OCI_TLS: 'disabled',
    OCI_VERSION: version,
    OCI_RESULTS_DIR: join(dir, 'results'),
    OCI_REPO1: 'conformance/repo1',
    OCI_REPO2: 'conformance/repo2',
    OCI_API_BLOBS_DIGEST_HEADER: 'true',
    OCI_API_BLOBS_UPLOAD_CANCEL: 'true',
    OCI_API_BLOBS_MOUNT_ANONYMOUS: 'true',
    OCI_API_MANIFESTS_DIGEST_HEADER: 'true',
    OCI_API_MANIFESTS_TAG_PARAM: 'true',
    OCI_API_REFERRER: 'true',
    OCI_DATA_SPARSE: String(sparse),
  };
  for (const d of [
    'IMAGE',
    'INDEX',
    'INDEX_LIST',
    'ARTIFACT',
    'SUBJECT',
    'SUBJECT_MISSING',
    'ARTIFACT_LIST',
    'SUBJECT_LIST',
    'DATA_FIELD',
    'NONDISTRIBUTABLE',
    'CUSTOM_FIELDS',
    'NO_LAYERS',
    'EMPTY_BLOB',
    'SHA512',
  ]) {
    env[`OCI_DATA_${d}`] = 'true';
  }
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(tool('oci-conformance'), [], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (b: Buffer) => (text += b.toString()));
    child.stderr.on('data', (b: Buffer) => (text += b.toString()));
    child.on('error', reject);
    child.on('exit', () => resolve(text));
  });
  try {
    const results = parse(
      readFileSync(join(dir, 'results', 'results.yaml'), 'utf8'),
    ) as SuiteResult;
    const summary = out
      .split('\n')
      .filter((l) => /^\s+(Disabled|Skip|Pass|FAIL)\.+:/.test(l))
      .join('\n');
    const failures = out
      .split('\n')
      .filter((l) => /: (Fail|FAIL|Error)/.test(l))
      .slice(0, 40)
      .join('\n');
    return {
      apis: results.apis,
      data: results.data,
      summary: summary + (failures ? `\nfailures:\n${failures}` : ''),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function expectAllPass(r: SuiteResult, except: string[] = []): void {
  const notPassed = Object.entries({ ...r.apis, ...r.data }).filter(
    ([k, v]) => v !== 'Pass' && !except.includes(k),
  );
  expect(notPassed, r.summary).toEqual([]);
  for (const k of except) expect(r.data[k] ?? r.apis[k], k).toBe('Disabled');
  expect(Object.keys(r.apis).length).toBeGreaterThan(20);
  expect(Object.keys(r.data).length).toBeGreaterThan(20);
}

function describeConformance(name: string, env: () => Promise<Record<string, string>>): void {
  describe(`OCI conformance on ${name}`, () => {
    let strict: BerthProcess;
    let sparse: BerthProcess;
    beforeAll(async () => {
      const base = await env();
      strict = await spawnBerth({ ...base, BERTH_HTTP_SECRET: 'conformance' });
      sparse = await spawnBerth({
        ...base,
        BERTH_HTTP_SECRET: 'conformance',
        BERTH_VALIDATION_ALLOW_SPARSE: 'true',
      });
    });
    afterAll(async () => {
      await strict?.kill();
      await sparse?.kill();
    });

    it('GIVEN the default (strict) server WHEN the dev suite runs every API and data set but sparse THEN all pass', async () => {
      expectAllPass(await runSuite(`127.0.0.1:${strict.port}`, 'dev', false), ['Sparse Manifests']);
    });

    it('GIVEN a server that allows sparse manifests WHEN the dev suite runs with every data set THEN all pass', async () => {
      expectAllPass(await runSuite(`127.0.0.1:${sparse.port}`, 'dev', true));
    });

    it('GIVEN the default server WHEN the suite runs with v1.1 defaults THEN all pass', async () => {
      const r = await runSuite(`127.0.0.1:${strict.port}`, '1.1', false);
      const disabled = Object.entries({ ...r.apis, ...r.data })
        .filter(([, v]) => v === 'Disabled')
        .map(([k]) => k);
      expectAllPass(r, disabled);
      expect(disabled.length).toBeLessThan(6);
    });
  });
}

describeConformance('filesystem', async () => ({
  BERTH_STORAGE_DRIVER: 'filesystem',
  BERTH_STORAGE_FILESYSTEM_ROOT: scratchDir('berth-conf-fs-'),
}));

let minio: MinioServer | undefined;
afterAll(async () => {
  await minio?.stop();
});
describeConformance('MinIO (s3)', async () => {
  minio = await startMinio();
  const cfg = minio.config('conformance');
  await S3Driver.ensureBucket(cfg);
  return {
    BERTH_STORAGE_DRIVER: 's3',
    BERTH_STORAGE_S3_ENDPOINT: cfg.endpoint,
    BERTH_STORAGE_S3_BUCKET: cfg.bucket,
    BERTH_STORAGE_S3_ACCESS_KEY: cfg.accessKey,
    BERTH_STORAGE_S3_SECRET_KEY: cfg.secretKey,
    BERTH_STORAGE_S3_REGION: cfg.region,
    BERTH_STORAGE_S3_PATH_STYLE: 'true',
  };
});
