/**
 * metrics-server for the real node (issue 16: a real HorizontalPodAutoscaler), built by
 * `node test/tools/ensure.mjs metrics-server`. It runs as a process on the host, listening on the
 * node's bridge address, and scrapes the real kubelet's resource metrics with the client
 * certificate the kubelet trusts (realnode.ts `kubeletClient`). The API server reaches it as the
 * `v1beta1.metrics.k8s.io` APIService through a selectorless kube-system Service whose Endpoints
 * name that address (the control plane routes aggregated APIs to endpoints, kube.ts). Its files
 * live in the control plane's temp dir, removed by `stop()` (and by the control plane's).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ApiregistrationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { freePort } from './process.js';
import { get, kill, launch, waitFor, type Proc } from './kube.js';
import type { RealCluster } from './realnode.js';
import { tool } from './tools.js';

export interface MetricsServer {
  proc: Proc;
  stop(): Promise<void>;
}

const SERVICE = 'metrics-server';

/** startMetricsServer starts metrics-server, registers its APIService and waits for node metrics. */
export async function startMetricsServer(cluster: RealCluster): Promise<MetricsServer> {
  const bin = tool('metrics-server');
  // In the control plane's temp dir, which its stop() removes.
  const dir = join(cluster.cp.dir, 'metrics-server');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const kubeconfig = cluster.cp.kubeconfig;
  const proc = launch(bin, bin, [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    `--bind-address=${cluster.node.address}`,
    `--secure-port=${port}`,
    `--cert-dir=${dir}`,
    '--kubelet-insecure-tls',
    '--kubelet-preferred-address-types=InternalIP',
    '--kubelet-use-node-status-port',
    `--kubelet-client-certificate=${cluster.node.kubeletClient.certFile}`,
    `--kubelet-client-key=${cluster.node.kubeletClient.keyFile}`,
    // The shortest it allows: the HPA sees a new sample every 10 s.
    '--metric-resolution=10s',
    // metrics-server insists its kubelet timeout is below the resolution (default 10 s).
    '--kubelet-request-timeout=5s',
    '--v=1',
  ]);
  const stop = async () => {
    await kill(proc);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      proc,
      // Listening is enough here (it may refuse an anonymous probe); metrics are awaited below.
      async () => (await get(`https://${cluster.node.address}:${port}/livez`)) !== 0,
      60_000,
    );
    const kc = cluster.cp.kc();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespacedService({
      namespace: 'kube-system',
      body: {
        metadata: { name: SERVICE },
        spec: { ports: [{ name: 'https', port: 443, targetPort: port, protocol: 'TCP' }] },
      },
    });
    await core.createNamespacedEndpoints({
      namespace: 'kube-system',
      body: {
        metadata: { name: SERVICE },
        subsets: [
          {
            addresses: [{ ip: cluster.node.address }],
            ports: [{ name: 'https', port, protocol: 'TCP' }],
          },
        ],
      },
    });
    await kc.makeApiClient(ApiregistrationV1Api).createAPIService({
      body: {
        metadata: { name: 'v1beta1.metrics.k8s.io' },
        spec: {
          group: 'metrics.k8s.io',
          version: 'v1beta1',
          service: { namespace: 'kube-system', name: SERVICE, port: 443 },
          // metrics-server serves a self-signed certificate from its cert dir.
          insecureSkipTLSVerify: true,
          groupPriorityMinimum: 100,
          versionPriority: 100,
        },
      },
    });
    const custom = kc.makeApiClient(CustomObjectsApi);
    // Available, and the first scrape of the kubelet is in (a node with CPU usage).
    await waitFor(
      proc,
      async () => {
        const body = (await custom
          .listClusterCustomObject({ group: 'metrics.k8s.io', version: 'v1beta1', plural: 'nodes' })
          .catch(() => ({}))) as { items?: { usage?: { cpu?: string } }[] };
        return (body.items ?? []).some((n) => n.usage?.cpu !== undefined);
      },
      90_000,
    );
    return { proc, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
