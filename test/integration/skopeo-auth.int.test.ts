import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { AuthConfig } from '../../server/config/types.js';
import { authConfig } from '../support/auth.js';
import { OciLayoutBuilder, readLayout, type OciLayout } from '../support/oci-layout.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import { startTestRegistry, type TestRegistry } from '../support/server.js';
import { selfSignedCert } from '../support/tls.js';
import { tool } from '../support/tools.js';
import { scratchDir } from '../support/scratch.js';

const SKOPEO = tool('skopeo');

/** skopeo runs one command; returns its exit status and output (never throws). */
function skopeo(...args: string[]): { status: number | null; out: string } {
  const r = spawnSync(SKOPEO, ['--insecure-policy', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: r.status, out: `${r.stderr}\n${r.stdout}` };
}

/**
 * skopeoAsync runs skopeo without blocking the event loop, for registries served in-process.
 */
function skopeoAsync(...args: string[]): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(SKOPEO, ['--insecure-policy', ...args], { timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({
        status: err ? ((err as { code?: number }).code ?? 1) : 0,
        out: `${stderr}\n${stdout}`,
      }),
    );
  });
}

function ok(r: { status: number | null; out: string }): void {
  expect(r.status, r.out).toBe(0);
}

function policy(mode: 'htpasswd' | 'token'): AuthConfig {
  return authConfig(mode, 6)
    .user('alice', 'alice-pw')
    .user('bob', 'bob-pw')
    .user('robot$ci', 'ci-pw')
    .rule({
      users: ['alice'],
      repositories: ['team/**', 'public/**'],
      actions: ['pull', 'push', 'delete'],
    })
    .rule({ users: ['bob'], repositories: ['team/**'], actions: ['pull'] })
    .rule({ robots: ['ci'], repositories: ['ci/**'], actions: ['pull', 'push'] })
    .anonymous('public/**')
    .build();
}

let work: string;
let layout: OciLayout;
beforeAll(() => {
  work = scratchDir('berth-skopeo-auth-');
  layout = new OciLayoutBuilder(join(work, 'src'))
    .image('app', {
      platform: { os: 'linux', architecture: 'amd64' },
      files: { 'etc/motd': 'hi\n' },
      ref: 'v1',
    })
    .write();
});

