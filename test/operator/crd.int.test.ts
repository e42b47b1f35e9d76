import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import type { MirrorUpstreamSpec, Registry } from '../../operator/types.js';
import { aRegistry } from './builders.js';
import { apiError, createNamespace, getRegistry, installCrd, kubectlApply } from './cluster.js';

const NS = 'crd-test';

describe('Registry CRD on a real API server', () => {
  let cp: ControlPlane;
  let kc: KubeConfig;
  let custom: CustomObjectsApi;

  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
    kc = cp.kc();
    custom = kc.makeApiClient(CustomObjectsApi);
    await installCrd(kc);
    await createNamespace(kc, NS);
  });

  afterAll(async () => {
    await cp?.stop();
  });

  async function rejected(obj: Record<string, unknown>): Promise<string> {
    try {
      await kubectlApply(kc, obj as never);
    } catch (err) {
      return apiError(err);
    }
    throw new Error('the API server accepted an invalid Registry');
  }

  it('GIVEN the CRD WHEN installed THEN it is established with status and scale subresources and the printer columns', async () => {
    const { ApiextensionsV1Api } = await import('@kubernetes/client-node');
    const crd = await kc
      .makeApiClient(ApiextensionsV1Api)
      .readCustomResourceDefinition({ name: 'registries.berth.dev' });
    const v = crd.spec.versions[0]!;
    expect(v.subresources?.scale).toMatchObject({
      specReplicasPath: '.spec.replicas',
      labelSelectorPath: '.status.selector',
    });
    expect(v.subresources?.status).toEqual({});
    expect(v.additionalPrinterColumns?.map((c) => c.name)).toEqual([
      'Ready',
      'Replicas',
      'Endpoint',
      'Bucket',
      'Node-Address',
      'Reason',
      'Age',
    ]);
  });

  it('GIVEN a minimal Registry WHEN applied THEN the schema defaults are filled in', async () => {
    await kubectlApply(kc, aRegistry().named('minimal', NS).raw() as never);
    const r = await getRegistry(kc, NS, 'minimal');
    // No image default: an unpinned Registry runs the operator's image (operator/image.ts).
    expect(r.spec.image).toBeUndefined();
    expect(r.spec).toMatchObject({
      replicas: 1,
      logLevel: 'info',
      deleteEnabled: true,
      readOnly: false,
      blobCache: { sizeGiB: 10 },
      service: { type: 'ClusterIP', port: 5000 },
      podDisruptionBudget: { enabled: true },
      updateStrategy: { type: 'RollingUpdate' },
    });
    expect(r.spec.storage.s3).toMatchObject({
      region: 'us-east-1',
      pathStyle: true,
      partSizeMiB: 16,
      redirect: false,
      bucketManagement: 'Unmanaged',
      deletionPolicy: 'Retain',
      credentialsSecretRef: {
        name: 'minio-creds',
        accessKeyIdKey: 'accessKeyId',
        secretAccessKeyKey: 'secretAccessKey',
      },
    });
  });

  it('GIVEN a part size under 5 MiB WHEN applied THEN it is rejected with the CEL message', async () => {
    const msg = await rejected(
      aRegistry().named('small-parts', NS).withS3({ partSizeMiB: 4 }).raw(),
    );
    expect(msg).toContain(
      "partSizeMiB must be at least 5 (S3's minimum multipart part size is 5 MiB)",
    );
  });

  it('GIVEN a negative blob cache size WHEN applied THEN the schema rejects it', async () => {
    const msg = await rejected(
      aRegistry()
        .named('neg-cache', NS)
        .with({ blobCache: { sizeGiB: -1 } })
        .raw(),
    );
    expect(msg).toContain('spec.blobCache.sizeGiB');
  });

  it('GIVEN bucket names S3 refuses WHEN applied THEN each is rejected with the bucket rule', async () => {
    expect(
      await rejected(aRegistry().named('b1', NS).withS3({ bucket: 'Upper_Case' }).raw()),
    ).toContain('bucket must be an S3 bucket name');
    expect(await rejected(aRegistry().named('b2', NS).withS3({ bucket: 'a..b' }).raw())).toContain(
      'no ".."',
    );
    expect(
      await rejected(aRegistry().named('b3', NS).withS3({ bucket: '10.0.0.1' }).raw()),
    ).toContain('bucket must not look like an IP address');
  });

  it('GIVEN an existing Registry WHEN its bucket is changed THEN the update is rejected as immutable', async () => {
    await kubectlApply(
      kc,
      aRegistry().named('fixed', NS).withS3({ bucket: 'first' }).raw() as never,
    );
    const msg = await rejected(aRegistry().named('fixed', NS).withS3({ bucket: 'second' }).raw());
    expect(msg).toContain('bucket is immutable');
  });

  it('GIVEN deletionPolicy Delete on an Unmanaged bucket WHEN applied THEN it is rejected', async () => {
    const msg = await rejected(
      aRegistry().named('del', NS).withS3({ deletionPolicy: 'Delete' }).raw(),
    );
    expect(msg).toContain('deletionPolicy Delete requires bucketManagement Managed');
  });

  it('GIVEN an enabled ingress without a host WHEN applied THEN it is rejected', async () => {
    const msg = await rejected(
      aRegistry()
        .named('ing', NS)
        .with({ ingress: { enabled: true } as never })
        .raw(),
    );
    expect(msg).toContain('ingress.host is required when the ingress is enabled');
  });

  it('GIVEN no networkPolicy WHEN applied THEN it is off with the debug port for the monitoring namespace; GIVEN a bad namespace name or CIDR THEN each is rejected', async () => {
    await kubectlApply(kc, aRegistry().named('np-default', NS).raw() as never);
    expect((await getRegistry(kc, NS, 'np-default')).spec.networkPolicy).toEqual({
      enabled: false,
      registry: {},
      metrics: {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
      },
    });
    const bad = (registry: Record<string, unknown>) =>
      rejected(
        aRegistry()
          .named('np-bad', NS)
          .with({ networkPolicy: { enabled: true, registry } })
          .raw(),
      );
    expect(await bad({ namespaces: ['Not_A_Namespace'] })).toMatch(
      /networkPolicy\.registry\.namespaces/,
    );
    expect(await bad({ ipBlocks: ['10.0.0.0'] })).toMatch(/networkPolicy\.registry\.ipBlocks/);
    expect(
      await bad({ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Near' }] } }),
    ).toMatch(/operator/);
  });

  it('GIVEN full auth, limits and garbageCollection sections WHEN applied THEN they are accepted and defaulted', async () => {
    await kubectlApply(
      kc,
      aRegistry()
        .named('authgc', NS)
        .with({
          tls: { secretName: 'reg-tls', clientCASecretRef: { name: 'clients' } } as never,
          limits: { headerBytes: 32768, rate: { requestsPerSecond: 50, burst: 100 } },
          auth: {
            mode: 'token',
            htpasswdSecretRef: { name: 'users' },
            basicRealm: 'team',
            token: {
              service: 'reg',
              issuer: 'reg',
              expiresSeconds: 600,
              signingKeySecretRef: { name: 'signer', key: 'key.pem' },
              algorithms: ['ES256'],
            },
            anonymousPull: ['public/*'],
            groups: [{ name: 'devs', members: ['alice'] }],
            rules: [{ repositories: ['team/*'], groups: ['devs'], actions: ['pull', 'push'] }],
            immutableTags: [{ repositories: ['team/*'], tags: ['v*'] }],
          } as never,
          garbageCollection: {
            enabled: true,
            leaseSeconds: 60,
            policies: [
              {
                repositories: ['team/**'],
                keepTags: [{ patterns: ['^v'], mostRecentlyPushed: 3 }],
                deleteUntaggedAfterSeconds: 86400,
                deleteReferrers: true,
              },
            ],
          } as never,
        })
        .raw() as never,
    );
    const r = await getRegistry(kc, NS, 'authgc');
    expect(r.spec.auth?.htpasswdSecretRef).toEqual({ name: 'users', key: 'htpasswd' });
    expect(r.spec.tls?.clientCASecretRef).toEqual({ name: 'clients', key: 'ca.crt' });
    expect(r.spec.garbageCollection).toMatchObject({
      enabled: true,
      intervalSeconds: 3600,
      graceSeconds: 3600,
      dryRun: false,
      leaseSeconds: 60,
    });
    expect(r.spec.auth?.rules).toEqual([
      { repositories: ['team/*'], groups: ['devs'], actions: ['pull', 'push'] },
    ]);
  });

  it('GIVEN external token verification WHEN applied THEN it needs no htpasswd Secret but a key source and a realm', async () => {
    await kubectlApply(
      kc,
      aRegistry()
        .named('ext', NS)
        .with({
          auth: {
            mode: 'token',
            token: {
              realm: 'https://auth.example.com/token',
              external: { jwksConfigMapRef: { name: 'issuer' } },
            },
          } as never,
        })
        .raw() as never,
    );
    const msg = await rejected(
      aRegistry()
        .named('ext2', NS)
        .with({ auth: { mode: 'token', token: { external: {} } } as never })
        .raw(),
    );
    expect(msg).toContain('token.external needs jwksConfigMapRef or rootCertBundleConfigMapRef');
    expect(msg).toContain('token.realm is required when token.external is set');
  });

  it('GIVEN htpasswd or issuing token mode without htpasswdSecretRef WHEN applied THEN it is rejected with the CEL message', async () => {
    const msg = await rejected(
      aRegistry()
        .named('nohtp', NS)
        .with({ auth: { mode: 'htpasswd' } })
        .raw(),
    );
    expect(msg).toContain('auth.htpasswdSecretRef is required when auth.mode is htpasswd');
    const msg2 = await rejected(
      aRegistry()
        .named('notok', NS)
        .with({ auth: { mode: 'token' } })
        .raw(),
    );
    expect(msg2).toContain(
      'auth.htpasswdSecretRef is required when auth.mode is token without token.external',
    );
  });

  it('GIVEN bad auth and gc values WHEN applied THEN the schema rejects them', async () => {
    const msg = await rejected(
      aRegistry()
        .named('badgc', NS)
        .with({
          auth: {
            mode: 'none',
            rules: [{ repositories: ['a b'], actions: ['admin'] }],
          } as never,
          garbageCollection: {
            enabled: true,
            intervalSeconds: 0,
            policies: [{ repositories: [] }],
          } as never,
        })
        .raw(),
    );
    expect(msg).toMatch(/intervalSeconds/);
    expect(msg).toMatch(/actions/);
    expect(msg).toMatch(/repositories/);
  });

  it('GIVEN an endpoint that is not a URL and an unknown log level WHEN applied THEN both are rejected', async () => {
    expect(
      await rejected(aRegistry().named('ep', NS).withS3({ endpoint: 'minio:9000' }).raw()),
    ).toContain('endpoint must be an http(s) URL');
    expect(
      await rejected(
        aRegistry()
          .named('lvl', NS)
          .with({ logLevel: 'loud' as never })
          .raw(),
      ),
    ).toMatch(/logLevel/);
  });

  it('GIVEN nodeAccess without its address field, with the other mode field, or a bad IP WHEN applied THEN each is rejected with the field named; valid ones get the defaults', async () => {
    expect(
      await rejected(aRegistry().named('na1', NS).withNodeAccess({ enabled: true }).raw()),
    ).toContain('nodeAccess.nodePort is required when nodeAccess.mode is NodePort');
    expect(
      await rejected(
        aRegistry().named('na2', NS).withNodeAccess({ enabled: true, mode: 'ClusterIP' }).raw(),
      ),
    ).toContain('nodeAccess.clusterIP is required when nodeAccess.mode is ClusterIP');
    expect(
      await rejected(
        aRegistry()
          .named('na3', NS)
          .withNodeAccess({ enabled: true, nodePort: 30500, clusterIP: '10.0.0.1' })
          .raw(),
      ),
    ).toContain('nodeAccess.clusterIP applies only to mode ClusterIP');
    expect(
      await rejected(
        aRegistry()
          .named('na4', NS)
          .withNodeAccess({ enabled: true, mode: 'ClusterIP', clusterIP: '10.0.0.256' })
          .raw(),
      ),
    ).toContain('nodeAccess.clusterIP must be an IPv4 or IPv6 address literal');
    expect(
      await rejected(
        aRegistry().named('na5', NS).withNodeAccess({ enabled: true, nodePort: 8080 }).raw(),
      ),
    ).toMatch(/nodePort/);
    expect(
      await rejected(
        aRegistry()
          .named('na6', NS)
          .withNodeAccess({ enabled: true, nodePort: 30500, containerd: { configPath: 'rel' } })
          .raw(),
      ),
    ).toContain('containerd.configPath must be an absolute host path');
    expect(
      await rejected(
        aRegistry()
          .named('n'.repeat(59), NS)
          .withNodeAccess({ enabled: true, nodePort: 30500 })
          .raw(),
      ),
    ).toContain('at most 58 characters');
    expect(await rejected(aRegistry().named('m'.repeat(56), NS).raw())).toContain(
      'at most 55 characters',
    );
    await kubectlApply(
      kc,
      aRegistry()
        .named('m'.repeat(56), NS)
        .with({ metrics: { enabled: false, serviceMonitor: { enabled: false, interval: '30s' } } })
        .raw() as never,
    );
    await kubectlApply(
      kc,
      aRegistry()
        .named('na-ok', NS)
        .withNodeAccess({ enabled: true, mode: 'ClusterIP', clusterIP: 'fd00::50' })
        .raw() as never,
    );
    expect((await getRegistry(kc, NS, 'na-ok')).spec.nodeAccess).toEqual({
      enabled: true,
      mode: 'ClusterIP',
      clusterIP: 'fd00::50',
      runtimes: ['containerd'],
      containerd: { configPath: '/etc/containerd/certs.d' },
      crio: { configPath: '/etc/containers/registries.conf.d' },
    });
  });

  it('GIVEN mirror upstreams and mirrorFor that break the rules WHEN applied THEN each is rejected naming the field or the CEL message; a valid one gets the reference keys', async () => {
    const upstream = { name: 'hub', url: 'https://registry-1.docker.io', ns: ['docker.io'] };
    const withUpstreams = (name: string, upstreams: Record<string, unknown>[]) =>
      aRegistry()
        .named(name, NS)
        .with({ mirrors: { upstreams: upstreams as unknown as MirrorUpstreamSpec[] } })
        .raw();
    expect(
      await rejected(withUpstreams('m1', [{ ...upstream, passwordSecretRef: { name: 'hub' } }])),
    ).toContain('mirrors.upstreams[].username is required with passwordSecretRef');
    expect(
      await rejected(
        withUpstreams('m2', [
          {
            ...upstream,
            caBundleSecretRef: { name: 'a' },
            caBundleConfigMapRef: { name: 'b' },
          },
        ]),
      ),
    ).toContain('caBundleSecretRef or caBundleConfigMapRef, not both');
    expect(await rejected(withUpstreams('m3', [{ ...upstream, url: 'ftp://x' }]))).toContain(
      'spec.mirrors.upstreams[0].url',
    );
    // The API server's schema check (Duplicate value) or server-side apply's (duplicate entries).
    expect(await rejected(withUpstreams('m4', [upstream, upstream]))).toMatch(/duplicate/i);
    expect(
      await rejected(
        aRegistry()
          .named('m5', NS)
          .withNodeAccess({ enabled: true, nodePort: 30600, mirrorFor: ['Docker.IO'] })
          .raw(),
      ),
    ).toContain('spec.nodeAccess.mirrorFor[0]');

    await kubectlApply(
      kc,
      withUpstreams('m-ok', [
        {
          ...upstream,
          username: 'me',
          passwordSecretRef: { name: 'hub' },
          caBundleConfigMapRef: { name: 'hub-ca' },
        },
      ]) as never,
    );
    expect((await getRegistry(kc, NS, 'm-ok')).spec.mirrors?.upstreams?.[0]).toMatchObject({
      passwordSecretRef: { name: 'hub', key: 'password' },
      caBundleConfigMapRef: { name: 'hub-ca', key: 'ca.crt' },
    });
  });

  it('GIVEN sync jobs that break the rules WHEN applied THEN each is rejected naming the field or the CEL message; a valid one is kept as written', async () => {
    const upstream = { name: 'hub', url: 'https://registry-1.docker.io' };
    const job = { name: 'base', upstream: 'hub', repositories: ['library/alpine'] };
    const withSync = (name: string, sync: Record<string, unknown>[], upstreams = [upstream]) =>
      aRegistry()
        .named(name, NS)
        .with({ mirrors: { upstreams, sync } as unknown as Registry['spec']['mirrors'] })
        .raw();
    expect(await rejected(withSync('s1', [{ ...job, upstream: 'quay' }]))).toContain(
      'mirrors.sync[].upstream must name a mirrors.upstreams entry',
    );
    expect(await rejected(withSync('s2', [job], []))).toContain(
      'mirrors.sync[].upstream must name a mirrors.upstreams entry',
    );
    expect(await rejected(withSync('s3', [{ ...job, repositories: [] }]))).toContain(
      'spec.mirrors.sync[0].repositories',
    );
    expect(await rejected(withSync('s4', [{ ...job, platforms: ['amd64'] }]))).toContain(
      'spec.mirrors.sync[0].platforms[0]',
    );
    expect(await rejected(withSync('s5', [{ ...job, leaseSeconds: 1 }]))).toContain(
      'spec.mirrors.sync[0].leaseSeconds',
    );
    expect(
      await rejected(withSync('s6', [{ ...job, schedule: '@daily', intervalSeconds: 60 }])),
    ).toContain('set either schedule or intervalSeconds, not both');
    const timed = { ...job, name: 'nightly', schedule: '30 2 * * *' };
    await kubectlApply(kc, withSync('s-cron', [timed]) as never);
    expect((await getRegistry(kc, NS, 's-cron')).spec.mirrors?.sync).toEqual([timed]);
    const full = {
      ...job,
      tags: { semver: '>=3.19 <4', glob: ['latest'], regex: '^edge$' },
      platforms: ['linux/amd64', 'linux/arm/v7'],
      referrers: false,
      intervalSeconds: 600,
      onStart: true,
      leaseSeconds: 60,
    };
    await kubectlApply(kc, withSync('s-ok', [full]) as never);
    expect((await getRegistry(kc, NS, 's-ok')).spec.mirrors?.sync).toEqual([full]);
  });

  it('GIVEN a Registry WHEN scaled through the scale subresource THEN spec.replicas follows', async () => {
    await kubectlApply(kc, aRegistry().named('scaled', NS).raw() as never);
    await custom.patchNamespacedCustomObjectScale(
      {
        group: 'berth.dev',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'registries',
        name: 'scaled',
        body: { spec: { replicas: 3 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect((await getRegistry(kc, NS, 'scaled')).spec.replicas).toBe(3);
  });
});
