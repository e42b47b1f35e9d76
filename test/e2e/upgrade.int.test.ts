/**
 * An upgrade from the previous release to this checkout with Registries running (issue 16), on
 * a real node. No release is tagged: the previous one is what `main` shipped at the previous
 * stop, commit 3771061. Its chart and image are built from git history (test/support/release.ts,
 * cached by commit), installed with helm, two Registries are created under it (one without
 * `spec.image`, so it runs the operator's image, one pinned to it), an image is pushed, and then
 * docs/operator.md "Upgrading" is followed as written: the new CRD by server-side apply and
 * `helm upgrade` to this chart and image. A client pulls from each Registry in a loop
 * throughout, and none of its requests may fail.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AppsV1Api,
  CoreV1Api,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { condition, eventually, getRegistry, kubectlApply } from '../operator/cluster.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import {
  binaryImageArchive,
  NODE_NET,
  startRealCluster,
  type RealCluster,
} from '../support/realnode.js';
import { buildRelease, type Release } from '../support/release.js';
import { tool } from '../support/tools.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CHART = join(ROOT, 'charts', 'berth');
/**
 * PREVIOUS is the previous release: main as the previous stop shipped it. (An older main,
 * 3a85ed8, ran its pods without the preStop sleep: a pod of it that stops still gets new
 * connections for a moment, and the kernel resets those it had queued, so an upgrade from it
 * fails a request or two whatever the new release does; see docs/operator.md "Upgrading".)
 */
const PREVIOUS = '3771061';
/** OLD_IMAGE is the previous release's image, which its operator runs by default. */
const OLD_IMAGE = 'ghcr.io/berth-dev/berth:0.1.0';
/**
 * NEW_TAG is this checkout's image tag. package.json still says 0.1.0, the previous release's
 * tag, so the build gets a tag of its own and `helm upgrade` selects it with image.tag.
 */
const NEW_TAG = '0.1.0-next';
const NEW_IMAGE = `ghcr.io/berth-dev/berth:${NEW_TAG}`;
const NS = 'upgrade';
const PORTS = { images: 30520, pinned: 30521 } as const;

function run(cmd: string, args: string[], timeout = 600_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, cwd: ROOT });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`,
    );
  return r.stdout;
}

/**
 * runAsync is run without blocking the event loop: the pullers keep pulling (and their
 * timeouts keep time) while helm upgrades.
 */
function runAsync(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0
        ? resolve(out)
        : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${err}\n${out}`)),
    );
  });
}