describe.each([
  ['none', 'none', 1],
  ['htpasswd', 'htpasswd', 1],
  ['token', 'token', 1],
  // Workers share one generated signing key: a token from one worker is valid at the others.
  ['token with 3 workers', 'token', 3],
] as const)('skopeo with auth mode %s', (label, mode, workers) => {
  const tag = label.replace(/ /g, '-');
  let berth: BerthProcess;
  let host: string;
  let authfile: string;
  let tmp: string;
  beforeAll(async () => {
    const file = join(work, `berth-${tag}.yaml`);
    writeFileSync(
      file,
      stringify({
        storage: { driver: 'filesystem', filesystem: { root: join(work, `data-${tag}`) } },
        ...(mode !== 'none' && { auth: policy(mode) }),
      }),
    );
    tmp = scratchDir(`berth-skopeo-tmp-${tag}-`);
    berth = await spawnBerth({
      BERTH_CONFIG: file,
      BERTH_HTTP_WORKERS: String(workers),
      TMPDIR: tmp,
    });
    host = `127.0.0.1:${berth.port}`;
    authfile = join(work, `auth-${tag}.json`);
    writeFileSync(authfile, '{}');
  });
  afterAll(async () => berth?.kill());

  const tls = ['--tls-verify=false'];
  const dest = ['--dest-tls-verify=false', '--dest-authfile'];
  const src = ['--src-tls-verify=false', '--src-authfile'];

  it('GIVEN valid credentials WHEN skopeo logs in, pushes and pulls back THEN the image round-trips byte-exact', () => {
    if (mode !== 'none')
      ok(skopeo('login', ...tls, '--authfile', authfile, '-u', 'alice', '-p', 'alice-pw', host));
    ok(
      skopeo(
        'copy',
        '--preserve-digests',
        ...dest,
        authfile,
        `oci:${layout.dir}:v1`,
        `docker://${host}/team/app:v1`,
      ),
    );
    const back = join(work, `back-${tag}`);
    ok(
      skopeo(
        'copy',
        '--preserve-digests',
        ...src,
        authfile,
        `docker://${host}/team/app:v1`,
        `oci:${back}:v1`,
      ),
    );
    expect(readLayout(back).index.manifests[0]!.digest).toBe(layout.get('app').digest);
  });

  // Logins and refusals only exist with auth on: these cases are defined for auth modes only.
  const itWithAuth = (name: string, fn: () => void): void => {
    if (mode !== 'none') it(name, fn);
  };

  itWithAuth('GIVEN a wrong password WHEN skopeo logs in THEN it fails', () => {
    const r = skopeo(
      'login',
      ...tls,
      '--authfile',
      join(work, 'wrong.json'),
      '-u',
      'alice',
      '-p',
      'nope',
      host,
    );
    expect(r.status).not.toBe(0);
  });

  itWithAuth(
    'GIVEN a read-only user WHEN skopeo pushes THEN it is refused, while pulling works',
    () => {
      const bobAuth = join(work, `bob-${tag}.json`);
      writeFileSync(bobAuth, '{}');
      ok(skopeo('login', ...tls, '--authfile', bobAuth, '-u', 'bob', '-p', 'bob-pw', host));
      const push = skopeo(
        'copy',
        ...dest,
        bobAuth,
        `oci:${layout.dir}:v1`,
        `docker://${host}/team/bob:v1`,
      );
      expect(push.status, push.out).not.toBe(0);
      expect(push.out).toMatch(/denied|unauthorized|authentication required/i);
      ok(skopeo('inspect', ...tls, '--authfile', bobAuth, `docker://${host}/team/app:v1`));
    },
  );

  itWithAuth('GIVEN a robot account WHEN it pushes to its namespace THEN it works', () => {
    const ciAuth = join(work, `ci-${tag}.json`);
    writeFileSync(ciAuth, '{}');
    ok(skopeo('login', ...tls, '--authfile', ciAuth, '-u', 'robot$ci', '-p', 'ci-pw', host));
    ok(skopeo('copy', ...dest, ciAuth, `oci:${layout.dir}:v1`, `docker://${host}/ci/build:v1`));
  });

  itWithAuth(
    'GIVEN a public repository WHEN skopeo pulls without credentials THEN it works, and a private one is refused',
    () => {
      ok(
        skopeo(
          'copy',
          '--preserve-digests',
          ...dest,
          authfile,
          `oci:${layout.dir}:v1`,
          `docker://${host}/public/base:v1`,
        ),
      );
      const none = join(work, `none-${tag}.json`);
      writeFileSync(none, '{}');
      ok(skopeo('inspect', ...tls, '--authfile', none, `docker://${host}/public/base:v1`));
      expect(
        skopeo('inspect', ...tls, '--authfile', none, `docker://${host}/team/app:v1`).status,
      ).not.toBe(0);
    },
  );

  it('GIVEN the server running WHEN it is stopped THEN its temp folder is left empty (the signing key its workers share goes with it)', async () => {
    // Only token auth with several workers and no configured key writes one. tsx-*: the
    // cache of tsx, which runs the test's server from source.
    const left = () => readdirSync(tmp).filter((f) => !f.startsWith('tsx-'));
    expect(left()).toHaveLength(mode === 'token' && workers > 1 ? 1 : 0);
    await berth.kill();
    expect(left()).toEqual([]);
  });
});

describe('skopeo over TLS with htpasswd', () => {
  let reg: TestRegistry;
  let certDir: string;
  beforeAll(async () => {
    const cert = selfSignedCert();
    certDir = join(work, 'certs');
    mkdirSync(certDir, { recursive: true });
    copyFileSync(cert.certFile, join(certDir, 'ca.crt'));
    reg = await startTestRegistry({
      config: {
        http: { tls: { certFile: cert.certFile, keyFile: cert.keyFile } },
        auth: policy('htpasswd'),
      },
    });
  });
  afterAll(async () => reg?.close());

  it('GIVEN an https registry and its CA WHEN skopeo logs in and pushes with verification on THEN it works', async () => {
    const host = new URL(reg.url).host;
    const authfile = join(work, 'auth-tls.json');
    writeFileSync(authfile, '{}');
    ok(
      await skopeoAsync(
        'login',
        '--cert-dir',
        certDir,
        '--authfile',
        authfile,
        '-u',
        'alice',
        '-p',
        'alice-pw',
        host,
      ),
    );
    ok(
      await skopeoAsync(
        'copy',
        '--dest-cert-dir',
        certDir,
        '--dest-authfile',
        authfile,
        `oci:${layout.dir}:v1`,
        `docker://${host}/team/tls:v1`,
      ),
    );
    ok(
      await skopeoAsync(
        'inspect',
        '--cert-dir',
        certDir,
        '--authfile',
        authfile,
        `docker://${host}/team/tls:v1`,
      ),
    );
  });
});
