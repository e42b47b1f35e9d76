/**
 * A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager,
 * built by `node test/tools/ensure.mjs kube`, each on free loopback ports with a temp dir. The
 * admin user is a static token in group system:masters; the API server's serving certificate is
 * self-signed (clients skip verification). There is no scheduler and no kubelet here: the fake
 * node (kubenode.ts) plays both for fast tests, and realnode.ts starts a real kubelet, containerd,
 * kube-scheduler and kube-proxy on a control plane started with `node`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { freePort } from './process.js';
import { clientCert } from './tls.js';
import { tool } from './tools.js';
import { scratchDir } from './scratch.js';

export interface ControlPlane {
  /** server is the API server URL, `https://127.0.0.1:<port>`. */
  server: string;
  token: string;
  /** dir is the control plane's temp dir (certificates, keys, kubeconfig). */
  dir: string;
  /** kubeconfig is a file with the admin context (for helm and kubectl-like tools). */
  kubeconfig: string;
  /** kc is a fresh admin KubeConfig; `as` impersonates that user (e.g. a ServiceAccount). */
  kc(as?: string): KubeConfig;
  /** restartApiServer kills the API server and starts it again on the same port and etcd. */
  restartApiServer(): Promise<void>;
  /** logs returns the recent output of one component. */
  logs(component: 'etcd' | 'kube-apiserver' | 'kube-controller-manager'): string;
  stop(): Promise<void>;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  out: string[];
  exited: Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;
function hook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const c of live) c.kill('SIGKILL');
  });
}

/** launch starts one component, keeping its recent output; it is killed if the tests exit. */
export function launch(
  name: string,
  bin: string,
  args: string[],
  env: Record<string, string> = {},
): Proc {
  const child = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  hook();
  live.add(child);
  const out: string[] = [];
  const keep = (b: Buffer) => {
    out.push(b.toString());
    if (out.length > 400) out.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      live.delete(child);
      resolve();
    }),
  );
  return { name, child, out, exited };
}

/** kill stops a component: SIGTERM, then SIGKILL after 10 s. */
export async function kill(p: Proc | undefined): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  await p.exited;
  clearTimeout(t);
}

