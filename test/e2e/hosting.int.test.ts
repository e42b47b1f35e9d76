/**
 * In-cluster image hosting end to end (issue 20), on a real node: the Berth image built by the
 * project is loaded into containerd, the chart installs the operator as a pod from it, a
 * Registry with node access becomes Ready through real kubelet probes, a client pushes through
 * the Registry's Service, another namespace's Deployment pulls through the node's containerd,
 * Berth then rolls onto a copy of itself pulled from itself while a client keeps pulling, a bad
 * image is reported within a minute, a pod pulls an upstream's image through the Registry as
 * its containerd mirror, and scaling and deletion leave nothing behind.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { Client as MinioClient } from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Registry } from '../../operator/types.js';
import { condition, eventually, getRegistry, kubectlApply } from '../operator/cluster.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import {
  binaryImageArchive,
  NODE_NET,
  startRealCluster,
  type RealCluster,
} from '../support/realnode.js';
import { Client, image } from '../support/image.js';
import { tool } from '../support/tools.js';
import { startDistribution } from '../support/upstream.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'charts', 'berth');
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
/** DEFAULT_IMAGE is the chart's default image: what `helm install` runs without --set. */
const DEFAULT_IMAGE = `ghcr.io/berth-dev/berth:${VERSION}`;
const NS = 'hosting';
const NODE_PORT = 30500;
/** NODE_ADDRESS is what the node's containerd uses for the Registry (nodeAccess NodePort mode). */
const NODE_ADDRESS = `localhost:${NODE_PORT}`;
/** PUSH is the same Service reached from this host through kube-proxy's NodePort. */
const PUSH = `127.0.0.1:${NODE_PORT}`;

function run(cmd: string, args: string[], timeout = 600_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, cwd: ROOT });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`,
    );
  return r.stdout;
}

function skopeoCopy(from: string, to: string): void {
  run(tool('skopeo'), [
    'copy',
    '--dest-tls-verify=false',
    '--src-tls-verify=false',
    '--retry-times=2',
    from,
    to,
  ]);
}

interface BerthEvent {
  action: string;
  target: { repository: string; digest: string; tag?: string; mediaType?: string };
  request: { useragent?: string };
}

async function events(): Promise<BerthEvent[]> {
  const out: BerthEvent[] = [];
  let url: string | undefined = `http://${PUSH}/v2/_berth/events?n=1000`;
  while (url) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`events: ${res.status}`);
    out.push(...((await res.json()) as { events: BerthEvent[] }).events);
    const link = res.headers.get('link')?.match(/<([^>]+)>/)?.[1];
    url = link ? new URL(link, `http://${PUSH}`).toString() : undefined;
  }
  return out;
}

interface BuiltImage {
  reference: string;
  digest: string;
  layout: string;
  archive: string;
}

/** buildImage runs `berth image build` (after `npm run build`) into `dir`. */
function buildImage(dir: string, extra: string[] = []): BuiltImage {
  return JSON.parse(
    run(process.execPath, [
      join(ROOT, 'dist', 'server', 'cli.js'),
      'image',
      'build',
      '--out',
      join(dir, 'layout'),
      '--archive',
      join(dir, 'berth.oci.tar'),
      ...extra,
    ]).trim(),
  ) as BuiltImage;
}

