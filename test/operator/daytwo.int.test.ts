/**
 * The operator's day 2 on a real control plane (etcd, kube-apiserver, kube-controller-manager),
 * the fake node running real `berth server` processes, and real MinIO: scaling as an HPA does it,
 * rotating referenced Secrets, pausing a Registry, repairing drift and the opt-in NetworkPolicy
 * (stored and validated by the API server; no network plugin enforces it here). The operator runs with
 * the chart's RBAC by impersonating its ServiceAccount.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  NetworkingV1Api,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_CHECKSUM } from '../../operator/desired/meta.js';
import type { Logger } from '../../operator/log.js';
import { runOperator, type RunningOperator } from '../../operator/main.js';
import type { Registry } from '../../operator/types.js';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import { startFakeNode, type FakeNode } from '../support/kubenode.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import { tool } from '../support/tools.js';
import { aRegistry } from './builders.js';
import { condition, createNamespace, eventually, getRegistry, kubectlApply } from './cluster.js';

const SA = 'system:serviceaccount:berth-system:berth';
const CHART = join(import.meta.dirname, '..', '..', 'charts', 'berth');
const NS = 'day2';
/** OPERATOR_IMAGE is what Registries without spec.image run here (the fake node runs any). */
const OPERATOR_IMAGE = 'registry.example/berth:day2';

function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
    if (lines.length > 2000) lines.shift();
  };
  return { lines, debug: () => undefined, info: at('info'), warn: at('warn'), error: at('error') };
}

