import { describe, expect, it } from 'vitest';
import { parseChallenge } from '../../../server/client/auth.js';
import { formatReference, parseReference } from '../../../server/image/reference.js';

describe('image references', () => {
  it.each([
    ['ghcr.io/berth-dev/berth:0.1.0', 'ghcr.io', 'berth-dev/berth', '0.1.0'],
    ['127.0.0.1:5000/berth:test', '127.0.0.1:5000', 'berth', 'test'],
    ['localhost/a/b', 'localhost', 'a/b', undefined],
    ['nginx', 'docker.io', 'library/nginx', undefined],
    ['team/app:v1', 'docker.io', 'team/app', 'v1'],
  ])(
    'GIVEN %s WHEN parsed THEN registry, repository and tag are split',
    (ref, registry, repository, tag) => {
      const r = parseReference(ref);
      expect(r).toMatchObject({ registry, repository });
      expect(r.tag).toBe(tag);
    },
  );

  it('GIVEN a digest reference WHEN parsed and formatted THEN it round-trips', () => {
    const d = `sha256:${'a'.repeat(64)}`;
    expect(formatReference(parseReference(`r.example/x@${d}`))).toBe(`r.example/x@${d}`);
  });

  it.each([
    ['', /empty/],
    ['Upper/case', /repository name/],
    ['r.example/x:bad!tag', /bad tag/],
    ['r.example/x@sha256:zz', /bad digest/],
    ['r.example/a//b', /repository name/],
  ])('GIVEN %j WHEN parsed THEN it throws naming the reason', (ref, why) => {
    expect(() => parseReference(ref)).toThrow(why);
  });
});

describe('WWW-Authenticate challenges', () => {
  it('GIVEN a Bearer challenge with quoted params WHEN parsed THEN realm, service and scope are read', () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"',
      ),
    ).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.example/token',
        service: 'registry.example',
        scope: 'repository:a/b:pull,push',
      },
    });
  });

  it('GIVEN Basic with a bare token and an escaped quote WHEN parsed THEN both are read', () => {
    expect(parseChallenge('Basic realm=reg, charset="UTF-\\"8"')).toEqual({
      scheme: 'basic',
      params: { realm: 'reg', charset: 'UTF-"8' },
    });
  });

  it('GIVEN no header WHEN parsed THEN undefined', () => {
    expect(parseChallenge(undefined)).toBeUndefined();
    expect(parseChallenge('')).toBeUndefined();
  });
});