describe('in-cluster image hosting on a real node', () => {
  let cluster: RealCluster;
  let minio: MinioServer;
  let s3: MinioClient;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let custom: CustomObjectsApi;
  let work: string;

  const registryRaw = (image: string) => ({
    apiVersion: 'berth.dev/v1alpha1',
    kind: 'Registry',
    metadata: { name: 'images', namespace: NS },
    spec: {
      image,
      replicas: 1,
      storage: {
        s3: {
          endpoint: minio.endpoint,
          bucket: 'hosted',
          credentialsSecretRef: { name: 'minio' },
          bucketManagement: 'Managed',
          deletionPolicy: 'Delete',
        },
      },
      nodeAccess: {
        enabled: true,
        mode: 'NodePort',
        nodePort: NODE_PORT,
        containerd: { configPath: cluster.node.hostsDir },
      },
    },
  });

  const patchRegistry = async (spec: Record<string, unknown>): Promise<void> => {
    await custom.patchNamespacedCustomObject(
      {
        group: 'berth.dev',
        version: 'v1alpha1',
        namespace: NS,
        plural: 'registries',
        name: 'images',
        body: { spec },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  };

  /**
   * expectNodeConfigSteady checks the Registry's node-access pod on the node: never restarted,
   * and its process well below the container's 96 MiB limit (it once sat at 85 MiB, and an
   * OOM kill left a node unconfigured for minutes in CrashLoopBackOff).
   */
  const expectNodeConfigSteady = async (instance: string): Promise<void> => {
    const { items } = await core.listNamespacedPod({
      namespace: NS,
      labelSelector: `app.kubernetes.io/name=berth-node-access,app.kubernetes.io/instance=${instance}`,
    });
    expect(items).toHaveLength(1);
    const pod = items[0]!;
    expect(pod.status?.containerStatuses?.[0]?.restartCount).toBe(0);
    const pid = cluster.node.processOf(pod.metadata!.name!, 'node-config');
    expect(pid).toBeDefined();
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    expect(Number(hwm?.[1])).toBeLessThan(64 * 1024);
  };

  const deleteRegistry = async (name: string): Promise<void> => {
    await custom.deleteNamespacedCustomObject({
      group: 'berth.dev',
      version: 'v1alpha1',
      namespace: NS,
      plural: 'registries',
      name,
    });
  };

  const registryPods = async (): Promise<V1Pod[]> =>
    (
      await core.listNamespacedPod({
        namespace: NS,
        labelSelector: 'app.kubernetes.io/instance=images,app.kubernetes.io/name=berth',
      })
    ).items;

  const diagnose = async (): Promise<string> => {
    const pods = await core.listPodForAllNamespaces().catch(() => ({ items: [] as V1Pod[] }));
    return [
      ...pods.items.map(
        (p) =>
          `${p.metadata?.namespace}/${p.metadata?.name} ${p.status?.phase} ${JSON.stringify(p.status?.containerStatuses?.map((c) => c.state))}`,
      ),
      cluster.node.logs('kubelet').slice(-3000),
    ].join('\n');
  };

  /**
   * keepDiagnostics writes what explains a namespace's pods not becoming Ready (their status,
   * the namespace's Events, the containers' logs, the kubelet's and API server's recent output)
   * to a file that outlives the node's temp dir, and returns its path with the pods' status.
   */
  const keepDiagnostics = async (namespace: string): Promise<string> => {
    const pods = await core
      .listNamespacedPod({ namespace })
      .catch(() => ({ items: [] as V1Pod[] }));
    const status = pods.items.map(
      (p) =>
        `${p.metadata?.name} ${p.status?.phase} conditions=${JSON.stringify(p.status?.conditions)} containers=${JSON.stringify(p.status?.containerStatuses)}`,
    );
    const events = await core
      .listNamespacedEvent({ namespace })
      .then((l) => l.items)
      .catch(() => []);
    const file = join(tmpdir(), `berth-hosting-diagnostics-${Date.now()}.txt`);
    writeFileSync(
      file,
      [
        '=== pods',
        ...status,
        '=== events',
        ...events.map(
          (e) =>
            `${e.lastTimestamp?.toISOString() ?? ''} ${e.type} ${e.reason} ${e.involvedObject.kind}/${e.involvedObject.name}: ${e.message}`,
        ),
        '=== container logs',
        cluster.node.podLogs(namespace),
        '=== kubelet',
        cluster.node.logs('kubelet').slice(-20_000),
        '=== kube-apiserver',
        cluster.cp.logs('kube-apiserver').slice(-10_000),
      ].join('\n'),
    );
    return `diagnostics kept in ${file}\n${status.join('\n')}`;
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'berth-hosting-'));
    cluster = await startRealCluster();
    const kc = cluster.cp.kc();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);
    minio = await startMinio({ host: NODE_NET.address });
    s3 = new MinioClient({
      endPoint: NODE_NET.address,
      port: minio.port,
      useSSL: false,
      accessKey: minio.accessKey,
      secretKey: minio.secretKey,
    });

    // The image, as a user without Docker builds it: `npm run image`, then loaded like `kind load`.
    run('npm', ['run', 'build', '--silent']);
    const built = buildImage(join(work, 'default'));
    expect(built.reference).toBe(DEFAULT_IMAGE);
    cluster.node.importImage(built.archive);

    try {
      run(tool('helm'), [
        'install',
        'berth',
        CHART,
        '--namespace',
        'berth-system',
        '--create-namespace',
        '--kubeconfig',
        cluster.cp.kubeconfig,
        '--wait',
        '--timeout',
        '5m',
      ]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await keepDiagnostics('berth-system')}`, {
        cause: err,
      });
    }
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'minio' },
        stringData: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
      },
    });
  }, 1_200_000);

  afterAll(async () => {
    await cluster?.stop();
    await minio?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('GIVEN helm install with the default values WHEN the operator pod starts from the built image THEN it runs as non-root and is Ready', async () => {
    const pods = await core.listNamespacedPod({
      namespace: 'berth-system',
      labelSelector: 'app.kubernetes.io/name=berth-operator',
    });
    const pod = pods.items[0];
    expect(pod?.spec?.containers[0]?.image).toBe(DEFAULT_IMAGE);
    expect(pod?.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    const pid = cluster.node.processOf(pod!.metadata!.name!, 'operator');
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\s+65532\s/m);
  });

  it('GIVEN a Registry with node access WHEN applied THEN it becomes Ready through the kubelet probes, runs non-root on a read-only root, and the node is configured', async () => {
    await kubectlApply(cluster.cp.kc(), registryRaw(DEFAULT_IMAGE));
    const reg = await eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, 'images');
        if (condition(r, 'Ready') !== 'True/Ready' && !condition(r, 'Ready').startsWith('True'))
          throw new Error(`Registry not Ready: ${JSON.stringify(r.status)}\n${await diagnose()}`);
        return r;
      },
      240_000,
      1000,
    );
    expect(reg.status?.readyReplicas).toBe(1);
    expect((reg.status as { nodeAddress?: string }).nodeAddress).toBe(NODE_ADDRESS);
    const [pod] = await registryPods();
    expect(pod?.status?.containerStatuses?.[0]?.ready).toBe(true);
    const pid = cluster.node.processOf(pod!.metadata!.name!, 'berth');
    expect(pid).toBeDefined();
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^Uid:\s+65532\s/m);
    const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === '/');
    expect(root?.split(' ')[5]).toMatch(/^ro\b/);
    const hosts = join(cluster.node.hostsDir, NODE_ADDRESS, 'hosts.toml');
    await eventually(async () => {
      if (!existsSync(hosts)) throw new Error(`${hosts} not written`);
    }, 60_000);
    expect(readFileSync(hosts, 'utf8')).toContain(`http://${NODE_ADDRESS}`);
    expect(await s3.bucketExists('hosted')).toBe(true);
    await expectNodeConfigSteady('images');
  });

  it('GIVEN an image pushed through the Service WHEN a Deployment in another namespace uses it THEN the node pulls it from the Registry into an empty store and runs it', async () => {
    const app = binaryImageArchive(work, {
      name: 'hello',
      ref: 'example.test/hello:v1',
      binary: tool('berth-pause'),
    });
    skopeoCopy(`oci-archive:${app}`, `docker://${PUSH}/apps/hello:v1`);
    const ref = `${NODE_ADDRESS}/apps/hello:v1`;
    expect(cluster.node.images()).not.toContain(ref);

    await core.createNamespace({ body: { metadata: { name: 'apps' } } });
    await apps.createNamespacedDeployment({
      namespace: 'apps',
      body: {
        metadata: { name: 'hello' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'hello' } },
          template: {
            metadata: { labels: { app: 'hello' } },
            spec: {
              containers: [
                {
                  name: 'hello',
                  image: ref,
                  imagePullPolicy: 'Always',
                  securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false },
                },
              ],
            },
          },
        },
      },
    });
    await eventually(
      async () => {
        const d = await apps.readNamespacedDeployment({ name: 'hello', namespace: 'apps' });
        if (d.status?.readyReplicas !== 1) throw new Error(`hello not ready\n${await diagnose()}`);
      },
      180_000,
      1000,
    );
    expect(cluster.node.images()).toContain(ref);
    // Berth saw the node's containerd pull the manifest.
    await eventually(async () => {
      const pulls = (await events()).filter(
        (e) =>
          e.action === 'pull' &&
          e.target.repository === 'apps/hello' &&
          (e.request.useragent ?? '').includes('containerd'),
      );
      if (pulls.length === 0) throw new Error('no pull event from containerd');
    }, 30_000);
  });

  it('GIVEN the Berth image pushed into the Registry WHEN spec.image is changed to that copy THEN the pods roll onto it, pulled from Berth itself, with no failed request from a client pulling throughout', async () => {
    // A build of another date shares no layer with the image the node already has, so the
    // roll must pull every byte of Berth from Berth. It is pushed with Berth's own client.
    const copy = buildImage(join(work, 'self'), ['--source-date-epoch', '86400']);
    const pushed = JSON.parse(
      run(process.execPath, [
        join(ROOT, 'dist', 'server', 'cli.js'),
        'image',
        'push',
        '--layout',
        copy.layout,
        '--plain-http',
        `${PUSH}/berth/berth:${VERSION}`,
      ]).trim(),
    ) as { digest: string };
    expect(pushed.digest).toBe(copy.digest);
    const copyManifest = JSON.parse(
      readFileSync(join(copy.layout, 'blobs', 'sha256', copy.digest.slice(7)), 'utf8'),
    ) as { layers: { digest: string }[] };
    const self = `${NODE_ADDRESS}/berth/berth:${VERSION}`;
    expect(cluster.node.images()).not.toContain(self);
    const manifest = await fetch(`http://${PUSH}/v2/apps/hello/manifests/v1`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    const body = (await manifest.json()) as { layers: { digest: string }[] };
    const layer = body.layers[0]!.digest;

    let stop = false;
    const failures: string[] = [];
    let requests = 0;
    const loop = (async () => {
      while (!stop) {
        for (const path of ['/v2/apps/hello/manifests/v1', `/v2/apps/hello/blobs/${layer}`]) {
          try {
            const res = await fetch(`http://${PUSH}${path}`, {
              headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
              signal: AbortSignal.timeout(10_000),
            });
            await res.arrayBuffer();
            requests++;
            if (res.status !== 200) failures.push(`${path}: ${res.status}`);
          } catch (err) {
            failures.push(`${path}: ${(err as Error).message}`);
          }
        }
      }
    })();

    const before = (await registryPods()).map((p) => p.metadata?.name);
    await patchRegistry({ image: self });
    await eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, 'images');
        const pods = await registryPods();
        const names = pods.map((p) => p.metadata?.name);
        const rolled =
          r.status?.image === self &&
          condition(r, 'Ready').startsWith('True') &&
          pods.length === 1 &&
          !names.some((n) => before.includes(n)) &&
          pods.every((p) => p.spec?.containers[0]?.image === self);
        if (!rolled)
          throw new Error(`not rolled: ${JSON.stringify(r.status)}\n${await diagnose()}`);
      },
      300_000,
      1000,
    );
    // A few more seconds of pulls against the new pod only.
    await new Promise((r) => setTimeout(r, 3000));
    stop = true;
    await loop;
    expect(failures).toEqual([]);
    expect(requests).toBeGreaterThan(20);
    expect(cluster.node.images()).toContain(self);
    // The node's containerd fetched the manifest and every layer from Berth.
    const pulled = (await events())
      .filter(
        (e) =>
          e.action === 'pull' &&
          e.target.repository === 'berth/berth' &&
          (e.request.useragent ?? '').includes('containerd'),
      )
      .map((e) => e.target.digest);
    expect(pulled).toContain(copy.digest);
    for (const l of copyManifest.layers) expect(pulled).toContain(l.digest);
  });

  it('GIVEN an image reference that cannot be pulled WHEN set THEN the Registry reports it in its status and an Event within a minute while the old pod keeps serving', async () => {
    const bad = `${NODE_ADDRESS}/berth/missing:0`;
    const start = Date.now();
    await patchRegistry({ image: bad });
    const reg = await eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, 'images');
        const d = r.status?.conditions?.find((c) => c.type === 'Degraded');
        if (d?.status !== 'True' || !/image/i.test(d.reason ?? ''))
          throw new Error(`not degraded: ${JSON.stringify(r.status?.conditions)}`);
        return r;
      },
      60_000,
      1000,
    );
    expect(Date.now() - start).toBeLessThan(60_000);
    const degraded = reg.status?.conditions?.find((c) => c.type === 'Degraded');
    expect(degraded?.message).toContain('spec.image');
    expect(degraded?.message).toContain('berth/missing');
    // The kubelet's own words about the failed pull are carried through.
    const waiting = (await registryPods())
      .flatMap((p) => p.status?.containerStatuses ?? [])
      .map((c) => c.state?.waiting)
      .find((w) => w?.reason === 'ErrImagePull' || w?.reason === 'ImagePullBackOff');
    expect(waiting?.message).toBeDefined();
    expect(degraded?.message).toMatch(/pull/i);
    const evs = await cluster.cp
      .kc()
      .makeApiClient(EventsV1Api)
      .listNamespacedEvent({ namespace: NS });
    expect(
      evs.items.some(
        (e) =>
          e.regarding?.kind === 'Registry' && e.type === 'Warning' && /image/i.test(e.reason ?? ''),
      ),
    ).toBe(true);
    expect((await fetch(`http://${PUSH}/v2/`)).status).toBe(200);
    await patchRegistry({ image: `${NODE_ADDRESS}/berth/berth:${VERSION}` });
    await eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, 'images');
        if (
          !condition(r, 'Ready').startsWith('True') ||
          condition(r, 'Degraded').startsWith('True')
        )
          throw new Error(`not recovered: ${JSON.stringify(r.status?.conditions)}`);
      },
      180_000,
      1000,
    );
  });

  it('GIVEN a second Registry asking for a node port already taken WHEN applied THEN its status names spec.nodeAccess.nodePort', async () => {
    const raw = registryRaw(`${NODE_ADDRESS}/berth/berth:${VERSION}`);
    raw.metadata.name = 'clash';
    raw.spec.storage.s3.bucket = 'clash';
    await kubectlApply(cluster.cp.kc(), raw);
    await eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, 'clash');
        const msgs = (r.status?.conditions ?? []).map((c) => `${c.status} ${c.message}`).join('\n');
        if (!/spec\.nodeAccess\.nodePort/.test(msgs)) throw new Error(`no field named:\n${msgs}`);
      },
      60_000,
      1000,
    );
    await deleteRegistry('clash');
  });

  it('GIVEN a Registry with node access in ClusterIP mode WHEN applied THEN the node pulls from its fixed cluster IP, a second Registry asking for that address is told it is taken, and the files go with it', async () => {
    const base = registryRaw(`${NODE_ADDRESS}/berth/berth:${VERSION}`);
    // From the service CIDR's static band (its first 16 addresses for a /24), which the API
    // server leaves to fixed addresses: one from the band above could already be held by a
    // Service created earlier with an assigned address, and this Registry's would be refused.
    const clusterIP = '10.96.0.12';
    const address = `${clusterIP}:5000`;
    await kubectlApply(cluster.cp.kc(), {
      ...base,
      metadata: { name: 'byip', namespace: NS },
      spec: {
        ...base.spec,
        storage: { s3: { ...base.spec.storage.s3, bucket: 'byip' } },
        nodeAccess: {
          enabled: true,
          mode: 'ClusterIP',
          clusterIP,
          containerd: { configPath: cluster.node.hostsDir },
        },
      },
    });
    const hosts = join(cluster.node.hostsDir, address, 'hosts.toml');
    try {
      await eventually(
        async () => {
          const r = await getRegistry(cluster.cp.kc(), NS, 'byip');
          const nodeAddress = (r.status as { nodeAddress?: string }).nodeAddress;
          if (
            !condition(r, 'Ready').startsWith('True') ||
            !condition(r, 'NodeAccessReady').startsWith('True') ||
            nodeAddress !== address
          )
            throw new Error(`byip: ${JSON.stringify(r.status)}`);
          if (!existsSync(hosts)) throw new Error(`${hosts} not written`);
        },
        180_000,
        1000,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await keepDiagnostics(NS)}`, { cause: err });
    }
    const app = binaryImageArchive(work, {
      name: 'byip',
      ref: 'example.test/byip:v1',
      binary: tool('berth-pause'),
    });
    // From this host too, the cluster IP is reached through kube-proxy.
    skopeoCopy(`oci-archive:${app}`, `docker://${address}/apps/byip:v1`);
    await core.createNamespacedPod({
      namespace: 'apps',
      body: {
        metadata: { name: 'byip' },
        spec: { containers: [{ name: 'byip', image: `${address}/apps/byip:v1` }] },
      },
    });
    await eventually(
      async () => {
        const p = await core.readNamespacedPod({ name: 'byip', namespace: 'apps' });
        if (p.status?.phase !== 'Running') throw new Error(`byip pod ${p.status?.phase}`);
      },
      120_000,
      1000,
    );
    expect(cluster.node.images()).toContain(`${address}/apps/byip:v1`);
    await expectNodeConfigSteady('byip');
    // A second Registry asking for the same address: the API server refuses its Service.
    await kubectlApply(cluster.cp.kc(), {
      ...base,
      metadata: { name: 'byip2', namespace: NS },
      spec: {
        ...base.spec,
        storage: { s3: { ...base.spec.storage.s3, bucket: 'byip2' } },
        nodeAccess: { enabled: true, mode: 'ClusterIP', clusterIP },
      },
    });
    await eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, 'byip2');
        const c = r.status?.conditions?.find((x) => x.type === 'NodeAccessReady');
        if (c?.status !== 'False' || !/spec\.nodeAccess\.clusterIP/.test(c.message ?? ''))
          throw new Error(`byip2: ${JSON.stringify(r.status?.conditions)}`);
      },
      60_000,
      1000,
    );
    await deleteRegistry('byip2');
    await deleteRegistry('byip');
    await eventually(async () => {
      if (existsSync(hosts)) throw new Error('hosts.toml of byip left on the node');
      if (await s3.bucketExists('byip')) throw new Error('bucket byip left');
    }, 120_000);
  });

  it("GIVEN a Registry mirroring an upstream registry, with nodeAccess.mirrorFor naming it WHEN a pod uses an image by the upstream's own name THEN the node pulls it through the Registry (containerd sends ?ns=), with the upstream's digest, and the files go with the Registry", async () => {
    // The upstream is a distribution v3 on this host, reachable from pods; its name in image
    // references, upstream.test, resolves nowhere, so only the mirror can serve the pull.
    const upstream = await startDistribution({ host: NODE_NET.address });
    try {
      const app = binaryImageArchive(work, {
        name: 'mirrored',
        ref: 'example.test/mirrored:v1',
        binary: tool('berth-pause'),
      });
      skopeoCopy(`oci-archive:${app}`, `docker://${upstream.host}/team/mirrored:v1`);
      const head = await fetch(`${upstream.url}/v2/team/mirrored/manifests/v1`, {
        method: 'HEAD',
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      const digest = head.headers.get('docker-content-digest');
      expect(digest).toMatch(/^sha256:/);

      const base = registryRaw(DEFAULT_IMAGE);
      const nodePort = 30502;
      await kubectlApply(cluster.cp.kc(), {
        ...base,
        metadata: { name: 'mirror', namespace: NS },
        spec: {
          ...base.spec,
          storage: { s3: { ...base.spec.storage.s3, bucket: 'mirror' } },
          mirrors: {
            upstreams: [
              { name: 'upstream', url: upstream.url, prefix: 'upstream', ns: ['upstream.test'] },
            ],
          },
          nodeAccess: {
            enabled: true,
            mode: 'NodePort',
            nodePort,
            containerd: { configPath: cluster.node.hostsDir },
            mirrorFor: ['upstream.test'],
          },
        },
      });
      const hosts = join(cluster.node.hostsDir, 'upstream.test', 'hosts.toml');
      await eventually(
        async () => {
          const r = await getRegistry(cluster.cp.kc(), NS, 'mirror');
          if (!condition(r, 'Ready').startsWith('True'))
            throw new Error(`mirror: ${JSON.stringify(r.status)}`);
          if (!existsSync(hosts)) throw new Error(`${hosts} not written`);
        },
        180_000,
        1000,
      );
      expect(readFileSync(hosts, 'utf8')).toContain(`[host."http://localhost:${nodePort}"]`);

      await core.createNamespacedPod({
        namespace: 'apps',
        body: {
          metadata: { name: 'mirrored' },
          spec: { containers: [{ name: 'mirrored', image: 'upstream.test/team/mirrored:v1' }] },
        },
      });
      await eventually(
        async () => {
          const p = await core.readNamespacedPod({ name: 'mirrored', namespace: 'apps' });
          if (p.status?.phase !== 'Running')
            throw new Error(`mirrored pod ${p.status?.phase} ${await diagnose()}`);
        },
        120_000,
        1000,
      );
      expect(cluster.node.images()).toContain('upstream.test/team/mirrored:v1');
      // The Registry now holds the image under its prefix, byte for byte the upstream's.
      const cached = await fetch(
        `http://127.0.0.1:${nodePort}/v2/upstream/team/mirrored/manifests/${digest}`,
        { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } },
      );
      expect(cached.status).toBe(200);
      expect(cached.headers.get('docker-content-digest')).toBe(digest);

      await core.deleteNamespacedPod({ name: 'mirrored', namespace: 'apps' });
      await deleteRegistry('mirror');
      await eventually(async () => {
        if (existsSync(hosts)) throw new Error('upstream.test/hosts.toml left on the node');
      }, 120_000);
    } finally {
      await upstream.stop();
    }
  });

  it('GIVEN the Registry with peer invalidation WHEN scaled to 3 and back to 1 THEN 3 pods become ready, each keeps tags in memory, a tag moved through one is read new through the others, then 1 remains', async () => {
    await patchRegistry({ replicas: 3, tagCache: { peerInvalidation: true } });
    const running = async () =>
      (await registryPods()).filter(
        (p) =>
          p.status?.phase === 'Running' &&
          !p.metadata?.deletionTimestamp &&
          p.spec?.containers[0]?.ports?.some((port) => port.name === 'peers'),
      );
    await eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, 'images');
        if (r.status?.readyReplicas !== 3) throw new Error(`ready ${r.status?.readyReplicas}`);
        if ((await running()).length !== 3) throw new Error('old pods still running');
      },
      180_000,
      1000,
    );
    const ips = (await running()).map((p) => p.status?.podIP ?? '');
    expect(ips.every((ip) => ip !== '')).toBe(true);
    // Each pod found the others through storage, at the pod IP it advertises, and joined them.
    await eventually(
      async () => {
        for (const ip of ips) {
          const text = await (await fetch(`http://${ip}:5001/metrics`)).text();
          if (!/^berth_tags_kept 1$/m.test(text)) throw new Error(`${ip} keeps no tags yet`);
        }
      },
      60_000,
      1000,
    );
    const [first, ...others] = ips;
    const through = new Client((path, init) => fetch(`http://${first}:5000${path}`, init));
    const v1 = image().layer(64).build();
    const v2 = image().layer(64).build();
    const digestAt = async (ip: string) =>
      (
        await fetch(`http://${ip}:5000/v2/team/coherent/manifests/v1`, {
          headers: { accept: v1.mediaType },
        })
      ).headers.get('docker-content-digest');
    expect((await through.push('team/coherent', 'v1', v1)).status).toBe(201);
    for (const ip of others) expect(await digestAt(ip)).toBe(v1.digest);
    expect((await through.push('team/coherent', 'v1', v2)).status).toBe(201);
    for (const ip of others) expect(await digestAt(ip)).toBe(v2.digest);
    await patchRegistry({ replicas: 1 });
    await eventually(
      async () => {
        const pods = await registryPods();
        const r = await getRegistry(cluster.cp.kc(), NS, 'images');
        if (pods.length !== 1 || r.status?.readyReplicas !== 1)
          throw new Error(`pods ${pods.length}, ready ${r.status?.readyReplicas}`);
      },
      120_000,
      1000,
    );
  });

  it('GIVEN the Registry with deletionPolicy Delete WHEN deleted THEN its pods, the node configuration and the bucket are gone', async () => {
    const hosts = join(cluster.node.hostsDir, NODE_ADDRESS, 'hosts.toml');
    expect(existsSync(hosts)).toBe(true);
    await deleteRegistry('images');
    await eventually(
      async () => {
        const left = (await core.listNamespacedPod({ namespace: NS })).items.filter(
          (p) => p.metadata?.labels?.['app.kubernetes.io/instance'] === 'images',
        );
        if (left.length > 0) throw new Error(`${left.length} pods left`);
        if (existsSync(hosts)) throw new Error('hosts.toml left on the node');
        if (await s3.bucketExists('hosted')) throw new Error('bucket left');
        const sets = await apps.listNamespacedDaemonSet({ namespace: NS });
        if (sets.items.length > 0) throw new Error('node-access DaemonSet left');
        const regs = (await custom.listNamespacedCustomObject({
          group: 'berth.dev',
          version: 'v1alpha1',
          namespace: NS,
          plural: 'registries',
        })) as { items: Registry[] };
        if (regs.items.some((r) => r.metadata.name === 'images'))
          throw new Error('Registry still there');
      },
      180_000,
      1000,
    );
  });
});
