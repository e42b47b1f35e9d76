import { afterEach, describe, expect, it } from 'vitest';
import { RegistryClient, RegistryClientError } from '../../../server/client/registry.js';
import { pushLayout } from '../../../server/image/push.js';
import type { AuthMode } from '../../../server/config/types.js';
import { authConfig } from '../../support/auth.js';
import { OciLayoutBuilder } from '../../support/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';
import { scratchDir } from '../../support/scratch.js';

const running: TestRegistry[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.close();
});

async function registry(mode?: AuthMode): Promise<TestRegistry> {
  const auth = mode
    ? authConfig(mode)
        .user('alice', 'pw')
        .rule({ users: ['alice'], repositories: ['**'], actions: ['pull', 'push'] })
        .build()
    : undefined;
  const r = await startTestRegistry({ config: auth ? { auth } : {} });
  running.push(r);
  return r;
}

function layout() {
  const dir = scratchDir('berth-push-');
  return new OciLayoutBuilder(dir)
    .image('app', {
      platform: { os: 'linux', architecture: 'amd64' },
      files: { 'a.txt': 'a', 'b.txt': 'b' },
      ref: 'v1',
    })
    .write();
}

function client(r: TestRegistry, credentials?: { username: string; password: string }) {
  return new RegistryClient({ registry: new URL(r.url).host, plainHttp: true, credentials });
}

describe('pushing an OCI layout', () => {
  it.each([['htpasswd' as const], ['token' as const]])(
    'GIVEN a registry asking for %s credentials WHEN pushed twice THEN the manifest is stored and the second push uploads nothing',
    async (mode) => {
      const reg = await registry(mode);
      const l = layout();
      const c = client(reg, { username: 'alice', password: 'pw' });
      const first = await pushLayout(c, l.dir, 'team/app', 'v1');
      expect(first).toEqual({ digest: l.get('app').digest, uploaded: 3, present: 0 });
      const second = await pushLayout(
        client(reg, { username: 'alice', password: 'pw' }),
        l.dir,
        'team/app',
        'v1',
      );
      expect(second).toEqual({ digest: l.get('app').digest, uploaded: 0, present: 3 });
    },
  );

  it('GIVEN wrong credentials WHEN pushed THEN the error names the step and the OCI code', async () => {
    const reg = await registry('htpasswd');
    const err = await pushLayout(
      client(reg, { username: 'alice', password: 'no' }),
      layout().dir,
      'a',
      'v1',
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryClientError);
    expect((err as RegistryClientError).code).toBe('UNAUTHORIZED');
    expect((err as Error).message).toMatch(
      /^check blob sha256:[0-9a-f]{64} \(credentials refused\): HTTP 401 UNAUTHORIZED/,
    );
  });

  it('GIVEN an invalid repository name WHEN pushed THEN the error carries NAME_INVALID', async () => {
    const reg = await registry();
    const err = await pushLayout(client(reg), layout().dir, 'UP', 'v1').catch((e: unknown) => e);
    expect((err as RegistryClientError).code).toBe('NAME_INVALID');
  });
});
