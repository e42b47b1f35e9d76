/**
 * A real node for tests (issue 20): Debian's containerd and runc, the bridge CNI plugin, and the
 * kubelet, kube-scheduler and kube-proxy built by `node test/tools/ensure.mjs`, joined to a
 * control plane from kube.ts. Everything lives in one temp dir and one cgroup subtree:
 *
 *   bridge berth0 10.244.0.1/24   the node's address: pods reach the host (MinIO, the API server)
 *   pods          10.244.0.0/24   host-local IPAM, no masquerade, no forwarding off the machine
 *   Services      10.96.0.0/24    kube-proxy (iptables) DNATs them; unmatched traffic stays on
 *                                 the bridge (a route), never on the machine's default route
 *   <dir>/containerd/              containerd's root, state, socket; registry hosts in <dir>/certs.d
 *   <dir>/kubelet/                 the kubelet's root; pod logs in <dir>/pod-logs
 *   /sys/fs/cgroup/<c>/berth-node  every pod's cgroup, for every v1 controller
 *
 * `stop()` (and a sweep at process exit and before the next start, from a state file) removes
 * all of it: pods' processes and shims, mounts, network namespaces, cgroups, kube-proxy's
 * iptables rules, the bridge and route, and the VM-wide sysctls the kubelet and kube-proxy set
 * are put back. The pod sandbox image is built offline from test/tools/pause.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { freePort } from './process.js';
import {
  get,
  kill,
  launch,
  startControlPlane,
  waitFor,
  type ControlPlane,
  type Proc,
} from './kube.js';
import { clientCert, type TestClientCert } from './tls.js';
import { tool } from './tools.js';

export const NODE_NET = {
  bridge: 'berth0',
  address: '10.244.0.1',
  podCidr: '10.244.0.0/24',
  serviceCidr: '10.96.0.0/24',
} as const;

/** PAUSE_IMAGE is the pod sandbox image the harness builds and imports into containerd. */
export const PAUSE_IMAGE = 'berth.test/pause:1';
const NODE_NAME = 'berth-node';
const CGROUP_ROOT = 'berth-node';
const CGROUP_FS = '/sys/fs/cgroup';
const NETNS_DIR = '/var/run/netns';
const STATE_FILE = join(tmpdir(), 'berth-realnode.json');
const SYS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** SYSCTLS are the VM-wide settings the kubelet and kube-proxy may change; put back at the end. */
const SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
  'net/ipv4/conf/all/route_localnet',
  'net/bridge/bridge-nf-call-iptables',
  'net/ipv4/ip_forward',
];

type Component = 'containerd' | 'kubelet' | 'kube-scheduler' | 'kube-proxy';

export interface RealNode {
  name: string;
  /** address is the node's IP: pods reach services on the host there. */
  address: string;
  /** kubeletClient is a client certificate the kubelet accepts (metrics-server scrapes with it). */
  kubeletClient: TestClientCert;
  /** hostsDir is containerd's registry `config_path` (hosts.toml files per registry host). */
  hostsDir: string;
  /** ctr runs containerd's `ctr` in the k8s.io namespace and returns its stdout. */
  ctr(...args: string[]): string;
  /** importImage loads an OCI archive into the node's content store (like `kind load`). */
  importImage(archive: string): void;
  /** images lists the image references the node's containerd has. */
  images(): string[];
  /** processOf finds the host pid of a running container's first process, by container name. */
  processOf(podName: string, container: string): number | undefined;
  logs(component: Component): string;
  /**
   * podLogs is the kubelet's log files of the pods in `namespace` (all, or those whose name
   * starts with `podPrefix`), each headed by its path; '' when there are none.
   */
  podLogs(namespace: string, podPrefix?: string): string;
}

export interface RealCluster {
  cp: ControlPlane;
  node: RealNode;
  stop(): Promise<void>;
}

/** State is what a sweep needs to undo a node, kept in STATE_FILE while the node lives. */
interface State {
  /** owner is the test process that started the node. */
  owner: number;
  dir: string;
  socket: string;
  pids: number[];
  sysctls: Record<string, string>;
  netnsBefore: string[];
}

