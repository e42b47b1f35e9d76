/**
 * FakeNode plays the kubelet (and the scheduler) for Registry pods: it registers a Ready Node,
 * binds pending pods to it, and for each pod runs the real `berth server` (spawnBerth) with the
 * env and volumes the pod spec gives it (ConfigMap and Secret contents written to a temp dir,
 * mount paths rewritten to it), runs the readiness probe the way a kubelet does, and reports the
 * pod Running and Ready with a non-loopback pod IP. `resolve(podIP, port)` maps that address to the local port.
 * Deleted pods get SIGTERM and are then removed with a zero grace period.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ApiException,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Container,
  type V1Pod,
} from '@kubernetes/client-node';
import { freePort, spawnBerth, type BerthProcess } from './process.js';
import { scratchDir } from './scratch.js';

interface Running {
  uid: string;
  ip: string;
  dir: string;
  ports: Map<number, number>;
  proc?: BerthProcess;
  starting: boolean;
  restarts: number;
  reported: string;
  /** notBefore delays a restart after a crash (a CrashLoopBackOff of sorts). */
  notBefore: number;
  /** ready is the readiness probe's verdict; probedAt when it last ran, failures in a row. */
  ready: boolean;
  probing: boolean;
  probedAt: number;
  failures: number;
}

export interface FakeNode {
  name: string;
  /** resolve maps a pod IP and container port to the local address serving it. */
  resolve(ip: string, port: number): string;
  /** pods lists the pods this node runs, as `namespace/name` → pod IP. */
  pods(): Map<string, string>;
  /** output is what a pod's server process wrote. */
  output(namespace: string, name: string): string;
  stop(): Promise<void>;
}

/** rewritePaths points in-pod paths under any mount at the local copies, in one pass. */
function rewritePaths(text: string, mounts: Map<string, string>): string {
  const paths = [...mounts.keys()].sort((a, b) => b.length - a.length);
  if (paths.length === 0) return text;
  const re = new RegExp(
    `(${paths.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})/`,
    'g',
  );
  return text.replace(re, (_m, p: string) => `${mounts.get(p) ?? p}/`);
}

/**
 * PORT_ENV: the fake pods share the host's network, so each named container port is served
 * on a free local port, set through the variable that overrides its address in the config.
 */
const PORT_ENV: Record<string, string> = {
  http: 'BERTH_HTTP_ADDR',
  debug: 'BERTH_HTTP_DEBUG_ADDR',
  // The tag-invalidation listener (cache.peerListen); the others reach it at this address.
  peers: 'BERTH_CACHE_PEER_LISTEN',
};