/** puller pulls a manifest and its layer from `host` in a loop, keeping every failure. */
function puller(host: string, repo: string, layer: string) {
  let on = true;
  const failures: string[] = [];
  let requests = 0;
  const loop = (async () => {
    while (on) {
      for (const path of [`/v2/${repo}/manifests/v1`, `/v2/${repo}/blobs/${layer}`]) {
        try {
          const res = await fetch(`http://${host}${path}`, {
            headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
            signal: AbortSignal.timeout(10_000),
          });
          await res.arrayBuffer();
          requests++;
          if (res.status !== 200)
            failures.push(`${new Date().toISOString()} ${path}: ${res.status}`);
        } catch (err) {
          const cause = (err as Error & { cause?: Error & { code?: string } }).cause;
          failures.push(
            `${new Date().toISOString()} ${path}: ${(err as Error).message} ${cause?.code ?? ''} ${cause?.message ?? ''}`,
          );
        }
      }
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      return { failures, requests };
    },
  };
}

describe('an upgrade from the previous release with Registries running, on a real node', () => {
  let cluster: RealCluster;
  let minio: MinioServer;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let previous: Release;
  let work: string;

  const helm = (...args: string[]) =>
    run(tool('helm'), [...args, '--kubeconfig', cluster.cp.kubeconfig]);

  const registryRaw = (name: keyof typeof PORTS, image?: string) => ({
    apiVersion: 'berth.dev/v1alpha1',
    kind: 'Registry',
    metadata: { name, namespace: NS },
    spec: {
      ...(image ? { image } : {}),
      replicas: 1,
      storage: {
        s3: {
          endpoint: minio.endpoint,
          bucket: `upgrade-${name}`,
          credentialsSecretRef: { name: 'minio' },
          bucketManagement: 'Managed',
          deletionPolicy: 'Delete',
        },
      },
      nodeAccess: {
        enabled: true,
        mode: 'NodePort',
        nodePort: PORTS[name],
        containerd: { configPath: cluster.node.hostsDir },
      },
    },
  });

  const podsOf = async (name: string) =>
    (
      await core.listNamespacedPod({
        namespace: NS,
        labelSelector: `app.kubernetes.io/instance=${name},app.kubernetes.io/name=berth`,
      })
    ).items.filter((p) => !p.metadata?.deletionTimestamp);

  /**
   * settled waits until a Registry is Ready with one pod, every pod running `image` (and, from
   * this checkout's operator on, `status.image` saying so).
   */
  const settled = async (name: string, image: string, statusImage = true, ms = 240_000) =>
    eventually(
      async () => {
        const r = await getRegistry(cluster.cp.kc(), NS, name);
        const pods = await podsOf(name);
        const ok =
          condition(r, 'Ready').startsWith('True') &&
          (!statusImage || r.status?.image === image) &&
          pods.length === 1 &&
          pods.every(
            (p) =>
              p.spec?.containers[0]?.image === image &&
              p.status?.containerStatuses?.[0]?.ready === true,
          );
        if (!ok)
          throw new Error(
            `${name} not settled on ${image}: ${JSON.stringify(r.status)} pods=${pods
              .map((p) => `${p.metadata?.name}:${p.spec?.containers[0]?.image}`)
              .join(',')}`,
          );
        return r;
      },
      ms,
      1000,
    );

  /** rolledOut waits until a Registry's Deployment has rolled out its latest template. */
  const rolledOut = (name: string) =>
    eventually(
      async () => {
        const d = await apps.readNamespacedDeployment({ name, namespace: NS });
        const s = d.status;
        const done =
          s?.observedGeneration === d.metadata?.generation &&
          s?.updatedReplicas === d.spec?.replicas &&
          s?.replicas === d.spec?.replicas &&
          s?.availableReplicas === d.spec?.replicas;
        if (!done) throw new Error(`${name} rolling: ${JSON.stringify(s)}`);
        if ((await podsOf(name)).length !== d.spec?.replicas)
          throw new Error(`${name}: old pods still terminating`);
      },
      240_000,
      1000,
    );

  const operatorImage = async () =>
    (await apps.readNamespacedDeployment({ name: 'berth-operator', namespace: 'berth-system' }))
      .spec?.template.spec?.containers[0]?.image;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'berth-upgrade-'));
    previous = buildRelease(PREVIOUS);
    expect(previous.reference).toBe(OLD_IMAGE);
    // This checkout's image, under a tag of its own (see NEW_TAG).
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
        '--tag',
        NEW_IMAGE,
      ]).trim(),
    ) as { reference: string; digest: string; archive: string };
    expect(built.reference).toBe(NEW_IMAGE);
    expect(built.digest).not.toBe(previous.digest);

    cluster = await startRealCluster();
    const kc = cluster.cp.kc();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    minio = await startMinio({ host: NODE_NET.address });
    cluster.node.importImage(previous.archive);
    cluster.node.importImage(built.archive);

    helm(
      'install',
      'berth',
      previous.chart,
      '--namespace',
      'berth-system',
      '--create-namespace',
      '--wait',
      '--timeout',
      '5m',
    );
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'minio' },
        stringData: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
      },
    });
  }, 1_500_000);

  afterAll(async () => {
    await cluster?.stop();
    await minio?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('GIVEN the previous release running two Registries (one following the operator, one pinned) and a pushed image WHEN upgraded as docs/operator.md says THEN the operator upgrades, no pull fails, the unpinned Registry moves to the new image, the pinned one stays, and the image is still pullable', async () => {
    expect(await operatorImage()).toBe(OLD_IMAGE);
    await kubectlApply(cluster.cp.kc(), registryRaw('images'));
    await kubectlApply(cluster.cp.kc(), registryRaw('pinned', OLD_IMAGE));
    // The previous CRD stores no default image: the Registry follows the operator's.
    const stored = await getRegistry(cluster.cp.kc(), NS, 'images');
    expect(stored.spec.image).toBeUndefined();
    await settled('images', OLD_IMAGE, false);
    await settled('pinned', OLD_IMAGE, false);

    const app = binaryImageArchive(work, {
      name: 'hello',
      ref: 'example.test/hello:v1',
      binary: tool('berth-pause'),
    });
    for (const port of Object.values(PORTS))
      run(tool('skopeo'), [
        'copy',
        '--dest-tls-verify=false',
        '--retry-times=2',
        `oci-archive:${app}`,
        `docker://127.0.0.1:${port}/apps/hello:v1`,
      ]);

    // skopeo compresses the layer on the way: each pushed manifest names the layer to pull.
    const layers: string[] = [];
    for (const port of Object.values(PORTS)) {
      const pushed = await fetch(`http://127.0.0.1:${port}/v2/apps/hello/manifests/v1`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(pushed.status).toBe(200);
      const digest = ((await pushed.json()) as { layers: { digest: string }[] }).layers[0]!.digest;
      expect((await fetch(`http://127.0.0.1:${port}/v2/apps/hello/blobs/${digest}`)).status).toBe(
        200,
      );
      layers.push(digest);
    }
    const steps: string[] = [];
    const step = (s: string) => steps.push(`${new Date().toISOString()} ${s}`);
    const pulls = Object.values(PORTS).map((port, i) =>
      puller(`127.0.0.1:${port}`, 'apps/hello', layers[i]!),
    );
    let results: { failures: string[]; requests: number }[];
    try {
      step('pulling');
      // docs/operator.md "Upgrading", step 1: the new CRD, by server-side apply with force.
      // loadYaml keeps the x-kubernetes-* keys the typed model would drop from a plain parse.
      const crd = loadYaml<KubernetesObject>(
        readFileSync(join(CHART, 'crds', 'registries.berth.dev.yaml'), 'utf8'),
      );
      await KubernetesObjectApi.makeApiClient(cluster.cp.kc()).patch(
        crd,
        undefined,
        undefined,
        'kubectl',
        true,
        PatchStrategy.ServerSideApply,
      );
      step('crd applied');
      // Step 2: helm upgrade to this chart (and this checkout's image).
      await runAsync(tool('helm'), [
        'upgrade',
        'berth',
        CHART,
        '-n',
        'berth-system',
        '--set',
        `image.tag=${NEW_TAG}`,
        '--wait',
        '--timeout',
        '5m',
        '--kubeconfig',
        cluster.cp.kubeconfig,
      ]);
      step('helm upgrade done');
      expect(await operatorImage()).toBe(NEW_IMAGE);
      const operatorPods = await core.listNamespacedPod({
        namespace: 'berth-system',
        labelSelector: 'app.kubernetes.io/name=berth-operator',
      });
      expect(
        operatorPods.items
          .filter((p) => !p.metadata?.deletionTimestamp)
          .every((p) => p.spec?.containers[0]?.image === NEW_IMAGE),
      ).toBe(true);
      // The unpinned Registry follows the operator to the new image; the pinned one stays.
      await settled('images', NEW_IMAGE);
      step('images settled on the new image');
      // The new operator's pod template rolls the pinned Registry too: pull through all of it.
      for (const name of Object.keys(PORTS)) await rolledOut(name);
      step('both deployments rolled out');
      // A few more seconds of pulls against the new pod only.
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      results = await Promise.all(pulls.map((p) => p.stop()));
    }
    if (results.some((r) => r.failures.length > 0)) {
      // What explains a failed pull outlives the node's temp dir.
      const file = join(tmpdir(), `berth-upgrade-diagnostics-${Date.now()}.txt`);
      writeFileSync(
        file,
        [
          '=== steps',
          ...steps,
          '=== failures',
          ...results.flatMap((r, i) => r.failures.map((f) => `${Object.keys(PORTS)[i]} ${f}`)),
          '=== registry pods',
          cluster.node.podLogs(NS),
          '=== operator',
          cluster.node.podLogs('berth-system'),
        ].join('\n'),
      );
      console.error(`upgrade: failed pulls, diagnostics kept in ${file}\n${steps.join('\n')}`);
    }
    for (const r of results) {
      expect(r.failures).toEqual([]);
      expect(r.requests).toBeGreaterThan(20);
    }
    const pinned = await settled('pinned', OLD_IMAGE);
    expect(pinned.spec.image).toBe(OLD_IMAGE);
    expect((await getRegistry(cluster.cp.kc(), NS, 'images')).spec.image).toBeUndefined();
    // The image pushed under the previous release is still pullable from both.
    for (const [i, port] of Object.values(PORTS).entries()) {
      const res = await fetch(`http://127.0.0.1:${port}/v2/apps/hello/blobs/${layers[i]}`);
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(`sha256:${createHash('sha256').update(body).digest('hex')}`).toBe(layers[i]);
    }
  });
});