function sh(cmd: string, args: string[], opts: { check?: boolean; input?: string } = {}): string {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    input: opts.input,
    env: { ...process.env, PATH: `${process.env.PATH ?? ''}:${SYS_PATH}` },
    timeout: 120_000,
  });
  if (opts.check !== false && r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return r.stdout ?? '';
}

/** sbinTool is tool() that also looks in the sbin folders a non-login PATH may lack. */
function sbinTool(name: string): string {
  for (const d of ['/usr/sbin', '/sbin']) if (existsSync(join(d, name))) return join(d, name);
  return tool(name);
}

function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${key}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function cgroupControllers(): string[] {
  return readdirSync(CGROUP_FS).filter((c) => {
    try {
      return existsSync(join(CGROUP_FS, c, 'cgroup.procs'));
    } catch {
      return false;
    }
  });
}

/** cgroupDirs lists the node's cgroup dirs of one controller, children before parents. */
function cgroupDirs(controller: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true }))
      if (e.isDirectory()) walk(join(d, e.name));
    out.push(d);
  };
  walk(join(CGROUP_FS, controller, CGROUP_ROOT));
  return out;
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** shimPids finds the containerd shims (and their children's parents) serving `socket`. */
function shimPids(socket: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes('containerd-shim') && cmd.includes(socket)) out.push(Number(p));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * removeKubeChains deletes every KUBE-* chain the kubelet and kube-proxy made (the kubelet's
 * KUBE-FIREWALL among them) and the jumps into them from other chains, in both families.
 */
function removeKubeChains(): void {
  for (const bin of ['iptables', 'ip6tables']) {
    let table = '';
    const kube: [string, string][] = [];
    const other: [string, string][] = [];
    for (const line of sh(`${bin}-save`, [], { check: false }).split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith(':')) {
        const chain = line.slice(1).split(' ')[0] ?? '';
        (chain.startsWith('KUBE-') ? kube : other).push([table, chain]);
      }
    }
    for (const [t, chain] of other) {
      const jumps = sh(bin, ['-t', t, '-L', chain, '-n', '--line-numbers'], { check: false })
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((c) => /^\d+$/.test(c[0] ?? '') && (c[1] ?? '').startsWith('KUBE-'))
        .map((c) => Number(c[0]))
        .sort((a, b) => b - a);
      for (const n of jumps) sh(bin, ['-t', t, '-D', chain, String(n)], { check: false });
    }
    for (const [t, chain] of kube) sh(bin, ['-t', t, '-F', chain], { check: false });
    for (const [t, chain] of kube) sh(bin, ['-t', t, '-X', chain], { check: false });
  }
}

/**
 * sweep undoes a node synchronously and tolerates anything already gone: it runs from stop(),
 * from the exit hook, and before a start that finds a stale state file.
 */
function sweep(state: State): void {
  for (const pid of state.pids) killPid(pid);
  for (const pid of shimPids(state.socket)) killPid(pid);
  // Every container process of the node is in its cgroup subtree: kill them, then the dirs.
  const controllers = cgroupControllers();
  for (let round = 0; round < 20; round++) {
    let left = 0;
    for (const c of controllers)
      for (const d of cgroupDirs(c)) {
        let procs: string[] = [];
        try {
          procs = readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
        } catch {
          // removed meanwhile
        }
        for (const pid of procs) killPid(Number(pid));
        try {
          rmdirSync(d);
        } catch {
          left++;
        }
      }
    if (left === 0) break;
    spawnSync('sleep', ['0.2']);
  }
  // kube-proxy's rules in every mode it may have touched, then every KUBE-* chain left.
  try {
    sh(tool('kube-proxy'), ['--cleanup'], { check: false });
  } catch {
    // kube-proxy missing: it can have written nothing
  }
  removeKubeChains();
  // Mounts under the node's dir (overlay rootfs, tmpfs secrets, shm), deepest first.
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(state.dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) sh('umount', ['-l', m], { check: false });
  // Network namespaces containerd made for this node's pods.
  if (existsSync(NETNS_DIR))
    for (const ns of readdirSync(NETNS_DIR)) {
      if (state.netnsBefore.includes(ns) || !ns.startsWith('cni-')) continue;
      sh('umount', ['-l', join(NETNS_DIR, ns)], { check: false });
      rmSync(join(NETNS_DIR, ns), { force: true });
    }
  sh('ip', ['route', 'del', NODE_NET.serviceCidr, 'dev', NODE_NET.bridge], { check: false });
  sh('ip', ['link', 'del', NODE_NET.bridge], { check: false });
  for (const [key, value] of Object.entries(state.sysctls)) {
    if (readSysctl(key) === value) continue;
    try {
      writeFileSync(`/proc/sys/${key}`, value);
    } catch {
      // not writable here: nothing to restore
    }
  }
  rmSync(state.dir, { recursive: true, force: true });
  rmSync(STATE_FILE, { force: true });
}