/** get does an HTTPS GET that skips verification; resolves with the status code, 0 on error. */
export function get(url: string, token?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        rejectUnauthorized: false,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** waitFor polls `check` until it holds, failing early with the output if `p` exits. */
export async function waitFor(p: Proc, check: () => Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (p.child.exitCode !== null)
      throw new Error(`${p.name} exited with ${p.child.exitCode}:\n${p.out.join('').slice(-4000)}`);
    if (await check()) return;
    if (Date.now() > deadline)
      throw new Error(`${p.name} not ready in ${ms} ms:\n${p.out.join('').slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * aggregationArgs turns on the API server's aggregation layer (for an APIService such as
 * metrics-server's on the real node): a front-proxy CA and the client certificate the
 * aggregator presents to extension API servers, which read the CA and the header names from
 * the kube-system/extension-apiserver-authentication ConfigMap. `--enable-aggregator-routing`
 * makes the API server dial the Service's endpoints, not its cluster IP.
 */
function aggregationArgs(dir: string): string[] {
  const proxy = clientCert(dir, 'front-proxy-client', 'front-proxy-client');
  return [
    `--requestheader-client-ca-file=${proxy.caFile}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${proxy.certFile}`,
    `--proxy-client-key-file=${proxy.keyFile}`,
    '--enable-aggregator-routing=true',
  ];
}

/**
 * startControlPlane starts etcd, kube-apiserver and (unless `controllerManager: false`)
 * kube-controller-manager, and resolves once the API server is ready. `apiServerArgs` are
 * appended to the API server's flags (also on restart), e.g. `--etcd-compaction-interval=1s`.
 * Throws when a binary is missing: tests never skip a missing real part.
 */
export async function startControlPlane(
  opts: {
    controllerManager?: boolean;
    apiServerArgs?: readonly string[];
    /**
     * node readies the control plane for a real node (realnode.ts): the API server also listens
     * on `address` (where pods reach the host) and publishes it as the `kubernetes` Service's
     * endpoint, Service IPs come from `serviceCidr`, and pods get ServiceAccount tokens.
     */
    node?: { address: string; serviceCidr: string };
  } = {},
): Promise<ControlPlane> {
  const etcdBin = tool('etcd');
  const apiBin = tool('kube-apiserver');
  const kcmBin = opts.controllerManager === false ? undefined : tool('kube-controller-manager');
  hook();
  const dir = scratchDir('berth-kube-');
  const token = randomBytes(16).toString('hex');
  const [etcdPort, peerPort, apiPort, kcmPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];

  const etcd = launch('etcd', etcdBin, [
    '--name=default',
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
    `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
    `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
    '--unsafe-no-fsync=true',
    '--log-level=warn',
  ]);
  await waitFor(
    etcd,
    async () =>
      await fetch(`http://127.0.0.1:${etcdPort}/health`).then(
        (r) => r.ok,
        () => false,
      ),
    30_000,
  );

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const saKey = join(dir, 'sa.key');
  writeFileSync(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const tokens = join(dir, 'tokens.csv');
  writeFileSync(tokens, `${token},admin,admin,"system:masters"\n`);
  const server = `https://127.0.0.1:${apiPort}`;
  const apiArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--etcd-prefix=/berth-${randomBytes(4).toString('hex')}`,
    `--secure-port=${apiPort}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--cert-dir=${join(dir, 'certs')}`,
    `--token-auth-file=${tokens}`,
    '--authorization-mode=RBAC',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    // The fake node mounts no token: pods need no ServiceAccount unless a real node runs them.
    ...(opts.node ? [] : ['--disable-admission-plugins=ServiceAccount']),
    '--endpoint-reconciler-type=none',
    `--service-account-issuer=${server}`,
    `--service-account-key-file=${saKey}`,
    `--service-account-signing-key-file=${saKey}`,
    '--enable-priority-and-fairness=false',
    '--max-requests-inflight=0',
    '--max-mutating-requests-inflight=0',
    '--v=0',
    ...(opts.node
      ? [
          '--bind-address=0.0.0.0',
          `--advertise-address=${opts.node.address}`,
          `--service-cluster-ip-range=${opts.node.serviceCidr}`,
          '--endpoint-reconciler-type=lease',
          ...aggregationArgs(dir),
        ]
      : []),
    ...(opts.apiServerArgs ?? []),
  ];
  let api = launch('kube-apiserver', apiBin, apiArgs);
  const apiReady = () =>
    waitFor(api, async () => (await get(`${server}/readyz`, token)) === 200, 90_000);
  await apiReady();

  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: test',
      '  cluster:',
      `    server: ${server}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: admin',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: test',
      '  context: {cluster: test, user: admin}',
      'current-context: test',
      '',
    ].join('\n'),
  );

  let kcm: Proc | undefined;
  if (kcmBin) {
    kcm = launch('kube-controller-manager', kcmBin, [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${kcmPort}`,
      `--cert-dir=${join(dir, 'kcm-certs')}`,
      `--service-account-private-key-file=${saKey}`,
      // Published to every namespace as kube-root-ca.crt, which pods' token volumes mount.
      `--root-ca-file=${join(dir, 'certs', 'apiserver.crt')}`,
      '--use-service-account-credentials=false',
      // A real node needs the lifecycle controller to lift its not-ready taint once Ready.
      `--controllers=${[
        '*',
        '-node-ipam-controller',
        ...(opts.node ? [] : ['-node-lifecycle-controller']),
        '-taint-eviction-controller',
        '-device-taint-eviction-controller',
        '-service-lb-controller',
        '-cloud-node-lifecycle-controller',
        '-node-route-controller',
        '-persistentvolume-binder-controller',
        '-persistentvolume-attach-detach-controller',
      ].join(',')}`,
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--concurrent-deployment-syncs=10',
      '--concurrent-replicaset-syncs=10',
      '--concurrent-gc-syncs=10',
      // The HorizontalPodAutoscaler controller acts within seconds (test/e2e/hpa.int.test.ts),
      // and counts a new pod's CPU as soon as it is Ready.
      '--horizontal-pod-autoscaler-sync-period=5s',
      '--horizontal-pod-autoscaler-cpu-initialization-period=10s',
      '--horizontal-pod-autoscaler-initial-readiness-delay=5s',
      '--v=0',
    ]);
    await waitFor(
      kcm,
      async () => (await get(`https://127.0.0.1:${kcmPort}/healthz`, token)) === 200,
      60_000,
    );
  }

  const kc = (as?: string): KubeConfig => {
    const k = new KubeConfig();
    k.loadFromOptions({
      clusters: [{ name: 'test', server, skipTLSVerify: true }],
      users: [{ name: 'admin', token, ...(as ? { impersonateUser: as } : {}) }],
      contexts: [{ name: 'test', cluster: 'test', user: 'admin' }],
      currentContext: 'test',
    });
    return k;
  };

  let stopped = false;
  return {
    server,
    token,
    dir,
    kubeconfig,
    kc,
    logs: (c) =>
      ({ etcd, 'kube-apiserver': api, 'kube-controller-manager': kcm })[c]?.out.join('') ?? '',
    restartApiServer: async () => {
      await kill(api);
      api = launch('kube-apiserver', apiBin, apiArgs);
      await apiReady();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill(kcm);
      await kill(api);
      await kill(etcd);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
