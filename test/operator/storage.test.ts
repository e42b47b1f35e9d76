import { describe, expect, it } from 'vitest';
import { classify, MinioBucketStore } from '../../operator/storage.js';

const target = {
  endpoint: 'http://127.0.0.1:1',
  bucket: 'b',
  region: 'us-east-1',
  pathStyle: true,
  insecureSkipVerify: false,
};

describe('bucket store', () => {
  it('GIVEN S3 refuses the keys WHEN classified THEN the reason is AccessDenied', () => {
    for (const code of ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch']) {
      expect(classify(Object.assign(new Error('no'), { code }), target).reason).toBe(
        'AccessDenied',
      );
    }
  });

  it('GIVEN a network error WHEN classified THEN the reason is EndpointUnreachable with the endpoint in the message', () => {
    const s = classify(
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      target,
    );
    expect(s).toEqual({
      ready: false,
      reason: 'EndpointUnreachable',
      message: 'http://127.0.0.1:1: connect ECONNREFUSED',
    });
  });

  it('GIVEN nothing listens on the endpoint WHEN ensure runs THEN it reports EndpointUnreachable instead of throwing', async () => {
    const s = await new MinioBucketStore(2_000).ensure(
      target,
      { accessKey: 'a', secretKey: 'b' },
      true,
    );
    expect(s.ready).toBe(false);
    expect(s.reason).toBe('EndpointUnreachable');
  });
});
