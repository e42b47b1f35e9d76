/**
 * The operator's AdmissionPolicy: pure matching, and what reconcileRegistry does with a
 * Registry it refuses, on the recording FakeCluster.
 */
import { describe, expect, it } from 'vitest';
import { globMatch, listFromEnv, refusals } from '../../operator/policy.js';
import { reconcileRegistry } from '../../operator/reconcile/registry.js';
import type { Registry } from '../../operator/types.js';
import { aRegistry } from './builders.js';
import { FakeCluster } from './fake-cluster.js';

const NS = 'team-a';
const OPERATOR_IMAGE = 'ghcr.io/berth-dev/berth:test';
const policy = {
  images: ['ghcr.io/berth-dev/berth:*'],
  s3Endpoints: ['http://minio.minio.svc:9000', 'https://*.s3.amazonaws.com'],
};

function cluster(r: Registry): FakeCluster {
  const c = new FakeCluster();
  c.put({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'minio-creds', namespace: NS },
    data: {
      accessKeyId: Buffer.from('AK').toString('base64'),
      secretAccessKey: Buffer.from('SK').toString('base64'),
    },
  });
  c.registry = r;
  return c;
}

function condition(r: Registry | undefined, type: string): string {
  const x = r?.status?.conditions?.find((c) => c.type === type);
  return x ? `${x.status}/${x.reason}` : 'missing';
}

const images = () => aRegistry().named('images', NS);

describe('globMatch and listFromEnv', () => {
  it('GIVEN whole-string globs WHEN matched THEN * spans any run of characters and nothing else is special', () => {
    expect(globMatch('ghcr.io/berth-dev/berth:*', 'ghcr.io/berth-dev/berth:1.2.3')).toBe(true);
    expect(globMatch('ghcr.io/berth-dev/berth:*', 'ghcr.io/berth-dev/berth-evil:1')).toBe(false);
    expect(globMatch('ghcr.io/berth-dev/berth:*', 'evil.io/ghcr.io/berth-dev/berth:1')).toBe(false);
    expect(globMatch('https://*.s3.amazonaws.com', 'https://b.s3.amazonaws.com')).toBe(true);
    expect(globMatch('https://*.s3.amazonaws.com', 'https://s3.amazonaws.com.evil.io')).toBe(false);
    // The dot is literal, not "any character".
    expect(globMatch('http://a.b', 'http://aXb')).toBe(false);
  });

  it('GIVEN an environment value WHEN split THEN commas and newlines separate and blanks vanish', () => {
    expect(listFromEnv(' a, b\nc ,, ')).toEqual(['a', 'b', 'c']);
    expect(listFromEnv(undefined)).toEqual([]);
    expect(listFromEnv('')).toEqual([]);
  });
});

describe('refusals', () => {
  it('GIVEN no lists WHEN a Registry asks for anything THEN nothing is refused', () => {
    const r = images()
      .with({ image: 'evil.io/x:1' })
      .withS3({ endpoint: 'http://evil:9000' })
      .build();
    expect(refusals(r, {}, OPERATOR_IMAGE)).toEqual([]);
  });

  it("GIVEN an image list WHEN the Registry runs the operator's own image THEN it is allowed even if no pattern matches", () => {
    const r = images().with({ image: OPERATOR_IMAGE }).build();
    expect(refusals(r, { images: ['other.io/*'] }, OPERATOR_IMAGE)).toEqual([]);
  });

  it('GIVEN both lists WHEN a Registry asks for another image and endpoint THEN both fields are named, image first', () => {
    const r = images()
      .with({ image: 'evil.io/berth:1' })
      .withS3({ endpoint: 'http://evil:9000' })
      .build();
    const out = refusals(r, policy, OPERATOR_IMAGE);
    expect(out.map((x) => x.field)).toEqual(['spec.image', 'spec.storage.s3.endpoint']);
    expect(out[0]?.message).toContain('"evil.io/berth:1"');
    expect(out[1]?.message).toContain('"http://evil:9000"');
  });
});

describe('reconcileRegistry with an AdmissionPolicy', () => {
  it('GIVEN an endpoint outside the allow-list WHEN reconciled THEN nothing is applied, the bucket is not checked, the status names the field and one Warning Event fires', async () => {
    const c = cluster(images().withS3({ endpoint: 'http://evil:9000' }).build());
    await reconcileRegistry({ ...c.deps(), policy }, NS, 'images');
    expect(c.calls).toEqual(['status']);
    expect(c.buckets).toEqual([]);
    expect(condition(c.registry, 'ConfigValid')).toBe('False/NotAllowed');
    expect(condition(c.registry, 'Ready')).toBe('False/NotAllowed');
    expect(condition(c.registry, 'Degraded')).toBe('True/NotAllowed');
    const msg = c.registry?.status?.conditions?.find((x) => x.type === 'ConfigValid')?.message;
    expect(msg).toContain('spec.storage.s3.endpoint');
    expect(c.events).toEqual(['Warning/NotAllowed']);
    expect(c.registry?.status?.observedGeneration).toBe(1);

    // WHEN reconciled again unchanged THEN nothing more is written and no second Event fires.
    c.calls.length = 0;
    await reconcileRegistry({ ...c.deps(), policy }, NS, 'images');
    expect(c.calls).toEqual([]);
    expect(c.events).toEqual(['Warning/NotAllowed']);
  });

  it('GIVEN a running Registry WHEN its spec.image is changed to one outside the list THEN its children stay as they were and it is Degraded; changed back THEN it is applied again', async () => {
    const c = cluster(images().build());
    await reconcileRegistry({ ...c.deps(), policy }, NS, 'images');
    expect(c.calls).toContain('apply Deployment/images');
    const before = JSON.stringify(c.get('Deployment', NS, 'images'));

    c.registry = {
      ...images().with({ image: 'evil.io/x:1' }).atGeneration(2).build(),
      status: c.registry?.status,
    };
    c.calls.length = 0;
    await reconcileRegistry({ ...c.deps(), policy }, NS, 'images');
    expect(c.calls).toEqual(['status']);
    expect(JSON.stringify(c.get('Deployment', NS, 'images'))).toBe(before);
    expect(condition(c.registry, 'Degraded')).toBe('True/NotAllowed');
    expect(c.registry?.status?.conditions?.find((x) => x.type === 'Ready')?.message).toContain(
      'spec.image',
    );

    c.registry = { ...images().atGeneration(3).build(), status: c.registry?.status };
    c.calls.length = 0;
    await reconcileRegistry({ ...c.deps(), policy }, NS, 'images');
    expect(c.calls).toContain('apply Deployment/images');
    expect(condition(c.registry, 'ConfigValid')).toBe('True/ConfigRendered');
    expect(condition(c.registry, 'Degraded')).not.toBe('True/NotAllowed');
  });

  it('GIVEN a deleted Registry whose endpoint is outside the list WHEN finalized THEN the bucket is not touched, a Warning says so, and the finalizer is dropped', async () => {
    const r = images()
      .withS3({
        endpoint: 'http://evil:9000',
        bucketManagement: 'Managed',
        deletionPolicy: 'Delete',
      })
      .build();
    r.metadata.finalizers = ['berth.dev/bucket'];
    r.metadata.deletionTimestamp = new Date();
    const c = cluster(r);
    await reconcileRegistry({ ...c.deps(), policy }, NS, 'images');
    expect(c.buckets).toEqual([]);
    expect(c.events).toEqual(['Warning/NotAllowed']);
    expect(c.calls).toEqual(['finalizers []']);
  });
});