describe('the operator on day 2, against a real control plane, fake node and MinIO', () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  let minio: MinioServer;
  let node: FakeNode;
  let operator: RunningOperator;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let custom: CustomObjectsApi;
  let policy: PolicyV1Api;
  const log = memoryLog();

  const registry = () =>
    aRegistry()
      .named('images', NS)
      .withS3({ endpoint: minio.endpoint, bucket: 'day2-images', bucketManagement: 'Managed' });

  beforeAll(async () => {
    [cp, minio] = await Promise.all([startControlPlane(), startMinio()]);
    admin = cp.kc();
    core = admin.makeApiClient(CoreV1Api);
    apps = admin.makeApiClient(AppsV1Api);
    custom = admin.makeApiClient(CustomObjectsApi);
    policy = admin.makeApiClient(PolicyV1Api);
    node = await startFakeNode(admin);
    const helm = spawnSync(
      tool('helm'),
      ['install', 'berth', CHART, '-n', 'berth-system', '--create-namespace'].concat([
        '--kubeconfig',
        cp.kubeconfig,
      ]),
      { encoding: 'utf8', timeout: 120_000 },
    );
    if (helm.status !== 0) throw new Error(`helm install failed: ${helm.stderr}`);
    await eventually(() =>
      custom.listClusterCustomObject({
        group: 'berth.dev',
        version: 'v1alpha1',
        plural: 'registries',
      }),
    );
    operator = await runOperator({
      kc: cp.kc(SA),
      leaseNamespace: 'berth-system',
      identity: 'day2-operator',
      probeHost: '127.0.0.1',
      probePort: 0,
      // Long enough that nothing below is repaired by a resync: only watches count.
      resyncMs: 600_000,
      storageRetryMs: 1_000,
      retryPeriodMs: 500,
      operatorImage: OPERATOR_IMAGE,
      log,
    });
    await createNamespace(admin, NS);
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'minio-creds' },
        stringData: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
      },
    });
  }, 180_000);

  afterAll(async () => {
    await operator?.stop();
    await node?.stop();
    await cp?.stop();
    await minio?.stop();
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail')
      process.stderr.write(`operator log (last 40 lines):\n${log.lines.slice(-40).join('\n')}\n`);
  });

  async function ready(ms = 60_000): Promise<Registry> {
    return eventually(async () => {
      const r = await getRegistry(admin, NS, 'images');
      if (
        condition(r, 'Ready') !== 'True/Ready' ||
        condition(r, 'Progressing') !== 'False/RolloutComplete' ||
        r.status?.observedGeneration !== r.metadata.generation
      )
        throw new Error(`not ready: ${JSON.stringify(r.status?.conditions)}`);
      return r;
    }, ms);
  }

  const checksumNow = async (): Promise<string | undefined> =>
    (await apps.readNamespacedDeployment({ name: 'images', namespace: NS })).spec?.template.metadata
      ?.annotations?.[CONFIG_CHECKSUM];

  async function warnings(): Promise<string[]> {
    const list = await admin.makeApiClient(EventsV1Api).listNamespacedEvent({ namespace: NS });
    return list.items
      .filter((e) => e.regarding?.name === 'images' && e.type === 'Warning')
      .map((e) => `${e.reason}: ${e.note}`);
  }

  it('GIVEN a Ready Registry WHEN an HPA-like client scales it 1 → 3 through the scale subresource THEN Ready never turns False, no Warning Event fires, and status reports 3 ready and the image the pods run', async () => {
    await kubectlApply(admin, registry().raw() as never);
    const first = await ready();
    // No spec.image: the pods run the operator's image, and status says what they run.
    expect(first.spec.image).toBeUndefined();
    expect(first.status?.image).toBe(OPERATOR_IMAGE);
    const warningsBefore = await warnings();

    await custom.patchNamespacedCustomObjectScale(
      {
        group: 'berth.dev',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'registries',
        name: 'images',
        body: { spec: { replicas: 3 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const seen = new Set<string>();
    const r = await eventually(
      async () => {
        const now = await getRegistry(admin, NS, 'images');
        seen.add(condition(now, 'Ready'));
        seen.add(`Available ${condition(now, 'Available')}`);
        if (
          now.status?.readyReplicas !== 3 ||
          condition(now, 'Progressing') !== 'False/RolloutComplete'
        )
          throw new Error(`not scaled: ${JSON.stringify(now.status)}`);
        return now;
      },
      90_000,
      100,
    );
    expect([...seen].sort()).toEqual(['Available True/MinimumReplicasAvailable', 'True/Ready']);
    expect(r.status?.replicas).toBe(3);
    expect(r.status?.image).toBe(OPERATOR_IMAGE);
    expect(await warnings()).toEqual(warningsBefore);
    const d = await apps.readNamespacedDeployment({ name: 'images', namespace: NS });
    const c = d.spec?.template.spec?.containers[0];
    expect(c?.resources?.requests).toMatchObject({ cpu: '100m', memory: '256Mi' });
    expect(d.spec?.template.spec?.topologySpreadConstraints?.map((t) => t.topologyKey)).toEqual([
      'kubernetes.io/hostname',
      'topology.kubernetes.io/zone',
    ]);
  });

  it('GIVEN a Ready Registry WHEN its S3 credentials Secret is rotated THEN the pod-template checksum changes within seconds (a watch, not the resync), and rotating back restores it', async () => {
    await ready();
    const before = await checksumNow();
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    const rotate = (secretAccessKey: string) =>
      core.replaceNamespacedSecret({
        name: 'minio-creds',
        namespace: NS,
        body: {
          metadata: { name: 'minio-creds' },
          stringData: { accessKeyId: minio.accessKey, secretAccessKey },
        },
      });
    await rotate(`${minio.secretKey}-rotated`);
    const rotated = await eventually(async () => {
      const now = await checksumNow();
      if (now === before) throw new Error('checksum unchanged');
      return now;
    }, 15_000);
    expect(rotated).toMatch(/^[0-9a-f]{64}$/);
    await rotate(minio.secretKey);
    await eventually(async () => expect(await checksumNow()).toBe(before), 15_000);
    await ready(90_000);
  });

  const pdb = async (): Promise<string | undefined> => {
    try {
      return (await policy.readNamespacedPodDisruptionBudget({ name: 'images', namespace: NS }))
        .metadata?.uid;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  };

  it('GIVEN a Ready Registry WHEN its PDB is deleted by hand THEN a new one is back within seconds (a watch, not the 10-minute resync)', async () => {
    await ready();
    const before = await pdb();
    expect(before).toBeDefined();
    await policy.deleteNamespacedPodDisruptionBudget({ name: 'images', namespace: NS });
    await eventually(async () => {
      const now = await pdb();
      if (now === undefined || now === before) throw new Error('PDB not recreated');
    }, 15_000);
  });

  it('GIVEN a Registry set Unmanaged WHEN its spec changes and its PDB is deleted THEN nothing is applied or repaired and Managed is False; set Managed again THEN both are caught up', async () => {
    const sum = await checksumNow();
    await kubectlApply(
      admin,
      registry().with({ managementState: 'Unmanaged', logLevel: 'debug' }).raw() as never,
    );
    await eventually(async () => {
      const r = await getRegistry(admin, NS, 'images');
      expect(condition(r, 'Managed')).toBe('False/Unmanaged');
      expect(r.status?.observedGeneration).toBe(r.metadata.generation);
    }, 15_000);
    await policy.deleteNamespacedPodDisruptionBudget({ name: 'images', namespace: NS });
    // Absence cannot be awaited: give the watch the time it took to repair it above.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await pdb()).toBeUndefined();
    expect(await checksumNow()).toBe(sum);

    await kubectlApply(admin, registry().with({ logLevel: 'debug' }).raw() as never);
    await eventually(async () => {
      const r = await getRegistry(admin, NS, 'images');
      expect(condition(r, 'Managed')).toBe('True/Managed');
      expect(await pdb()).toBeDefined();
      expect(await checksumNow()).not.toBe(sum);
    }, 15_000);
  });

  const networkPolicy = async () => {
    try {
      return await admin
        .makeApiClient(NetworkingV1Api)
        .readNamespacedNetworkPolicy({ name: 'images', namespace: NS });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  };

  it('GIVEN a Ready Registry WHEN spec.networkPolicy is enabled THEN the API server holds a NetworkPolicy admitting the own and listed namespaces and a CIDR on the registry port and monitoring on the debug port, and only its own pods on the peer port, and the Registry stays Ready; deleted by hand THEN it is back within seconds; disabled THEN it is pruned', async () => {
    await ready();
    expect(await networkPolicy()).toBeUndefined();
    const withPolicy = (enabled: boolean) =>
      registry()
        .with({
          logLevel: 'debug',
          networkPolicy: {
            enabled,
            registry: { namespaces: ['ci', 'apps'], ipBlocks: ['10.0.0.0/16'] },
          },
        })
        .raw() as never;
    await kubectlApply(admin, withPolicy(true));
    const np = await eventually(async () => {
      const now = await networkPolicy();
      if (!now) throw new Error('no NetworkPolicy');
      return now;
    }, 15_000);
    expect(np.metadata?.ownerReferences?.[0]?.kind).toBe('Registry');
    expect(np.spec?.podSelector?.matchLabels).toEqual({
      'app.kubernetes.io/name': 'berth',
      'app.kubernetes.io/instance': 'images',
    });
    expect(np.spec?.policyTypes).toEqual(['Ingress']);
    const rules = (np.spec?.ingress ?? []).map((rule) => ({
      port: rule.ports?.[0]?.port,
      from: rule._from,
    }));
    expect(rules).toEqual([
      {
        port: 5000,
        from: [
          {
            namespaceSelector: {
              matchExpressions: [
                {
                  key: 'kubernetes.io/metadata.name',
                  operator: 'In',
                  values: ['apps', 'ci', NS],
                },
              ],
            },
          },
          { ipBlock: { cidr: '10.0.0.0/16' } },
        ],
      },
      {
        port: 5001,
        from: [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
        ],
      },
      // Tag invalidations between the Registry's own pods (peerInvalidation, on by default).
      {
        port: 5002,
        from: [
          {
            podSelector: {
              matchLabels: {
                'app.kubernetes.io/name': 'berth',
                'app.kubernetes.io/instance': 'images',
              },
            },
          },
        ],
      },
    ]);
    await ready();

    const uid = np.metadata?.uid;
    await admin
      .makeApiClient(NetworkingV1Api)
      .deleteNamespacedNetworkPolicy({ name: 'images', namespace: NS });
    await eventually(async () => {
      const now = await networkPolicy();
      if (!now || now.metadata?.uid === uid) throw new Error('NetworkPolicy not recreated');
    }, 15_000);

    await kubectlApply(admin, withPolicy(false));
    await eventually(async () => {
      if (await networkPolicy()) throw new Error('NetworkPolicy not pruned');
    }, 15_000);
    await ready();
  });
});