export async function startFakeNode(
  kc: KubeConfig,
  opts: { name?: string; selector?: string } = {},
): Promise<FakeNode> {
  const name = opts.name ?? 'berth-node';
  const selector = opts.selector ?? 'app.kubernetes.io/name=berth';
  const core = kc.makeApiClient(CoreV1Api);
  const root = scratchDir('berth-node-');
  const running = new Map<string, Running>();
  let nextIp = 2;
  let stopped = false;

  await core.createNode({
    body: {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels: { 'kubernetes.io/hostname': name } },
      spec: {},
    },
  });
  const nodeStatus = async () => {
    const now = new Date();
    await core.patchNodeStatus(
      {
        name,
        body: {
          status: {
            conditions: [
              {
                type: 'Ready',
                status: 'True',
                reason: 'KubeletReady',
                message: 'fake node',
                lastHeartbeatTime: now,
                lastTransitionTime: now,
              },
            ],
            addresses: [{ type: 'InternalIP', address: '10.245.0.1' }],
            capacity: { cpu: '64', memory: '256Gi', pods: '250' },
            allocatable: { cpu: '64', memory: '256Gi', pods: '250' },
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  };
  await nodeStatus();

  const keyOf = (p: V1Pod) => `${p.metadata?.namespace}/${p.metadata?.name}`;

  async function readKey(
    ns: string,
    kind: 'secret' | 'configMap',
    ref: string,
    key: string,
  ): Promise<string | undefined> {
    try {
      if (kind === 'secret') {
        const s = await core.readNamespacedSecret({ name: ref, namespace: ns });
        const b = s.data?.[key];
        return b === undefined ? undefined : Buffer.from(b, 'base64').toString('utf8');
      }
      const c = await core.readNamespacedConfigMap({ name: ref, namespace: ns });
      return c.data?.[key];
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  }

  /** materialize writes the pod's volumes and returns mountPath → local dir, or a problem. */
  async function materialize(
    pod: V1Pod,
    c: V1Container,
    dir: string,
  ): Promise<Map<string, string> | string> {
    const ns = pod.metadata?.namespace ?? 'default';
    const mounts = new Map<string, string>();
    for (const m of c.volumeMounts ?? []) {
      const v = pod.spec?.volumes?.find((x) => x.name === m.name);
      const local = join(dir, 'volumes', m.name);
      await mkdir(local, { recursive: true });
      mounts.set(m.mountPath, local);
      const files: [string, string][] = [];
      if (v?.configMap || v?.secret) {
        const kind = v.secret ? 'secret' : 'configMap';
        const ref = v.secret?.secretName ?? v.configMap?.name ?? '';
        const items = v.secret?.items ?? v.configMap?.items;
        if (!items) return `volume ${m.name}: only item lists are supported by the fake node`;
        for (const it of items) {
          const val = await readKey(ns, kind, ref, it.key);
          if (val === undefined) return `${kind} ${ref} key ${it.key} not found`;
          files.push([it.path, val]);
        }
      }
      for (const [p, val] of files) await writeFile(join(local, p), val);
    }
    // A config file names other mounts by their in-pod paths: point them at the local copies.
    for (const local of mounts.values()) {
      for (const f of await readdir(local)) {
        const file = join(local, f);
        await writeFile(file, rewritePaths(await readFile(file, 'utf8'), mounts));
      }
    }
    return mounts;
  }

  async function env(
    pod: V1Pod,
    c: V1Container,
    mounts: Map<string, string>,
  ): Promise<Record<string, string> | string> {
    const ns = pod.metadata?.namespace ?? 'default';
    const out: Record<string, string> = {};
    for (const e of c.env ?? []) {
      let val: string | undefined = e.value;
      const sk = e.valueFrom?.secretKeyRef;
      const ck = e.valueFrom?.configMapKeyRef;
      if (sk) val = await readKey(ns, 'secret', sk.name ?? '', sk.key);
      if (ck) val = await readKey(ns, 'configMap', ck.name ?? '', ck.key);
      if (val === undefined) {
        if (sk?.optional || ck?.optional) continue;
        return `couldn't find key ${sk?.key ?? ck?.key} in ${sk ? 'Secret' : 'ConfigMap'} ${ns}/${sk?.name ?? ck?.name}`;
      }
      val = rewritePaths(val, mounts);
      out[e.name] = val;
    }
    return out;
  }

  async function patchStatus(pod: V1Pod, status: Record<string, unknown>): Promise<void> {
    try {
      await core.patchNamespacedPodStatus(
        {
          name: pod.metadata?.name ?? '',
          namespace: pod.metadata?.namespace ?? '',
          body: { status },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) throw err;
    }
  }

  async function report(
    pod: V1Pod,
    r: Running,
    state: 'ready' | 'unready' | 'waiting',
    reason = '',
    message = '',
  ): Promise<void> {
    const tag = `${state}:${reason}:${r.restarts}`;
    if (r.reported === tag) return;
    r.reported = tag;
    const now = new Date().toISOString();
    const c = pod.spec?.containers[0];
    const ready = state === 'ready' ? 'True' : 'False';
    const up = state !== 'waiting';
    await patchStatus(pod, {
      phase: up ? 'Running' : 'Pending',
      hostIP: '10.245.0.1',
      podIP: r.ip,
      podIPs: [{ ip: r.ip }],
      startTime: now,
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status: ready, lastTransitionTime: now },
        { type: 'Ready', status: ready, lastTransitionTime: now },
      ],
      containerStatuses: [
        {
          name: c?.name ?? 'berth',
          image: c?.image ?? '',
          imageID: '',
          containerID: `fake://${r.uid}`,
          ready: state === 'ready',
          started: up,
          restartCount: r.restarts,
          state: up ? { running: { startedAt: now } } : { waiting: { reason, message } },
        },
      ],
    });
  }

  async function start(pod: V1Pod, r: Running): Promise<void> {
    const c = pod.spec?.containers[0];
    if (!c) return;
    if (c.args?.[0] !== 'server') {
      await report(pod, r, 'waiting', 'UnsupportedByFakeNode', `args ${JSON.stringify(c.args)}`);
      return;
    }
    const mounts = await materialize(pod, c, r.dir);
    if (typeof mounts === 'string')
      return report(pod, r, 'waiting', 'CreateContainerConfigError', mounts);
    const vars = await env(pod, c, mounts);
    if (typeof vars === 'string')
      return report(pod, r, 'waiting', 'CreateContainerConfigError', vars);
    for (const p of c.ports ?? []) {
      const local = r.ports.get(p.containerPort) ?? (await freePort());
      r.ports.set(p.containerPort, local);
      const v = p.name ? PORT_ENV[p.name] : undefined;
      if (v) vars[v] = `127.0.0.1:${local}`;
    }
    const httpPort = c.ports?.find((p) => p.name === 'http')?.containerPort ?? 5000;
    try {
      r.proc = await spawnBerth(
        { ...vars, BERTH_LOG_LEVEL: vars.BERTH_LOG_LEVEL ?? 'warn' },
        { port: r.ports.get(httpPort) },
      );
    } catch (err) {
      r.restarts++;
      r.notBefore = Date.now() + Math.min(1000 * 2 ** r.restarts, 10_000);
      return report(pod, r, 'waiting', 'CrashLoopBackOff', String(err).slice(0, 2000));
    }
    r.ready = false;
    r.failures = 0;
    await probe(pod, r);
  }

  /**
   * probe runs the pod's readiness probe as a kubelet does: while the container is not ready it
   * probes on every sync (a kubelet waits periodSeconds; sooner keeps tests quick), once ready
   * every periodSeconds, and it turns the pod unready after failureThreshold failures in a row.
   */
  async function probe(pod: V1Pod, r: Running): Promise<void> {
    const c = pod.spec?.containers[0];
    const spec = c?.readinessProbe;
    const get = spec?.httpGet;
    let ok = true;
    if (get) {
      const named = c?.ports?.find((p) => p.name === get.port);
      const port = r.ports.get(named ? named.containerPort : Number(get.port));
      ok = await fetch(`http://127.0.0.1:${port}${get.path ?? '/'}`, {
        signal: AbortSignal.timeout((spec.timeoutSeconds ?? 1) * 1000),
      }).then(
        (x) => x.ok,
        () => false,
      );
    }
    r.probedAt = Date.now();
    if (ok) {
      r.failures = 0;
      r.ready = true;
      return report(pod, r, 'ready');
    }
    r.failures++;
    if (r.ready && r.failures < (spec?.failureThreshold ?? 3)) return;
    r.ready = false;
    await report(pod, r, 'unready', 'ProbeFailed', 'readiness probe failed');
  }

  /** probeDue says whether a running pod's readiness probe should run now. */
  function probeDue(pod: V1Pod, r: Running): boolean {
    if (r.starting || r.probing) return false;
    if (!r.ready) return true;
    const period = pod.spec?.containers[0]?.readinessProbe?.periodSeconds ?? 10;
    return Date.now() - r.probedAt >= period * 1000;
  }

  async function sync(): Promise<void> {
    const pods = await core.listPodForAllNamespaces({ labelSelector: selector });
    const seen = new Set<string>();
    for (const pod of pods.items) {
      const key = keyOf(pod);
      seen.add(key);
      if (!pod.spec?.nodeName) {
        if (pod.metadata?.deletionTimestamp) continue;
        await core
          .createNamespacedBinding({
            namespace: pod.metadata?.namespace ?? '',
            body: {
              apiVersion: 'v1',
              kind: 'Binding',
              metadata: { name: pod.metadata?.name ?? '' },
              target: { apiVersion: 'v1', kind: 'Node', name },
            },
          })
          .catch(() => undefined);
        continue;
      }
      if (pod.spec.nodeName !== name) continue;
      let r = running.get(key);
      if (r && r.uid !== pod.metadata?.uid) {
        await r.proc?.kill();
        running.delete(key);
        r = undefined;
      }
      if (pod.metadata?.deletionTimestamp) {
        await r?.proc?.kill('SIGTERM');
        if (r) await rm(r.dir, { recursive: true, force: true });
        running.delete(key);
        await core
          .deleteNamespacedPod({
            name: pod.metadata.name ?? '',
            namespace: pod.metadata.namespace ?? '',
            gracePeriodSeconds: 0,
          })
          .catch(() => undefined);
        continue;
      }
      if (!r) {
        r = {
          uid: pod.metadata?.uid ?? '',
          ip: `10.244.0.${nextIp++}`,
          dir: await mkdtemp(join(root, 'pod-')),
          ports: new Map(),
          starting: false,
          restarts: 0,
          reported: '',
          notBefore: 0,
          ready: false,
          probing: false,
          probedAt: 0,
          failures: 0,
        };
        running.set(key, r);
      }
      const proc = r.proc;
      if (proc && proc.child.exitCode === null && proc.child.signalCode === null) {
        if (probeDue(pod, r)) {
          r.probing = true;
          const rr = r;
          void probe(pod, rr)
            .catch(() => undefined)
            .finally(() => (rr.probing = false));
        }
        continue;
      }
      if (proc) {
        r.proc = undefined;
        r.restarts++;
        await report(pod, r, 'waiting', 'CrashLoopBackOff', proc.output().slice(-2000));
      }
      if (!r.starting && Date.now() >= r.notBefore) {
        r.starting = true;
        const rr = r;
        void start(pod, rr)
          .catch(() => undefined)
          .finally(() => (rr.starting = false));
      }
    }
    for (const [key, r] of running) {
      if (seen.has(key)) continue;
      await r.proc?.kill();
      await rm(r.dir, { recursive: true, force: true });
      running.delete(key);
    }
  }

  let beats = 0;
  const loop = (async () => {
    while (!stopped) {
      try {
        await sync();
        if (++beats % 40 === 0) await nodeStatus();
      } catch {
        // the API server may be restarting; try again
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  return {
    name,
    resolve: (ip, port) => {
      for (const r of running.values()) {
        if (r.ip === ip) {
          const local = r.ports.get(port);
          if (local !== undefined) return `127.0.0.1:${local}`;
        }
      }
      throw new Error(`no pod serves ${ip}:${port}`);
    },
    pods: () => new Map([...running].map(([k, r]) => [k, r.ip])),
    output: (ns, n) => running.get(`${ns}/${n}`)?.proc?.output() ?? '',
    stop: async () => {
      stopped = true;
      await loop;
      for (const r of running.values()) await r.proc?.kill('SIGKILL');
      running.clear();
      await rm(root, { recursive: true, force: true });
    },
  };
}
