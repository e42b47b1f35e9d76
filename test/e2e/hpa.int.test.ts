/**
 * A real HorizontalPodAutoscaler scaling a Registry on a real node (issue 16): metrics-server
 * (test/support/metrics-server.ts) scrapes the kubelet and serves `v1beta1.metrics.k8s.io`
 * through the API server's aggregation layer; kube-controller-manager's HPA controller (5 s sync,
 * kube.ts) reads the Registry pods' CPU through the Registry's scale subresource
 * (`status.selector`) and writes `spec.replicas` through `/scale`. Requests from the host drive
 * the pods' CPU over their request; the operator rolls out the pods while Ready stays True, and
 * once the load stops the HPA scales back down after its short stabilization window.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AutoscalingV2Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { condition, eventually, getRegistry, kubectlApply } from '../operator/cluster.js';
import { startMetricsServer, type MetricsServer } from '../support/metrics-server.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import { NODE_NET, startRealCluster, type RealCluster } from '../support/realnode.js';
import { tool } from '../support/tools.js';

const ROOT = join(import.meta.dirname, '..', '..');
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
const IMAGE = `ghcr.io/berth-dev/berth:${VERSION}`;
const NS = 'autoscale';
const NAME = 'busy';
const MAX = 3;
/** TARGET is the HPA's CPU utilization target, in percent of the pods' request. */
const TARGET = 60;