function saveState(state: State): void {
  writeFileSync(STATE_FILE, JSON.stringify(state));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * sweepStale undoes a node a killed test run left behind, and refuses to start beside a node
 * whose test process still runs (there is one bridge and one cgroup root per machine).
 */
function sweepStale(): void {
  if (!existsSync(STATE_FILE)) return;
  let state: State;
  try {
    state = JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State;
  } catch {
    rmSync(STATE_FILE, { force: true });
    return;
  }
  if (state.owner !== process.pid && alive(state.owner))
    throw new Error(`a real node of process ${state.owner} runs on this machine: one at a time`);
  sweep(state);
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * binaryImageArchive writes an OCI archive (a tar of an OCI layout) of a one-program image:
 * one uncompressed layer holding `binary` as `/<name>`, its entry point, run as `user`.
 * `io.containerd.image.name` names it `ref` for `ctr images import`. The same inputs give the
 * same digest.
 */
export function binaryImageArchive(
  dir: string,
  opts: { name: string; ref: string; binary: string; user?: string },
): string {
  const work = join(dir, `${opts.name}-image`);
  const root = join(work, 'rootfs');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, opts.name), readFileSync(opts.binary), { mode: 0o755 });
  const layout = join(work, 'layout');
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerFile = join(work, 'layer.tar');
  sh('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-C',
    root,
    '-cf',
    layerFile,
    opts.name,
  ]);
  const layer = readFileSync(layerFile);
  const put = (b: Buffer | string, mediaType: string) => {
    const hex = sha256(b);
    writeFileSync(join(blobs, hex), b);
    return { mediaType, digest: `sha256:${hex}`, size: Buffer.byteLength(b) };
  };
  const layerDesc = put(layer, 'application/vnd.oci.image.layer.v1.tar');
  const config = put(
    JSON.stringify({
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      config: { Entrypoint: [`/${opts.name}`], User: opts.user ?? '65535:65535' },
      rootfs: { type: 'layers', diff_ids: [layerDesc.digest] },
    }),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = put(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config,
      layers: [layerDesc],
    }),
    'application/vnd.oci.image.manifest.v1+json',
  );
  writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          ...manifest,
          annotations: {
            'io.containerd.image.name': opts.ref,
            'org.opencontainers.image.ref.name': opts.ref.slice(opts.ref.lastIndexOf(':') + 1),
          },
        },
      ],
    }),
  );
  const archive = join(work, `${opts.name}.oci.tar`);
  sh('tar', ['-C', layout, '-cf', archive, '.']);
  return archive;
}

function yaml(obj: unknown): string {
  // JSON is YAML: the kubelet and kube-proxy read either.
  return JSON.stringify(obj, null, 2);
}

/**
 * startRealCluster starts a control plane readied for a real node, then containerd, the
 * kubelet, kube-scheduler and kube-proxy, and resolves once the node is Ready. Needs root.
 * Throws when a part is missing: tests never skip a missing real part.
 */
