/**
 * The real-node harness itself (test/support/realnode.ts): a pod scheduled by kube-scheduler
 * runs under the kubelet and containerd, a Service routes to it through kube-proxy, and
 * stopping the node leaves nothing behind on the machine.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../operator/cluster.js';
import { NODE_NET, PAUSE_IMAGE, startRealCluster, type RealCluster } from '../support/realnode.js';

function iptablesRules(): string {
  return spawnSync('iptables-save', [], { encoding: 'utf8' }).stdout ?? '';
}

function sysctl(key: string): string {
  return readFileSync(`/proc/sys/${key}`, 'utf8').trim();
}

function mountsUnder(prefix: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(prefix));
}

describe('a real node: kubelet, containerd, kube-scheduler and kube-proxy', () => {
  let cluster: RealCluster;
  let core: CoreV1Api;
  const before = {
    sysctls: {} as Record<string, string>,
    netns: [] as string[],
  };
  const KEYS = [
    'vm/overcommit_memory',
    'kernel/panic',
    'kernel/panic_on_oops',
    'net/ipv4/conf/all/route_localnet',
  ];

  beforeAll(async () => {
    for (const k of KEYS) before.sysctls[k] = sysctl(k);
    before.netns = existsSync('/var/run/netns') ? readdirSync('/var/run/netns') : [];
    cluster = await startRealCluster();
    core = cluster.cp.kc().makeApiClient(CoreV1Api);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('GIVEN the node WHEN a pod is created THEN it is scheduled, runs its image as the given user with a read-only root', async () => {
    await core.createNamespace({ body: { metadata: { name: 'smoke' } } });
    await eventually(
      async () => core.readNamespacedServiceAccount({ name: 'default', namespace: 'smoke' }),
      30_000,
    );
    await core.createNamespacedPod({
      namespace: 'smoke',
      body: {
        metadata: { name: 'sleeper', labels: { app: 'sleeper' } },
        spec: {
          containers: [
            {
              name: 'main',
              image: PAUSE_IMAGE,
              imagePullPolicy: 'Never',
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 4242,
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ['ALL'] },
              },
            },
          ],
        },
      },
    });
    const pod = await eventually(async () => {
      const p = await core.readNamespacedPod({ name: 'sleeper', namespace: 'smoke' });
      if (p.status?.phase !== 'Running') throw new Error(`pod is ${p.status?.phase}`);
      return p;
    }, 120_000);
    expect(pod.spec?.nodeName).toBe(cluster.node.name);
    expect(pod.status?.podIP).toMatch(/^10\.244\.0\./);
    const pid = cluster.node.processOf('sleeper', 'main');
    expect(pid).toBeDefined();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(status).toMatch(/^Uid:\s+4242\s+4242/m);
    // The container's root is mounted read-only.
    const root = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === '/');
    expect(root?.split(' ')[5]).toMatch(/^ro\b/);
  });

  it('GIVEN a stopped node WHEN its state is checked THEN no process, mount, netns, cgroup, iptables rule, bridge or changed sysctl is left', async () => {
    const dirs = readdirSync(tmpdir()).filter((d) => d.startsWith('berth-realnode-'));
    expect(iptablesRules()).toContain('KUBE-SERVICES');
    await cluster.stop();
    expect(readdirSync(tmpdir()).filter((d) => d.startsWith('berth-realnode-'))).toEqual(
      dirs.filter((d) => !d.endsWith(`-${process.pid}`)),
    );
    expect(mountsUnder(join(tmpdir(), `berth-realnode-${process.pid}`))).toEqual([]);
    expect(existsSync('/var/run/netns') ? readdirSync('/var/run/netns') : []).toEqual(before.netns);
    expect(existsSync('/sys/fs/cgroup/memory/berth-node')).toBe(false);
    expect(existsSync('/sys/fs/cgroup/pids/berth-node')).toBe(false);
    expect(iptablesRules()).not.toMatch(/KUBE-/);
    expect(spawnSync('ip', ['link', 'show', NODE_NET.bridge]).status).not.toBe(0);
    for (const k of KEYS) expect(sysctl(k), k).toBe(before.sysctls[k]);
    // No process of this node is left: shims, kubelet and containerd all name its folder.
    const mine = spawnSync('pgrep', ['-fa', `berth-realnode-${process.pid}`], { encoding: 'utf8' });
    expect(mine.stdout.trim()).toBe('');
  });
});