function run(cmd: string, args: string[], timeout = 600_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, cwd: ROOT });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`,
    );
  return r.stdout;
}

describe('a HorizontalPodAutoscaler scaling a Registry on a real node', () => {
  let cluster: RealCluster;
  let metrics: MetricsServer;
  let minio: MinioServer;
  let core: CoreV1Api;
  let hpa: AutoscalingV2Api;
  let work: string;

  const reg = () => getRegistry(cluster.cp.kc(), NS, NAME);
  const pods = async (): Promise<V1Pod[]> =>
    (
      await core.listNamespacedPod({
        namespace: NS,
        labelSelector: `app.kubernetes.io/instance=${NAME},app.kubernetes.io/name=berth`,
      })
    ).items;
  const address = async (): Promise<string> => {
    const svc = await core.readNamespacedService({ name: NAME, namespace: NS });
    return `${svc.spec?.clusterIP}:${svc.spec?.ports?.[0]?.port}`;
  };
  const describeAll = async (): Promise<string> => {
    const h = await hpa
      .readNamespacedHorizontalPodAutoscaler({ name: NAME, namespace: NS })
      .catch((e: Error) => e.message);
    const r = await reg();
    return `hpa ${JSON.stringify(typeof h === 'string' ? h : h.status)}\nregistry spec.replicas ${r.spec.replicas} status ${JSON.stringify(r.status)}\n${cluster.cp.logs('kube-controller-manager').slice(-3000)}\n${metrics.proc.out.join('').slice(-2000)}`;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'berth-hpa-'));
    run('npm', ['run', 'build', '--silent']);
    const built = JSON.parse(
      run(process.execPath, [
        join(ROOT, 'dist', 'server', 'cli.js'),
        'image',
        'build',
        '--out',
        join(work, 'layout'),
        '--archive',
        join(work, 'berth.oci.tar'),
      ]).trim(),
    ) as { reference: string };
    expect(built.reference).toBe(IMAGE);

    cluster = await startRealCluster();
    metrics = await startMetricsServer(cluster);
    const kc = cluster.cp.kc();
    core = kc.makeApiClient(CoreV1Api);
    hpa = kc.makeApiClient(AutoscalingV2Api);
    minio = await startMinio({ host: NODE_NET.address });
    cluster.node.importImage(join(work, 'berth.oci.tar'));
    run(tool('helm'), [
      'install',
      'berth',
      join(ROOT, 'charts', 'berth'),
      '--namespace',
      'berth-system',
      '--create-namespace',
      '--kubeconfig',
      cluster.cp.kubeconfig,
      '--wait',
      '--timeout',
      '5m',
    ]);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'minio' },
        stringData: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
      },
    });
    await kubectlApply(cluster.cp.kc(), {
      apiVersion: 'berth.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: NAME, namespace: NS },
      spec: {
        replicas: 1,
        // A small request: idle stays under the target, a few hundred requests a second do not.
        resources: { requests: { cpu: '50m' } },
        storage: {
          s3: {
            endpoint: minio.endpoint,
            bucket: NAME,
            credentialsSecretRef: { name: 'minio' },
            bucketManagement: 'Managed',
          },
        },
      },
    });
    await eventually(
      async () => {
        const r = await reg();
        if (!condition(r, 'Ready').startsWith('True') || r.status?.readyReplicas !== 1)
          throw new Error(`Registry not Ready: ${JSON.stringify(r.status)}`);
      },
      240_000,
      1000,
    );
  }, 1_200_000);

  afterAll(async () => {
    await metrics?.stop();
    await cluster?.stop();
    await minio?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('GIVEN an autoscaling/v2 HPA on CPU utilization targeting the Registry WHEN requests drive its pod over the target THEN the HPA raises spec.replicas through /scale, the operator runs the pods, Ready stays True, and after the load it scales back to 1', async () => {
    await hpa.createNamespacedHorizontalPodAutoscaler({
      namespace: NS,
      body: {
        metadata: { name: NAME },
        spec: {
          scaleTargetRef: { apiVersion: 'berth.dev/v1alpha1', kind: 'Registry', name: NAME },
          minReplicas: 1,
          maxReplicas: MAX,
          metrics: [
            {
              type: 'Resource',
              resource: {
                name: 'cpu',
                target: { type: 'Utilization', averageUtilization: TARGET },
              },
            },
          ],
          behavior: {
            scaleUp: {
              stabilizationWindowSeconds: 0,
              policies: [{ type: 'Pods', value: MAX, periodSeconds: 15 }],
            },
            scaleDown: {
              stabilizationWindowSeconds: 10,
              policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }],
            },
          },
        },
      },
    });
    // The HPA reads the idle pod's CPU through metrics-server, under the target, before any load.
    await eventually(
      async () => {
        const h = await hpa.readNamespacedHorizontalPodAutoscaler({ name: NAME, namespace: NS });
        const cpu = h.status?.currentMetrics?.[0]?.resource?.current.averageUtilization;
        const r = await reg();
        if (cpu === undefined || cpu >= TARGET || r.spec.replicas !== 1)
          throw new Error(`no idle CPU metric yet (${cpu})\n${await describeAll()}`);
      },
      150_000,
      2000,
    );

    // Load: 16 clients in a loop against the Service, through kube-proxy.
    let loading = true;
    let requests = 0;
    const failures: string[] = [];
    const target = await address();
    const clients = Array.from({ length: 16 }, async () => {
      while (loading) {
        try {
          const res = await fetch(`http://${target}/v2/_catalog`, {
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer();
          requests++;
          if (res.status !== 200) failures.push(String(res.status));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    });
    // Ready is sampled every second from the load's start until the pods settle back to 1.
    const notReady: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await reg().catch(() => undefined);
        if (r && !condition(r, 'Ready').startsWith('True'))
          notReady.push(`${new Date().toISOString()} ${condition(r, 'Ready')}`);
        await new Promise((res) => setTimeout(res, 1000));
      }
    })();
    const loadStart = Date.now();
    let peak = 0;
    try {
      await eventually(
        async () => {
          const r = await reg();
          const now = await hpa.readNamespacedHorizontalPodAutoscaler({
            name: NAME,
            namespace: NS,
          });
          const cpu = now.status?.currentMetrics?.[0]?.resource?.current.averageUtilization ?? 0;
          peak = Math.max(peak, cpu);
          const ps = (await pods()).filter((p) => p.status?.containerStatuses?.[0]?.ready === true);
          if ((r.spec.replicas ?? 1) < 2 || r.status?.readyReplicas !== r.spec.replicas)
            throw new Error(`not scaled up: ${ps.length} ready\n${await describeAll()}`);
          if (ps.length !== r.spec.replicas) throw new Error(`${ps.length} ready pods`);
        },
        180_000,
        2000,
      );
    } catch (err) {
      sampling = false;
      throw err;
    } finally {
      loading = false;
      await Promise.all(clients);
    }
    const scaledUp = Date.now() - loadStart;
    const up = await reg();
    // The HPA wrote spec.replicas, through the scale subresource.
    const writers = (
      (up.metadata as { managedFields?: { manager?: string; subresource?: string }[] })
        .managedFields ?? []
    ).filter((f) => f.subresource === 'scale');
    expect(writers.map((f) => f.manager)).toContain('kube-controller-manager');
    expect(up.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(up.spec.replicas).toBeLessThanOrEqual(MAX);
    const h = await hpa.readNamespacedHorizontalPodAutoscaler({ name: NAME, namespace: NS });
    expect(h.status?.desiredReplicas).toBeGreaterThanOrEqual(2);
    expect(requests).toBeGreaterThan(100);
    expect(failures).toEqual([]);

    // No load: the HPA scales back to minReplicas after its 10 s window.
    const loadEnd = Date.now();
    await eventually(
      async () => {
        const r = await reg();
        const ps = await pods();
        if (r.spec.replicas !== 1 || ps.length !== 1 || r.status?.readyReplicas !== 1)
          throw new Error(`not scaled down: ${ps.length} pods\n${await describeAll()}`);
      },
      180_000,
      2000,
    ).finally(() => {
      sampling = false;
    });
    await sampler;
    console.log(
      `hpa: ${requests} requests, peak CPU ${peak}% of request, scaled to ${up.spec.replicas} in ${scaledUp} ms, back to 1 in ${Date.now() - loadEnd} ms`,
    );
    expect(notReady).toEqual([]);
    expect(condition(await reg(), 'Ready')).toMatch(/^True/);
  });
});
