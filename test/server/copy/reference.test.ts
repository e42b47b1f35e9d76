import { describe, expect, it } from 'vitest';
import { parseCopyArgs, parseEndpoint, UsageError } from '../../../server/copy/reference.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('berth copy arguments', () => {
  it('GIVEN docker:// references WHEN parsed THEN host, repository, tag and digest are read, docker.io and latest by default', () => {
    expect(parseEndpoint('docker://127.0.0.1:5000/team/app:v1', 'SRC')).toEqual({
      kind: 'docker',
      ref: { registry: '127.0.0.1:5000', repository: 'team/app', tag: 'v1', digest: undefined },
    });
    expect(parseEndpoint(`docker://localhost/app@${D}`, 'SRC')).toEqual({
      kind: 'docker',
      ref: { registry: 'localhost', repository: 'app', tag: undefined, digest: D },
    });
    expect(parseEndpoint('docker://alpine', 'SRC')).toEqual({
      kind: 'docker',
      ref: {
        registry: 'docker.io',
        repository: 'library/alpine',
        tag: 'latest',
        digest: undefined,
      },
    });
  });

  it('GIVEN layout and archive references WHEN parsed THEN the path and the optional reference (which may hold a colon) are read', () => {
    expect(parseEndpoint('oci:/tmp/l', 'DST')).toEqual({ kind: 'oci', path: '/tmp/l' });
    expect(parseEndpoint('oci:/tmp/l:team/app:v1', 'DST')).toEqual({
      kind: 'oci',
      path: '/tmp/l',
      ref: 'team/app:v1',
    });
    expect(parseEndpoint('oci-archive:a.tar:v1', 'DST')).toEqual({
      kind: 'oci-archive',
      path: 'a.tar',
      ref: 'v1',
    });
    expect(parseEndpoint('docker-archive:d.tar:app:v1', 'DST')).toEqual({
      kind: 'docker-archive',
      path: 'd.tar',
      ref: 'app:v1',
    });
  });

  it('GIVEN flags WHEN parsed THEN credentials, TLS verification and the platform are read', () => {
    const a = parseCopyArgs([
      '--all',
      '--referrers',
      '--src-creds',
      'alice:p:w',
      '--dest-tls-verify=false',
      '--platform',
      'linux/arm64/v8',
      'oci:a',
      'docker://r.example/x:1',
    ]);
    expect(a.all).toBe(true);
    expect(a.referrers).toBe(true);
    expect(a.srcCreds).toEqual({ username: 'alice', password: 'p:w' });
    expect(a.destCreds).toBeUndefined();
    expect([a.srcTlsVerify, a.destTlsVerify]).toEqual([true, false]);
    expect(a.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  });

  it.each([
    [['oci:a'], /SRC DST/],
    [['ftp://x', 'oci:b'], /^SRC:/],
    [['oci:a', 'docker://r.example/UPPER'], /^DST:.*repository/],
    [['oci:a', `docker://r.example/x@sha256:abc`], /^DST:.*digest/],
    [['--src-creds', 'nopass', 'oci:a', 'oci:b'], /^--src-creds/],
    [['--dest-tls-verify=maybe', 'oci:a', 'oci:b'], /^--dest-tls-verify/],
    [['--platform', 'amd64', 'oci:a', 'oci:b'], /^--platform/],
    [['--all', 'oci:a', 'docker-archive:b.tar'], /^--all/],
    [['--referrers', 'oci:a', 'docker-archive:b.tar'], /^--referrers/],
  ])('GIVEN %j WHEN parsed THEN a usage error names the argument', (args, message) => {
    expect(() => parseCopyArgs(args)).toThrow(UsageError);
    expect(() => parseCopyArgs(args)).toThrow(message);
  });
});
