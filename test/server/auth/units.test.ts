import { describe, expect, it } from 'vitest';
import {
  createPrivateKey,
  generateKeyPairSync,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { compileGlob } from '../../../server/util/glob.js';
import { Htpasswd, parseHtpasswd } from '../../../server/auth/htpasswd.js';
import { signJwt, thumbprint, verifyJwt } from '../../../server/auth/jwt.js';
import { loadCertBundle } from '../../../server/auth/keys.js';
import { ANONYMOUS, AccessPolicy, principalOf } from '../../../server/auth/policy.js';
import { parseScope } from '../../../server/auth/service.js';
import { authConfig } from '../../support/auth.js';
import { ManualClock } from '../../support/clock.js';
import { selfSignedCert } from '../../support/tls.js';
import { scratchDir } from '../../support/scratch.js';

describe('repository globs', () => {
  it.each([
    ['team/*', 'team/app', true],
    ['team/*', 'team/a/b', false],
    ['team/**', 'team/a/b', true],
    ['team/**', 'teamx/a', false],
    ['*', 'app', true],
    ['*', 'a/b', false],
    ['**', 'a/b/c', true],
    ['app-?', 'app-1', true],
    ['a.b', 'axb', false],
  ])('GIVEN %s WHEN matching %s THEN %s', (glob, name, want) => {
    expect(compileGlob(glob).test(name)).toBe(want);
  });
});

describe('AccessPolicy', () => {
  const p = new AccessPolicy(
    authConfig('htpasswd')
      .group('devs', ['dana'])
      .rule({ users: ['alice'], repositories: ['team/**'], actions: ['pull', 'push'] })
      .rule({ groups: ['devs'], repositories: ['dev/*'], actions: ['pull', 'delete'] })
      .rule({ robots: ['ci'], repositories: ['ci/**'], actions: ['push'] })
      .rule({ users: ['*'], repositories: ['shared/**'], actions: ['pull'] })
      .anonymous('public/**')
      .immutable(['prod/**'], ['v*'])
      .build(),
  );
  const acts = (who: string | undefined, repo: string) =>
    [...p.actions(who === undefined ? ANONYMOUS : principalOf(who), repo)].sort();

  it('GIVEN rules for users, groups, robots and anyone WHEN asked THEN each gets exactly its grants', () => {
    expect(acts('alice', 'team/x/y')).toEqual(['pull', 'push']);
    expect(acts('dana', 'dev/app')).toEqual(['delete', 'pull']);
    expect(acts('robot$ci', 'ci/b')).toEqual(['push']);
    expect(acts('ci', 'ci/b')).toEqual([]); // a user named like the robot is not the robot
    expect(acts('zed', 'shared/lib')).toEqual(['pull']);
    expect(acts(undefined, 'shared/lib')).toEqual([]);
    expect(acts(undefined, 'public/x')).toEqual(['pull']);
    expect(acts('alice', 'other')).toEqual([]);
  });

  it('GIVEN an immutable pattern WHEN asked THEN only matching tags in matching repositories are immutable', () => {
    expect(p.immutableTag('prod/app', 'v1')).toBe(true);
    expect(p.immutableTag('prod/app', 'latest')).toBe(false);
    expect(p.immutableTag('dev/app', 'v1')).toBe(false);
  });
});

describe('htpasswd', () => {
  it('GIVEN lines of several hash types WHEN parsed THEN only bcrypt entries are kept', () => {
    const h = bcrypt.hashSync('x', 4);
    const m = parseHtpasswd(
      `# c\nalice:${h}\nbob:{SHA}abc\ncarol:$apr1$x$y\n\n:${h}\nrobot$ci:${h}\n`,
    );
    expect([...m.keys()]).toEqual(['alice', 'robot$ci']);
  });

  it('GIVEN a running checker WHEN the file changes THEN the new entries apply after the reload interval, without a restart', async () => {
    const dir = scratchDir('berth-ht-');
    const file = join(dir, 'htpasswd');
    writeFileSync(file, `alice:${bcrypt.hashSync('one', 4)}\n`);
    const clock = new ManualClock({ start: 0 });
    const h = Htpasswd.open(file, { clock, reloadCheckMs: 1000 });
    expect(await h.verify('alice', 'one')).toBe(true);
    writeFileSync(file, `alice:${bcrypt.hashSync('two', 4)}\nbob:${bcrypt.hashSync('b', 4)}\n`);
    clock.advance(1001);
    expect(await h.verify('alice', 'one')).toBe(false);
    expect(await h.verify('alice', 'two')).toBe(true);
    expect(await h.verify('bob', 'b')).toBe(true);
  });
});

describe('tokens', () => {
  it('GIVEN scopes WHEN parsed THEN type, name (with colons kept) and actions come out', () => {
    expect(parseScope('repository:team/app:pull,push')).toEqual({
      type: 'repository',
      name: 'team/app',
      actions: ['pull', 'push'],
    });
    expect(parseScope('repository(plugin):a:pull')).toEqual({
      type: 'repository',
      name: 'a',
      actions: ['pull'],
    });
    expect(parseScope('registry:catalog:*')).toEqual({
      type: 'registry',
      name: 'catalog',
      actions: ['*'],
    });
    expect(parseScope('repository:x:')).toBeUndefined();
    expect(parseScope('nonsense')).toBeUndefined();
  });

  const base = { iss: 'i', sub: 's', aud: 'berth', exp: 2000, access: [] };
  const opts = (keys: { kid: string; key: KeyObject }[]) => ({
    keys,
    algorithms: ['ES256', 'RS256', 'EdDSA'],
    issuer: 'i',
    audience: 'berth',
    now: 1000,
  });

  it.each(['ec', 'rsa', 'ed25519'] as const)(
    'GIVEN a %s key WHEN signing and verifying THEN the claims round-trip; wrong iss, aud or exp are refused',
    (type) => {
      const pair =
        type === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : type === 'rsa'
            ? generateKeyPairSync('rsa', { modulusLength: 2048 })
            : generateKeyPairSync('ed25519');
      const keys = [{ kid: thumbprint(pair.publicKey), key: pair.publicKey }];
      const t = signJwt(base, pair.privateKey, keys[0]!.kid);
      expect(verifyJwt(t, opts(keys)).sub).toBe('s');
      expect(() =>
        verifyJwt(signJwt({ ...base, iss: 'x' }, pair.privateKey, keys[0]!.kid), opts(keys)),
      ).toThrow(/issuer/);
      expect(() =>
        verifyJwt(signJwt({ ...base, aud: 'x' }, pair.privateKey, keys[0]!.kid), opts(keys)),
      ).toThrow(/audience/);
      expect(() =>
        verifyJwt(signJwt({ ...base, exp: 900 }, pair.privateKey, keys[0]!.kid), opts(keys)),
      ).toThrow(/expired/);
      expect(() =>
        verifyJwt(signJwt({ ...base, nbf: 1100 }, pair.privateKey, keys[0]!.kid), opts(keys)),
      ).toThrow(/not yet/);
      expect(() => verifyJwt(t, { ...opts(keys), algorithms: ['PS256'] })).toThrow(/not allowed/);
    },
  );

  it('GIVEN a certificate bundle WHEN loaded THEN keys get RFC 7638 thumbprints as kid and tokens signed by the certificate key verify', () => {
    const cert = selfSignedCert();
    const keys = loadCertBundle(cert.certFile);
    const pub = new X509Certificate(readFileSync(cert.certFile)).publicKey;
    expect(keys[0]!.kid).toBe(thumbprint(pub));
    const t = signJwt(base, createPrivateKey(readFileSync(cert.keyFile)), keys[0]!.kid);
    expect(verifyJwt(t, opts(keys)).iss).toBe('i');
  });
});
