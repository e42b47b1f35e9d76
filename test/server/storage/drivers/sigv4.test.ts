import { describe, expect, it } from 'vitest';
// minio-js's own signer, to check that both sign alike (the driver falls back to minio-js).
import { signV4 } from 'minio/dist/esm/signing.mjs';
import { EMPTY_SHA256, SigV4 } from '../../../../server/storage/drivers/sigv4.js';

const AK = 'AKIAIOSFODNN7EXAMPLE';
const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

describe('SigV4', () => {
  it("GIVEN AWS's documented GetObject example WHEN signed THEN its published signature", () => {
    // docs.aws.amazon.com, "Signature Calculations for the Authorization Header", GET Object.
    const h = new SigV4(AK, SK, 'us-east-1').sign(
      'GET',
      'examplebucket.s3.amazonaws.com',
      '/test.txt',
      { range: 'bytes=0-9' },
      new Date('2013-05-24T00:00:00Z'),
    );
    expect(h.authorization).toBe(
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, ' +
        'SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, ' +
        'Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
    expect(h['x-amz-date']).toBe('20130524T000000Z');
    expect(h['x-amz-content-sha256']).toBe(EMPTY_SHA256);
  });

  it('GIVEN requests on two days WHEN signed by one signer THEN each matches minio-js (the cached key follows the day)', () => {
    const s = new SigV4('minio', 'minio-secret', 'eu-west-1');
    for (const at of ['2026-11-23T23:59:59.900Z', '2026-11-24T00:00:00.100Z']) {
      const date = new Date(at);
      const path = '/bucket/repositories/a%2Cb/_manifests/tags/v1%2B2/current';
      const h = s.sign('GET', '127.0.0.1:9000', path, {}, date);
      const theirs = signV4(
        {
          protocol: 'http:',
          method: 'GET',
          path,
          headers: {
            host: '127.0.0.1:9000',
            'x-amz-content-sha256': EMPTY_SHA256,
            'x-amz-date': h['x-amz-date']!,
          },
        },
        'minio',
        'minio-secret',
        'eu-west-1',
        date,
        EMPTY_SHA256,
      );
      expect(h.authorization, at).toBe(theirs);
    }
  });
});
