/**
 * The operator end to end on a real control plane (etcd, kube-apiserver,
 * kube-controller-manager), a fake node running real `berth server` processes, and real MinIO.
 * The chart is installed with helm, and the operator runs with exactly the chart's RBAC by
 * impersonating its ServiceAccount.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  PolicyV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubeConfig,
  type V1Deployment,
  type V1Pod,
} from '@kubernetes/client-node';
import { Client as MinioClient } from 'minio';
import { parse } from 'yaml';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_CHECKSUM } from '../../operator/desired/meta.js';
import type { Logger } from '../../operator/log.js';
import { runOperator, type RunningOperator } from '../../operator/main.js';
import type { Registry } from '../../operator/types.js';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import { startFakeNode, type FakeNode } from '../support/kubenode.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import { OciLayoutBuilder, readLayout, sha256, type OciLayout } from '../support/oci-layout.js';
import { tool } from '../support/tools.js';
import { aRegistry } from './builders.js';
import {
  apiError,
  condition,
  createNamespace,
  eventually,
  getRegistry,
  kubectlApply,
} from './cluster.js';

const SA = 'system:serviceaccount:berth-system:berth';
const CHART = join(import.meta.dirname, '..', '..', 'charts', 'berth');

/** memoryLog keeps the operator's log lines, printed when a test fails to help diagnose. */
function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
    if (lines.length > 2000) lines.shift();
  };
  return { lines, debug: () => undefined, info: at('info'), warn: at('warn'), error: at('error') };
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`,
    );
  return r.stdout;
}

describe('berth operator against a real control plane, fake node and MinIO', () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  let minio: MinioServer;
  let node: FakeNode;
  let operator: RunningOperator;
  let s3: MinioClient;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let custom: CustomObjectsApi;
  let work: string;
  const log = memoryLog();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'berth-op-'));
    [cp, minio] = await Promise.all([startControlPlane(), startMinio()]);
    admin = cp.kc();
    core = admin.makeApiClient(CoreV1Api);
    apps = admin.makeApiClient(AppsV1Api);
    custom = admin.makeApiClient(CustomObjectsApi);
    const url = new URL(minio.endpoint);
    s3 = new MinioClient({
      endPoint: url.hostname,
      port: Number(url.port),
      useSSL: false,
      accessKey: minio.accessKey,
      secretKey: minio.secretKey,
      pathStyle: true,
    });
    node = await startFakeNode(admin);
    // A stand-in for the Prometheus operator's CRD, so ServiceMonitors can be applied.
    await admin.makeApiClient(ApiextensionsV1Api).createCustomResourceDefinition({
      body: {
        metadata: { name: 'servicemonitors.monitoring.coreos.com' },
        spec: {
          group: 'monitoring.coreos.com',
          scope: 'Namespaced',
          names: {
            kind: 'ServiceMonitor',
            plural: 'servicemonitors',
            singular: 'servicemonitor',
            listKind: 'ServiceMonitorList',
          },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: {
                openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true },
              },
            },
          ],
        },
      },
    });
  }, 180_000);

  afterAll(async () => {
    await operator?.stop();
    await node?.stop();
    await cp?.stop();
    await minio?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') {
      process.stderr.write(`operator log (last 40 lines):\n${log.lines.slice(-40).join('\n')}\n`);
    }
  });

  async function credentials(namespace: string, name = 'minio-creds'): Promise<void> {
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name },
        stringData: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
      },
    });
  }

  async function ready(namespace: string, name: string, ms = 60_000): Promise<Registry> {
    return eventually(async () => {
      const r = await getRegistry(admin, namespace, name);
      if (
        condition(r, 'Ready') !== 'True/Ready' ||
        // Ready holds through a rollout or scale (enough replicas serve): wait for it to end.
        condition(r, 'Progressing') !== 'False/RolloutComplete' ||
        r.status?.observedGeneration !== r.metadata.generation
      )
        throw new Error(
          `not ready: ${JSON.stringify(r.status?.conditions?.map((c) => `${c.type}=${c.status}/${c.reason}: ${c.message}`))}`,
        );
      return r;
    }, ms);
  }

  /** podsReport says what each pod of `namespace` is doing and what its server wrote last. */
  async function podsReport(namespace: string): Promise<string> {
    const pods = await core.listNamespacedPod({ namespace });
    return pods.items
      .map((p) => {
        const name = p.metadata?.name ?? '';
        const state = JSON.stringify(p.status?.containerStatuses?.map((c) => c.state));
        return `pod ${name}: ${state}\n${node.output(namespace, name).slice(-2000)}`;
      })
      .join('\n');
  }

  async function runningPods(namespace: string, name: string): Promise<V1Pod[]> {
    const pods = await core.listNamespacedPod({
      namespace,
      labelSelector: `app.kubernetes.io/instance=${name}`,
    });
    return pods.items.filter(
      (p) =>
        !p.metadata?.deletionTimestamp &&
        p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
  }

  async function events(namespace: string, name: string): Promise<string[]> {
    const list = await admin.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace });
    return list.items.filter((e) => e.regarding?.name === name).map((e) => `${e.type}/${e.reason}`);
  }

  async function bucketKeys(bucket: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const o of s3.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>)
      if (o.name) keys.push(o.name);
    return keys;
  }

  it('GIVEN the chart WHEN helm installs it THEN the CRD, ServiceAccount, least-privilege RBAC and operator Deployment exist', async () => {
    const helm = tool('helm');
    run(helm, ['lint', '--strict', CHART]);
    run(helm, [
      'install',
      'berth',
      CHART,
      '--namespace',
      'berth-system',
      '--create-namespace',
      '--kubeconfig',
      cp.kubeconfig,
    ]);
    await eventually(() =>
      admin
        .makeApiClient(CustomObjectsApi)
        .listClusterCustomObject({ group: 'berth.dev', version: 'v1alpha1', plural: 'registries' }),
    );
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    const role = await rbac.readClusterRole({ name: 'berth' });
    expect(role.rules?.find((r) => r.resources?.includes('registries/finalizers'))?.verbs).toEqual([
      'update',
    ]);
    expect(role.rules?.some((r) => r.resources?.includes('*') || r.verbs.includes('*'))).toBe(
      false,
    );
    expect(role.rules?.some((r) => r.resources?.includes('leases'))).toBe(false);
    await core.readNamespacedServiceAccount({ name: 'berth', namespace: 'berth-system' });
    const d = await apps.readNamespacedDeployment({
      name: 'berth-operator',
      namespace: 'berth-system',
    });
    expect(d.spec?.template.spec?.serviceAccountName).toBe('berth');
    expect(d.spec?.template.spec?.containers[0]?.args).toEqual(['operator']);

    // The operator runs as the chart's ServiceAccount: every request is authorized by its RBAC.
    operator = await runOperator({
      kc: cp.kc(SA),
      leaseNamespace: 'berth-system',
      identity: 'test-operator',
      probeHost: '127.0.0.1',
      probePort: 0,
      resyncMs: 10_000,
      storageRetryMs: 1_000,
      retryPeriodMs: 500,
      log,
    });
    await eventually(async () => {
      expect(operator.isLeader()).toBe(true);
      const r = await fetch(`http://127.0.0.1:${operator.port}/readyz`);
      expect(r.status).toBe(200);
    });
  });

  let httpSecret: string | undefined;

  it('GIVEN a Registry over MinIO WHEN applied THEN a Deployment, Service, ConfigMap and Secret appear with the expected content and it becomes Ready', async () => {
    await createNamespace(admin, 'team-a');
    await credentials('team-a');
    await kubectlApply(
      admin,
      aRegistry()
        .named('images', 'team-a')
        .withS3({
          endpoint: minio.endpoint,
          bucket: 'team-a-images',
          bucketManagement: 'Managed',
          deletionPolicy: 'Delete',
        })
        .raw() as never,
    );
    const r = await ready('team-a', 'images');
    expect(r.status).toMatchObject({
      replicas: 1,
      readyReplicas: 1,
      endpoint: 'http://images.team-a.svc:5000',
      selector: 'app.kubernetes.io/name=berth,app.kubernetes.io/instance=images',
      storage: { bucket: 'team-a-images', managed: true },
    });
    expect(condition(r, 'StorageReady')).toMatch(/^True\/Bucket(Created|Exists)$/);
    expect(r.metadata.finalizers).toContain('berth.dev/bucket');
    expect(await s3.bucketExists('team-a-images')).toBe(true);

    const cm = await core.readNamespacedConfigMap({ name: 'images-config', namespace: 'team-a' });
    const config = parse(cm.data?.['berth.yaml'] ?? '') as {
      storage: { s3: Record<string, unknown> };
    };
    expect(config.storage.s3).toMatchObject({ endpoint: minio.endpoint, bucket: 'team-a-images' });
    expect(cm.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'Registry',
      name: 'images',
      controller: true,
    });
    const secret = await core.readNamespacedSecret({ name: 'images-secret', namespace: 'team-a' });
    httpSecret = secret.data?.httpSecret;
    expect(Buffer.from(httpSecret ?? '', 'base64').toString()).toMatch(/^[0-9a-f]{64}$/);
    const svc = await core.readNamespacedService({ name: 'images', namespace: 'team-a' });
    expect(svc.spec?.ports?.map((p) => `${p.name}:${p.port}`)).toEqual(['http:5000']);
    const metricsSvc = await core.readNamespacedService({
      name: 'images-metrics',
      namespace: 'team-a',
    });
    expect(metricsSvc.spec?.ports?.map((p) => `${p.name}:${p.port}`)).toEqual(['metrics:5001']);
    const d = await apps.readNamespacedDeployment({ name: 'images', namespace: 'team-a' });
    expect(
      d.metadata?.managedFields?.some(
        (f) => f.manager === 'berth-operator' && f.operation === 'Apply',
      ),
    ).toBe(true);
    expect(d.spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM]).toMatch(/^[0-9a-f]{64}$/);
    expect(await events('team-a', 'images')).toContain('Normal/Ready');
  });

  it('GIVEN the Ready Registry WHEN an image is pushed to and pulled from the pod address with skopeo THEN it round-trips and the blobs are in the bucket', async () => {
    const [pod] = await runningPods('team-a', 'images');
    const ip = pod?.status?.podIP ?? '';
    expect(ip).toMatch(/^10\.244\./);
    const addr = node.resolve(ip, 5000);
    const layout: OciLayout = new OciLayoutBuilder(join(work, 'src'))
      .image('app', {
        platform: { os: 'linux', architecture: 'amd64' },
        files: { 'app/bin': 'x'.repeat(4096) },
        ref: 'v1',
      })
      .write();
    const skopeo = tool('skopeo');
    run(skopeo, [
      'copy',
      '--dest-tls-verify=false',
      `oci:${layout.dir}:v1`,
      `docker://${addr}/team/app:v1`,
    ]);
    run(skopeo, [
      'copy',
      '--src-tls-verify=false',
      `docker://${addr}/team/app:v1`,
      `oci:${join(work, 'out')}:v1`,
    ]);
    const out = readLayout(join(work, 'out'));
    const keys = new Set(await bucketKeys('team-a-images'));
    for (const digest of layout.closure('app')) {
      expect(sha256(out.blob(digest))).toBe(digest);
      const hex = digest.slice('sha256:'.length);
      if (digest !== layout.get('app').digest)
        expect(keys.has(`blobs/sha256/${hex.slice(0, 2)}/${hex}`), digest).toBe(true);
    }
  });

  it('GIVEN a running Registry WHEN its spec changes THEN the config checksum changes and the pods roll to Ready again, keeping the shared secret', async () => {
    const before = await runningPods('team-a', 'images');
    const oldUid = before[0]?.metadata?.uid;
    const oldSum = (await apps.readNamespacedDeployment({ name: 'images', namespace: 'team-a' }))
      .spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM];
    await kubectlApply(
      admin,
      aRegistry()
        .named('images', 'team-a')
        .withS3({
          endpoint: minio.endpoint,
          bucket: 'team-a-images',
          bucketManagement: 'Managed',
          deletionPolicy: 'Delete',
        })
        .with({ logLevel: 'debug' })
        .raw() as never,
    );
    await eventually(async () => {
      const pods = await runningPods('team-a', 'images');
      expect(pods.length).toBe(1);
      expect(pods[0]?.metadata?.uid).not.toBe(oldUid);
    }, 60_000);
    const r = await ready('team-a', 'images');
    expect(r.status?.observedGeneration).toBe(2);
    const d = await apps.readNamespacedDeployment({ name: 'images', namespace: 'team-a' });
    expect(d.spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM]).not.toBe(oldSum);
    const secret = await core.readNamespacedSecret({ name: 'images-secret', namespace: 'team-a' });
    expect(secret.data?.httpSecret).toBe(httpSecret);
  });

  it('GIVEN a Ready Registry WHEN scaled to 2 through the scale subresource THEN two pods run and status reports 2 ready', async () => {
    await custom.patchNamespacedCustomObjectScale(
      {
        group: 'berth.dev',
        version: 'v1alpha1',
        namespace: 'team-a',
        plural: 'registries',
        name: 'images',
        body: { spec: { replicas: 2 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await eventually(async () => {
      const r = await ready('team-a', 'images', 1000);
      expect(r.status?.readyReplicas).toBe(2);
    }, 60_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${await podsReport('team-a')}`);
    });
    const scale = (await custom.getNamespacedCustomObjectScale({
      group: 'berth.dev',
      version: 'v1alpha1',
      namespace: 'team-a',
      plural: 'registries',
      name: 'images',
    })) as {
      spec: { replicas: number };
      status: { replicas: number; selector: string };
    };
    expect(scale.spec.replicas).toBe(2);
    expect(scale.status).toMatchObject({
      replicas: 2,
      selector: 'app.kubernetes.io/name=berth,app.kubernetes.io/instance=images',
    });
    expect((await runningPods('team-a', 'images')).length).toBe(2);
  });

  it('GIVEN a credentials Secret that does not exist WHEN the Registry is applied THEN StorageReady is False with CredentialsMissing and a Warning Event, and creating the Secret recovers it', async () => {
    await createNamespace(admin, 'bad');
    await kubectlApply(
      admin,
      aRegistry()
        .named('nocreds', 'bad')
        .withS3({ endpoint: minio.endpoint, bucket: 'bad-nocreds', bucketManagement: 'Managed' })
        .raw() as never,
    );
    await eventually(async () => {
      const r = await getRegistry(admin, 'bad', 'nocreds');
      expect(condition(r, 'StorageReady')).toBe('False/CredentialsMissing');
      expect(condition(r, 'Degraded')).toBe('True/CredentialsMissing');
      expect(r.status?.conditions?.find((c) => c.type === 'StorageReady')?.message).toBe(
        'Secret bad/minio-creds not found',
      );
      expect(await events('bad', 'nocreds')).toContain('Warning/CredentialsMissing');
    });
    await credentials('bad');
    await ready('bad', 'nocreds');
  });

  it('GIVEN an S3 endpoint nobody listens on WHEN the Registry is applied THEN StorageReady is False with EndpointUnreachable and a Warning Event', async () => {
    await credentials('bad', 'creds2');
    await kubectlApply(
      admin,
      aRegistry()
        .named('unreachable', 'bad')
        .withS3({
          endpoint: 'http://127.0.0.1:1',
          bucket: 'nowhere',
          credentialsSecretRef: { name: 'creds2' } as never,
        })
        .raw() as never,
    );
    await eventually(async () => {
      const r = await getRegistry(admin, 'bad', 'unreachable');
      expect(condition(r, 'StorageReady')).toBe('False/EndpointUnreachable');
      expect(condition(r, 'Ready')).toBe('False/EndpointUnreachable');
      expect(await events('bad', 'unreachable')).toContain('Warning/EndpointUnreachable');
    });
  });

  it('GIVEN configOverrides the server rejects WHEN applied THEN ConfigValid is False with the reason and an Event, the last good Deployment stays, and the operator keeps serving', async () => {
    const before = await apps.readNamespacedDeployment({ name: 'nocreds', namespace: 'bad' });
    await kubectlApply(
      admin,
      aRegistry()
        .named('nocreds', 'bad')
        .withS3({ endpoint: minio.endpoint, bucket: 'bad-nocreds', bucketManagement: 'Managed' })
        .with({ configOverrides: { limits: { maxTagsPerPush: 'lots' } } })
        .raw() as never,
    );
    await eventually(async () => {
      const r = await getRegistry(admin, 'bad', 'nocreds');
      expect(condition(r, 'ConfigValid')).toBe('False/InvalidConfig');
      expect(r.status?.conditions?.find((c) => c.type === 'ConfigValid')?.message).toContain(
        'limits.maxTagsPerPush',
      );
      expect(await events('bad', 'nocreds')).toContain('Warning/InvalidConfig');
    });
    const after = await apps.readNamespacedDeployment({ name: 'nocreds', namespace: 'bad' });
    expect(after.spec?.template.metadata?.annotations).toEqual(
      before.spec?.template.metadata?.annotations,
    );
    expect((await fetch(`http://127.0.0.1:${operator.port}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${operator.port}/metrics`)).text();
    expect(metrics).toMatch(/berth_operator_reconcile_total\{result="success"\} \d+/);
    expect(metrics).toContain('berth_operator_workqueue_depth');
    expect(operator.isLeader()).toBe(true);
  });

  it('GIVEN a field the CRD accepts but the API of the child rejects WHEN applied THEN Degraded and Ready say ApplyFailed with the API message and a Warning Event', async () => {
    await kubectlApply(
      admin,
      aRegistry()
        .named('badingress', 'bad')
        .withS3({ endpoint: minio.endpoint, bucket: 'bad-ingress', bucketManagement: 'Managed' })
        .with({
          ingress: { enabled: true, host: 'reg.example.com', path: '/', className: 'Not_A_Class!' },
        })
        .raw() as never,
    );
    await eventually(async () => {
      const r = await getRegistry(admin, 'bad', 'badingress');
      expect(condition(r, 'Degraded')).toBe('True/ApplyFailed');
      expect(condition(r, 'Ready')).toBe('False/ApplyFailed');
      expect(r.status?.conditions?.find((c) => c.type === 'Degraded')?.message).toContain(
        'ingressClassName',
      );
      expect(await events('bad', 'badingress')).toContain('Warning/ApplyFailed');
    });
    expect((await fetch(`http://127.0.0.1:${operator.port}/healthz`)).status).toBe(200);
  });

  it('GIVEN a ServiceMonitor and a PDB asked for WHEN the spec stops asking THEN both are pruned', async () => {
    await createNamespace(admin, 'team-c');
    await credentials('team-c');
    const reg = () =>
      aRegistry()
        .named('mon', 'team-c')
        .withS3({ endpoint: minio.endpoint, bucket: 'team-c-mon', bucketManagement: 'Managed' });
    await kubectlApply(
      admin,
      reg()
        .with({
          metrics: {
            enabled: true,
            serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prom' } },
          },
        })
        .raw() as never,
    );
    const sm = () =>
      custom.listNamespacedCustomObject({
        group: 'monitoring.coreos.com',
        version: 'v1',
        namespace: 'team-c',
        plural: 'servicemonitors',
      }) as Promise<{
        items: { metadata: { name: string; labels: Record<string, string> } }[];
      }>;
    const pdbs = async () =>
      (
        await admin
          .makeApiClient(PolicyV1Api)
          .listNamespacedPodDisruptionBudget({ namespace: 'team-c' })
      ).items;
    await eventually(async () => {
      expect((await sm()).items.map((i) => i.metadata.labels.release)).toEqual(['prom']);
      expect((await pdbs()).map((p) => p.metadata?.name)).toEqual(['mon']);
    });
    await kubectlApply(
      admin,
      reg()
        .with({ podDisruptionBudget: { enabled: false } })
        .raw() as never,
    );
    await eventually(async () => {
      expect((await sm()).items).toEqual([]);
      expect(await pdbs()).toEqual([]);
    });
    expect(
      log.lines.some((l) => l.includes('child pruned') && l.includes('ServiceMonitor/mon')),
    ).toBe(true);
  });

  it('GIVEN the operator is leading WHEN a second replica starts THEN it stands by without acting, and takes over when the leader stops', async () => {
    const standby = await runOperator({
      kc: cp.kc(SA),
      leaseNamespace: 'berth-system',
      identity: 'standby',
      probeHost: '127.0.0.1',
      probePort: 0,
      resyncMs: 10_000,
      storageRetryMs: 1_000,
      retryPeriodMs: 200,
      log,
    });
    let handedOver = false;
    try {
      await new Promise((r) => setTimeout(r, 1500));
      expect(standby.isLeader()).toBe(false);
      expect(operator.isLeader()).toBe(true);
      expect((await fetch(`http://127.0.0.1:${standby.port}/readyz`)).status).toBe(200);
      // The leader releases the Lease on stop, so the standby need not wait for it to expire.
      await operator.stop();
      await eventually(async () => {
        expect(standby.isLeader()).toBe(true);
        expect((await fetch(`http://127.0.0.1:${standby.port}/readyz`)).status).toBe(200);
      }, 10_000);
      operator = standby;
      handedOver = true;
    } finally {
      if (!handedOver) await standby.stop();
    }
  });

  it('GIVEN the API server restarts WHEN a Registry changes afterwards THEN the operator notices without being restarted', async () => {
    await cp.restartApiServer();
    await custom.patchNamespacedCustomObjectScale(
      {
        group: 'berth.dev',
        version: 'v1alpha1',
        namespace: 'team-a',
        plural: 'registries',
        name: 'images',
        body: { spec: { replicas: 1 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await eventually(async () => {
      const d: V1Deployment = await apps.readNamespacedDeployment({
        name: 'images',
        namespace: 'team-a',
      });
      expect(d.spec?.replicas).toBe(1);
    }, 60_000);
    const r = await ready('team-a', 'images', 60_000);
    expect(r.status?.readyReplicas).toBe(1);
  });

  it('GIVEN a Registry with deletionPolicy Retain WHEN deleted THEN its children are garbage-collected and the bucket stays', async () => {
    await createNamespace(admin, 'team-b');
    await credentials('team-b');
    await s3.makeBucket('team-b-kept');
    await kubectlApply(
      admin,
      aRegistry()
        .named('kept', 'team-b')
        .withS3({ endpoint: minio.endpoint, bucket: 'team-b-kept' })
        .raw() as never,
    );
    await ready('team-b', 'kept');
    await custom.deleteNamespacedCustomObject({
      group: 'berth.dev',
      version: 'v1alpha1',
      namespace: 'team-b',
      plural: 'registries',
      name: 'kept',
    });
    await eventually(async () => {
      const ds = await apps.listNamespacedDeployment({ namespace: 'team-b' });
      expect(ds.items).toEqual([]);
      const cms = await core.listNamespacedConfigMap({
        namespace: 'team-b',
        labelSelector: 'app.kubernetes.io/instance=kept',
      });
      expect(cms.items).toEqual([]);
    }, 90_000); // the garbage collector resyncs slowly after the API-server restart above
    expect(await s3.bucketExists('team-b-kept')).toBe(true);
  });

  it('GIVEN a Managed bucket with deletionPolicy Delete WHEN the Registry is deleted THEN the bucket and its blobs are removed and then the Registry is gone', async () => {
    expect((await bucketKeys('team-a-images')).length).toBeGreaterThan(0);
    await custom.deleteNamespacedCustomObject({
      group: 'berth.dev',
      version: 'v1alpha1',
      namespace: 'team-a',
      plural: 'registries',
      name: 'images',
    });
    await eventually(async () => {
      try {
        await getRegistry(admin, 'team-a', 'images');
      } catch (err) {
        if (apiError(err).includes('not found')) return;
        throw err;
      }
      throw new Error('Registry still present');
    }, 60_000);
    expect(await s3.bucketExists('team-a-images')).toBe(false);
    await eventually(async () => {
      expect((await apps.listNamespacedDeployment({ namespace: 'team-a' })).items).toEqual([]);
    }, 90_000);
  });
});
