/**
 * reconcileRegistry, finalize and pruning on the recording FakeCluster: what is applied,
 * deleted and patched, in milliseconds. The real control plane runs the same paths in
 * operator.int.test.ts and daytwo.int.test.ts.
 */
import type { V1Deployment } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { reconcileRegistry } from '../../operator/reconcile/registry.js';
import type { Registry } from '../../operator/types.js';
import { aDeployment, aRegistry, type RegistryBuilder } from './builders.js';
import { FakeCluster } from './fake-cluster.js';

const NS = 'team-a';

/** cluster holds the credentials Secret and `reg` as the API server would return it. */
function cluster(reg: RegistryBuilder): FakeCluster {
  const c = new FakeCluster();
  c.put({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'minio-creds', namespace: NS },
    data: {
      accessKeyId: Buffer.from('AK').toString('base64'),
      secretAccessKey: Buffer.from('SK').toString('base64'),
    },
  });
  c.registry = reg.build();
  return c;
}

const images = () => aRegistry().named('images', NS);

function condition(r: Registry | undefined, type: string): string {
  const x = r?.status?.conditions?.find((c) => c.type === type);
  return x ? `${x.status}/${x.reason}` : 'missing';
}

describe('reconcileRegistry on a fake cluster', () => {
  it('GIVEN a new Registry WHEN reconciled THEN its children are applied config first, the bucket is checked, and the status is patched once', async () => {
    const c = cluster(images());
    const res = await reconcileRegistry(c.deps(), NS, 'images');
    expect(res).toEqual({});
    expect(c.calls).toEqual([
      'apply ConfigMap/images-config',
      'apply Secret/images-secret',
      'apply Deployment/images',
      'apply Service/images',
      'apply Service/images-metrics',
      'apply PodDisruptionBudget/images',
      'status',
    ]);
    expect(c.buckets).toEqual(['ensure images']);
    expect(c.registry?.status?.observedGeneration).toBe(1);
    expect(condition(c.registry, 'StorageReady')).toBe('True/BucketExists');
    expect(condition(c.registry, 'Available')).toBe('False/MinimumReplicasUnavailable');

    // WHEN the Deployment reports its pod ready and it is reconciled again THEN it is Ready.
    const d = c.get('Deployment', NS, 'images') as V1Deployment;
    c.put({ ...d, status: aDeployment({ replicas: 1, ready: 1 }).status });
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(condition(c.registry, 'Ready')).toBe('True/Ready');
    expect(c.events).toContain('Normal/Ready');
  });

  it('GIVEN an Ingress and a PDB asked for WHEN the spec stops asking THEN both are pruned and nothing else is', async () => {
    const c = cluster(
      images().with({ ingress: { enabled: true, host: 'images.example', path: '/' } }),
    );
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.names('Ingress', 'PodDisruptionBudget')).toEqual([
      'Ingress/images',
      'PodDisruptionBudget/images',
    ]);
    c.registry = images()
      .with({
        podDisruptionBudget: { enabled: false },
        metrics: { enabled: false, serviceMonitor: { enabled: false, interval: '30s' } },
      })
      .atGeneration(2)
      .build();
    c.calls.length = 0;
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.calls.filter((x) => x.startsWith('delete')).sort()).toEqual([
      'delete Ingress/images',
      'delete PodDisruptionBudget/images',
      'delete Service/images-metrics',
    ]);
    expect(c.names('Deployment', 'Service', 'ConfigMap')).toEqual([
      'ConfigMap/images-config',
      'Deployment/images',
      'Service/images',
    ]);
  });

  it('GIVEN a NetworkPolicy asked for WHEN reconciled THEN it is applied after the Services; WHEN the spec turns it off THEN it alone is pruned', async () => {
    const c = cluster(images().with({ networkPolicy: { enabled: true } }));
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.calls).toContain('apply NetworkPolicy/images');
    expect(c.calls.indexOf('apply NetworkPolicy/images')).toBeGreaterThan(
      c.calls.indexOf('apply Service/images'),
    );
    c.registry = images()
      .with({ networkPolicy: { enabled: false } })
      .atGeneration(2)
      .build();
    c.calls.length = 0;
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.calls.filter((x) => x.startsWith('delete'))).toEqual(['delete NetworkPolicy/images']);
    expect(c.names('NetworkPolicy')).toEqual([]);
  });

  it('GIVEN an object with our labels but another owner WHEN pruning THEN it is left alone', async () => {
    const c = cluster(images());
    c.put({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: {
        name: 'images',
        namespace: NS,
        labels: {
          'app.kubernetes.io/instance': 'images',
          'app.kubernetes.io/managed-by': 'berth-operator',
        },
        ownerReferences: [
          {
            apiVersion: 'berth.dev/v1alpha1',
            kind: 'Registry',
            name: 'images',
            uid: 'other',
            controller: true,
          },
        ],
      },
    });
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.names('Ingress')).toEqual(['Ingress/images']);
  });

  it('GIVEN a deleted Registry with deletionPolicy Delete and pods still running WHEN finalized THEN the workload is deleted and the bucket waits; once the pods are gone THEN the bucket is removed and the finalizer dropped', async () => {
    const reg = images().withS3({ bucketManagement: 'Managed', deletionPolicy: 'Delete' });
    const c = cluster(reg);
    // First pass adds the finalizer before anything else, and asks to be called again.
    expect(await reconcileRegistry(c.deps(), NS, 'images')).toEqual({ requeueAfterMs: 1 });
    expect(c.calls).toEqual(['finalizers ["berth.dev/bucket"]']);
    await reconcileRegistry(c.deps(), NS, 'images');
    c.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'images-abc',
        namespace: NS,
        labels: { 'app.kubernetes.io/name': 'berth', 'app.kubernetes.io/instance': 'images' },
      },
    });
    c.registry!.metadata.deletionTimestamp = new Date();
    c.calls.length = 0;

    expect(await reconcileRegistry(c.deps(), NS, 'images')).toEqual({ requeueAfterMs: 1000 });
    expect(c.calls).toEqual(['delete Deployment/images']);
    expect(c.buckets).not.toContain('remove images');
    expect(c.registry).toBeDefined();

    c.remove('Pod', NS, 'images-abc');
    expect(await reconcileRegistry(c.deps(), NS, 'images')).toEqual({});
    expect(c.buckets).toContain('remove images');
    expect(c.events).toContain('Normal/BucketDeleted');
    expect(c.calls.at(-1)).toBe('finalizers []');
    expect(c.registry).toBeUndefined();
  });

  it('GIVEN node access whose node port the API server refuses WHEN reconciled THEN the registry children are applied, NodeAccessReady and Degraded name the field, a Warning Event fires, and it is retried in a minute', async () => {
    const c = cluster(images().withNodeAccess({ enabled: true, nodePort: 30500 }));
    c.refuse(
      'Service',
      'images-node',
      422,
      'Service "images-node" is invalid: spec.ports[0].nodePort: Invalid value: 30500: provided port is already allocated',
    );
    const res = await reconcileRegistry(c.deps(), NS, 'images');
    expect(res).toEqual({ requeueAfterMs: 60_000 });
    expect(c.calls).toContain('apply Deployment/images');
    expect(c.calls).not.toContain('apply DaemonSet/images-node-access');
    expect(condition(c.registry, 'NodeAccessReady')).toBe('False/NodePortRefused');
    expect(condition(c.registry, 'Degraded')).toBe('True/NodePortRefused');
    const msg = c.registry?.status?.conditions?.find((x) => x.type === 'NodeAccessReady')?.message;
    expect(msg).toContain('spec.nodeAccess.nodePort 30500');
    expect(msg).toContain('already allocated');
    expect(c.events).toContain('Warning/NodePortRefused');
  });

  it('GIVEN an Unmanaged Registry WHEN reconciled THEN nothing is applied or checked and only the status says so', async () => {
    const c = cluster(images().with({ managementState: 'Unmanaged' }));
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.calls).toEqual(['status']);
    expect(c.buckets).toEqual([]);
    expect(condition(c.registry, 'Managed')).toBe('False/Unmanaged');
  });

  it('GIVEN a Registry without spec.image WHEN reconciled THEN the Deployment runs the operator image', async () => {
    const c = cluster(images());
    await reconcileRegistry(c.deps(), NS, 'images');
    const d = c.get('Deployment', NS, 'images') as {
      spec: { template: { spec: { containers: { image: string }[] } } };
    };
    expect(d.spec.template.spec.containers[0]?.image).toBe('ghcr.io/berth-dev/berth:test');
  });
});