export async function startRealCluster(): Promise<RealCluster> {
  if (process.getuid?.() !== 0) throw new Error('the real-node tier needs root');
  const bins = {
    containerd: tool('containerd'),
    runc: sbinTool('runc'),
    ctr: tool('ctr'),
    kubelet: tool('kubelet'),
    scheduler: tool('kube-scheduler'),
    proxy: tool('kube-proxy'),
  };
  tool('containerd-shim-runc-v2');
  if (!existsSync('/usr/lib/cni/bridge'))
    throw new Error('CNI plugins missing: run `node test/tools/ensure.mjs node`');
  sweepStale();

  const dir = join(tmpdir(), `berth-realnode-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'containerd', 'containerd.sock');
  const state: State = {
    owner: process.pid,
    dir,
    socket,
    pids: [],
    sysctls: Object.fromEntries(
      SYSCTLS.flatMap((k) => {
        const v = readSysctl(k);
        return v === undefined ? [] : [[k, v]];
      }),
    ),
    netnsBefore: existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : [],
  };
  saveState(state);
  const onExit = () => sweep(state);
  process.once('exit', onExit);

  const procs: Proc[] = [];
  let cp: ControlPlane | undefined;
  const started = (p: Proc): Proc => {
    procs.push(p);
    if (p.child.pid !== undefined) state.pids.push(p.child.pid);
    saveState(state);
    return p;
  };

  const stop = async (): Promise<void> => {
    process.removeListener('exit', onExit);
    // The node's components, then the control plane; the sweep kills what pods left.
    for (const p of procs.slice().reverse()) await kill(p);
    await cp?.stop();
    sweep(state);
  };

  try {
    // The bridge exists before the API server, which publishes its address as an endpoint.
    sh('ip', ['link', 'add', NODE_NET.bridge, 'type', 'bridge']);
    sh('ip', ['addr', 'add', `${NODE_NET.address}/24`, 'dev', NODE_NET.bridge]);
    sh('ip', ['link', 'set', NODE_NET.bridge, 'up']);
    sh('ip', ['route', 'add', NODE_NET.serviceCidr, 'dev', NODE_NET.bridge]);
    // Pods must not reach the network through the host: only addresses on this machine.
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '0');

    cp = await startControlPlane({
      node: { address: NODE_NET.address, serviceCidr: NODE_NET.serviceCidr },
    });

    // The pod cgroup root, in every v1 hierarchy; cpuset children start empty, so fill it.
    for (const c of cgroupControllers()) {
      const d = join(CGROUP_FS, c, CGROUP_ROOT);
      mkdirSync(d, { recursive: true });
      if (c === 'cpuset' || c.split(',').includes('cpuset'))
        for (const f of ['cpuset.cpus', 'cpuset.mems'])
          writeFileSync(join(d, f), readFileSync(join(CGROUP_FS, c, f), 'utf8'));
    }

    const cniConf = join(dir, 'cni', 'net.d');
    const hostsDir = join(dir, 'certs.d');
    mkdirSync(cniConf, { recursive: true });
    mkdirSync(hostsDir, { recursive: true });
    writeFileSync(
      join(cniConf, '10-berth.conflist'),
      yaml({
        cniVersion: '1.0.0',
        name: 'berth',
        plugins: [
          {
            type: 'bridge',
            bridge: NODE_NET.bridge,
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              dataDir: join(dir, 'cni', 'ipam'),
              ranges: [[{ subnet: NODE_NET.podCidr, gateway: NODE_NET.address }]],
              routes: [{ dst: '0.0.0.0/0' }],
            },
          },
        ],
      }),
    );
    const ctrdDir = join(dir, 'containerd');
    mkdirSync(ctrdDir, { recursive: true });
    const cri = 'plugins."io.containerd.grpc.v1.cri"';
    writeFileSync(
      join(ctrdDir, 'config.toml'),
      [
        'version = 2',
        `root = "${join(ctrdDir, 'root')}"`,
        `state = "${join(ctrdDir, 'state')}"`,
        '[grpc]',
        `  address = "${socket}"`,
        '[ttrpc]',
        `  address = "${socket}.ttrpc"`,
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = "${join(ctrdDir, 'opt')}"`,
        `[${cri}]`,
        `  sandbox_image = "${PAUSE_IMAGE}"`,
        // Root here lacks CAP_SYS_RESOURCE: never lower a pod's oom_score_adj below ours.
        '  restrict_oom_score_adj = true',
        `[${cri}.containerd]`,
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        `[${cri}.containerd.runtimes.runc]`,
        '  runtime_type = "io.containerd.runc.v2"',
        `[${cri}.containerd.runtimes.runc.options]`,
        '  SystemdCgroup = false',
        `  BinaryName = "${bins.runc}"`,
        `[${cri}.cni]`,
        '  bin_dir = "/usr/lib/cni"',
        `  conf_dir = "${cniConf}"`,
        `[${cri}.registry]`,
        `  config_path = "${hostsDir}"`,
        '',
      ].join('\n'),
    );
    const env = { PATH: `${process.env.PATH ?? ''}:${SYS_PATH}` };
    const containerd = started(
      launch(
        'containerd',
        bins.containerd,
        ['--config', join(ctrdDir, 'config.toml'), '--log-level', 'warn'],
        env,
      ),
    );
    const ctr = (...args: string[]) =>
      sh(bins.ctr, ['--address', socket, '--namespace', 'k8s.io', ...args]);
    await waitFor(
      containerd,
      async () => spawnSync(bins.ctr, ['--address', socket, 'version']).status === 0,
      30_000,
    );
    ctr(
      'images',
      'import',
      binaryImageArchive(dir, { name: 'pause', ref: PAUSE_IMAGE, binary: tool('berth-pause') }),
    );

    const kubeconfig = cp.kubeconfig;
    const schedPort = await freePort();
    const scheduler = started(
      launch(
        'kube-scheduler',
        bins.scheduler,
        [
          `--kubeconfig=${kubeconfig}`,
          `--authentication-kubeconfig=${kubeconfig}`,
          `--authorization-kubeconfig=${kubeconfig}`,
          '--leader-elect=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${schedPort}`,
          `--cert-dir=${join(dir, 'scheduler-certs')}`,
          '--v=0',
        ],
        env,
      ),
    );

    const resolv = join(dir, 'resolv.conf');
    // Pods resolve nothing off the machine: no cluster DNS runs, and no upstream is reachable.
    writeFileSync(resolv, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    const [kubeletPort, kubeletHealth] = [await freePort(), await freePort()];
    const kubeletConfig = join(dir, 'kubelet.yaml');
    const kubeletClient = clientCert(dir, 'kubelet-client', 'berth-metrics');
    writeFileSync(
      kubeletConfig,
      yaml({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: NODE_NET.address,
        port: kubeletPort,
        readOnlyPort: 0,
        healthzBindAddress: '127.0.0.1',
        healthzPort: kubeletHealth,
        authentication: {
          anonymous: { enabled: false },
          webhook: { enabled: false },
          x509: { clientCAFile: kubeletClient.caFile },
        },
        authorization: { mode: 'AlwaysAllow' },
        containerRuntimeEndpoint: `unix://${socket}`,
        cgroupDriver: 'cgroupfs',
        cgroupRoot: `/${CGROUP_ROOT}`,
        cgroupsPerQOS: true,
        // This VM has cgroup v1 only.
        failCgroupV1: false,
        failSwapOn: false,
        // The kubelet would otherwise insist on its own VM-wide sysctls; they are put back.
        protectKernelDefaults: false,
        resolvConf: resolv,
        podCIDR: NODE_NET.podCidr,
        maxPods: 40,
        serializeImagePulls: false,
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        evictionHard: {
          'memory.available': '50Mi',
          'nodefs.available': '1%',
          'imagefs.available': '1%',
          'nodefs.inodesFree': '1%',
        },
        podLogsDir: join(dir, 'pod-logs'),
        syncFrequency: '5s',
        fileCheckFrequency: '5s',
        nodeStatusUpdateFrequency: '5s',
        registerNode: true,
        shutdownGracePeriod: '0s',
      }),
    );
    const kubelet = started(
      launch(
        'kubelet',
        bins.kubelet,
        [
          `--config=${kubeletConfig}`,
          `--kubeconfig=${kubeconfig}`,
          `--root-dir=${join(dir, 'kubelet')}`,
          `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
          `--hostname-override=${NODE_NAME}`,
          `--node-ip=${NODE_NET.address}`,
          '--v=1',
        ],
        env,
      ),
    );

    const [proxyHealth, proxyMetrics] = [await freePort(), await freePort()];
    const proxyConfig = join(dir, 'kube-proxy.yaml');
    writeFileSync(
      proxyConfig,
      yaml({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: { kubeconfig },
        hostnameOverride: NODE_NAME,
        mode: 'iptables',
        clusterCIDR: NODE_NET.podCidr,
        healthzBindAddress: `127.0.0.1:${proxyHealth}`,
        metricsBindAddress: `127.0.0.1:${proxyMetrics}`,
        nodePortAddresses: ['127.0.0.0/8', `${NODE_NET.address}/32`],
        // Service traffic is SNATed, so a pod reaching another pod through a Service works on
        // one bridge; NodePorts answer on localhost (what nodeAccess gives the runtime).
        iptables: { masqueradeAll: true, localhostNodePorts: true },
        // Leave the VM's conntrack table size and timeouts alone.
        conntrack: {
          maxPerCore: 0,
          min: 0,
          tcpEstablishedTimeout: '0s',
          tcpCloseWaitTimeout: '0s',
        },
      }),
    );
    const proxy = started(
      launch('kube-proxy', bins.proxy, [`--config=${proxyConfig}`, '--v=1'], env),
    );

    const core = cp.kc().makeApiClient(CoreV1Api);
    await waitFor(
      kubelet,
      async () => {
        try {
          const n = await core.readNode({ name: NODE_NAME });
          return (
            n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false
          );
        } catch {
          return false;
        }
      },
      120_000,
    );
    await waitFor(
      proxy,
      async () =>
        await fetch(`http://127.0.0.1:${proxyHealth}/healthz`).then(
          (r) => r.ok,
          () => false,
        ),
      60_000,
    );
    await waitFor(
      scheduler,
      async () => (await get(`https://127.0.0.1:${schedPort}/healthz`)) === 200,
      60_000,
    );

    const byName = new Map<Component, Proc>([
      ['containerd', containerd],
      ['kubelet', kubelet],
      ['kube-scheduler', scheduler],
      ['kube-proxy', proxy],
    ]);
    const node: RealNode = {
      name: NODE_NAME,
      address: NODE_NET.address,
      hostsDir,
      kubeletClient,
      ctr,
      importImage: (archive) => {
        ctr('images', 'import', archive);
      },
      images: () =>
        ctr('images', 'ls', '-q')
          .split('\n')
          .filter((l) => l !== '' && !l.startsWith('sha256:')),
      processOf: (podName, container) => {
        for (const id of ctr('containers', 'ls', '-q').split('\n').filter(Boolean)) {
          const info = JSON.parse(ctr('containers', 'info', id)) as {
            Labels?: Record<string, string>;
          };
          const l = info.Labels ?? {};
          if (l['io.kubernetes.pod.name'] !== podName) continue;
          if (l['io.kubernetes.container.name'] !== container) continue;
          const line = ctr('tasks', 'ls')
            .split('\n')
            .find((t) => t.startsWith(id + ' ') && /RUNNING/.test(t));
          const pid = line?.trim().split(/\s+/)[1];
          if (pid) return Number(pid);
        }
        return undefined;
      },
      logs: (c) => byName.get(c)?.out.join('') ?? '',
      podLogs: (namespace, podPrefix = '') => {
        const root = join(dir, 'pod-logs');
        if (!existsSync(root)) return '';
        const out: string[] = [];
        // <ns>_<pod>_<uid>/<container>/<restart>.log
        for (const pod of readdirSync(root).filter((d) =>
          d.startsWith(`${namespace}_${podPrefix}`),
        ))
          for (const c of readdirSync(join(root, pod)))
            for (const f of readdirSync(join(root, pod, c)))
              out.push(`--- ${pod}/${c}/${f}\n${readFileSync(join(root, pod, c, f), 'utf8')}`);
        return out.join('\n');
      },
    };
    return { cp, node, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
