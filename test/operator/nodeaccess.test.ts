import { describe, expect, it } from 'vitest';
import type { V1DaemonSet, V1Service } from '@kubernetes/client-node';
import { desiredState, PRUNABLE } from '../../operator/desired/index.js';
import { selectorLabels } from '../../operator/desired/meta.js';
import {
  desiredNodeAccessDaemonSet,
  desiredNodeService,
  nodeAddress,
} from '../../operator/desired/nodeaccess.js';
import { aRegistry } from './builders.js';

const nodePort = () =>
  aRegistry()
    .named('reg', 'ns')
    .with({ image: 'ghcr.io/berth-dev/berth:0.1.0' })
    .withNodeAccess({ enabled: true, nodePort: 30500 })
    .build();

function daemonSet(r = nodePort()): V1DaemonSet {
  const ds = desiredNodeAccessDaemonSet(r);
  if (!ds) throw new Error('no DaemonSet');
  return ds;
}

describe('node access renderers', () => {
  it('GIVEN the CRD defaults WHEN a Registry is built THEN node access is off in NodePort mode for containerd', () => {
    const r = aRegistry().build();
    expect(r.spec.nodeAccess).toEqual({
      enabled: false,
      mode: 'NodePort',
      runtimes: ['containerd'],
      containerd: { configPath: '/etc/containerd/certs.d' },
      crio: { configPath: '/etc/containers/registries.conf.d' },
    });
    expect(desiredNodeService(r)).toBeUndefined();
    expect(desiredNodeAccessDaemonSet(r)).toBeUndefined();
    expect(nodeAddress(r)).toBeUndefined();
  });

  it('GIVEN NodePort mode WHEN rendered THEN a NodePort Service <name>-node with the fixed port selects the registry pods and nodes use localhost', () => {
    const r = nodePort();
    const svc = desiredNodeService(r) as V1Service;
    expect(svc.metadata?.name).toBe('reg-node');
    expect(svc.metadata?.ownerReferences?.[0]).toMatchObject({ uid: 'uid-reg', controller: true });
    expect(svc.spec).toEqual({
      type: 'NodePort',
      selector: selectorLabels(r),
      ports: [{ name: 'http', port: 5000, targetPort: 'http', protocol: 'TCP', nodePort: 30500 }],
    });
    expect(nodeAddress(r)).toBe('localhost:30500');
  });

  it('GIVEN ClusterIP mode WHEN rendered THEN the Service has the fixed cluster IP and nodes use it with the service port; IPv6 in brackets', () => {
    const r = aRegistry()
      .withNodeAccess({ enabled: true, mode: 'ClusterIP', clusterIP: '10.96.0.50' })
      .with({ service: { type: 'ClusterIP', port: 443 } })
      .build();
    expect(desiredNodeService(r)?.spec).toMatchObject({
      type: 'ClusterIP',
      clusterIP: '10.96.0.50',
      ports: [{ name: 'http', port: 443, targetPort: 'http' }],
    });
    expect(desiredNodeService(r)?.spec?.ports?.[0]).not.toHaveProperty('nodePort');
    expect(nodeAddress(r)).toBe('10.96.0.50:443');
    const v6 = aRegistry()
      .withNodeAccess({ enabled: true, mode: 'ClusterIP', clusterIP: 'fd00::50' })
      .build();
    expect(nodeAddress(v6)).toBe('[fd00::50]:5000');
  });

  it('GIVEN node access WHEN the DaemonSet is rendered THEN it runs node-config from spec.image on every node with the containerd folder mounted at its host path', () => {
    const ds = daemonSet();
    const pod = ds.spec!.template.spec!;
    const c = pod.containers[0]!;
    expect(ds.metadata?.name).toBe('reg-node-access');
    expect(c.image).toBe('ghcr.io/berth-dev/berth:0.1.0');
    expect(c.args).toEqual([
      'node-config',
      '--address',
      'localhost:30500',
      '--scheme',
      'http',
      '--name',
      'ns/reg',
      '--containerd-dir',
      '/etc/containerd/certs.d',
    ]);
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.priorityClassName).toBeUndefined();
    expect(pod.terminationGracePeriodSeconds).toBe(10);
    expect(pod.volumes).toEqual([
      {
        name: 'containerd-config',
        hostPath: { path: '/etc/containerd/certs.d', type: 'DirectoryOrCreate' },
      },
    ]);
    expect(c.volumeMounts).toEqual([
      { name: 'containerd-config', mountPath: '/etc/containerd/certs.d' },
    ]);
    expect(c.resources?.limits).toEqual({ memory: '96Mi' });
  });

  it('GIVEN node access WHEN the DaemonSet is rendered THEN it is root without capabilities, escalation or a writable root', () => {
    const pod = daemonSet().spec!.template.spec!;
    expect(pod.containers[0]!.securityContext).toEqual({
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('GIVEN the DaemonSet WHEN its pod labels are compared THEN no registry Service selects them, but the pruner and informer labels are there', () => {
    const r = nodePort();
    const labels = daemonSet(r).spec!.template.metadata!.labels!;
    const sel = selectorLabels(r);
    expect(Object.entries(sel).every(([k, v]) => labels[k] === v)).toBe(false);
    expect(labels).toMatchObject({
      'app.kubernetes.io/instance': 'reg',
      'app.kubernetes.io/managed-by': 'berth-operator',
    });
    expect(daemonSet(r).spec!.selector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'berth-node-access',
      'app.kubernetes.io/instance': 'reg',
    });
  });

  it('GIVEN both runtimes with custom folders and TLS WHEN rendered THEN both folders are mounted and ca.crt comes optionally from the TLS Secret over https', () => {
    const r = aRegistry()
      .named('reg', 'ns')
      .withNodeAccess({
        enabled: true,
        nodePort: 30500,
        runtimes: ['containerd', 'cri-o'],
        containerd: { configPath: '/var/lib/rancher/k3s/agent/etc/containerd/certs.d' },
      })
      .with({ tls: { secretName: 'reg-tls' } })
      .build();
    const ds = daemonSet(r);
    const c = ds.spec!.template.spec!.containers[0]!;
    expect(c.args).toEqual([
      'node-config',
      '--address',
      'localhost:30500',
      '--scheme',
      'https',
      '--name',
      'ns/reg',
      '--containerd-dir',
      '/var/lib/rancher/k3s/agent/etc/containerd/certs.d',
      '--crio-dir',
      '/etc/containers/registries.conf.d',
      '--ca-file',
      '/etc/berth/node-ca/ca.crt',
    ]);
    expect(ds.spec!.template.spec!.volumes).toContainEqual({
      name: 'ca',
      secret: { secretName: 'reg-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }], optional: true },
    });
    expect(c.volumeMounts).toContainEqual({
      name: 'ca',
      mountPath: '/etc/berth/node-ca',
      readOnly: true,
    });
  });

  it('GIVEN node access WHEN the desired state is computed THEN the Service comes before the DaemonSet, apart from the registry children; disabled THEN none, and both kinds are prunable', () => {
    const st = desiredState(nodePort(), { httpSecret: 's', serviceMonitorApi: false });
    if (!st.ok) throw new Error('not ok');
    expect(st.nodeAccess.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'Service/reg-node',
      'DaemonSet/reg-node-access',
    ]);
    expect(st.children.map((o) => o.kind)).not.toContain('DaemonSet');
    const off = desiredState(aRegistry().build(), { httpSecret: 's', serviceMonitorApi: false });
    expect(off.ok && off.nodeAccess).toEqual([]);
    const kinds = PRUNABLE.map((k) => `${k.apiVersion}/${k.kind}`);
    expect(kinds).toContain('v1/Service');
    expect(kinds).toContain('apps/v1/DaemonSet');
  });
});
