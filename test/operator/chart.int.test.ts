/**
 * The chart rendered by the real helm binary and checked by a real API server (server-side
 * dry run with the CRD installed), in every optional shape.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  KubernetesObjectApi,
  loadAllYaml,
  type KubernetesObject,
  type V1ClusterRole,
  type V1Role,
  type V1Deployment,
  type V1NetworkPolicy,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import { tool } from '../support/tools.js';
import { createNamespace, installCrd } from './cluster.js';

const CHART = join(import.meta.dirname, '..', '..', 'charts', 'berth');
/** KUBE is the version of the test control plane (test/tools/versions.mjs). */
const KUBE = ['--kube-version', 'v1.36.3'];

function helm(...args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(tool('helm'), args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describe('helm chart on a real API server', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
    await installCrd(cp.kc());
    await createNamespace(cp.kc(), 'berth-system');
  });

  afterAll(async () => {
    await cp?.stop();
  });

  async function dryRun(objs: KubernetesObject[]): Promise<void> {
    const api = KubernetesObjectApi.makeApiClient(cp.kc());
    for (const o of objs) {
      o.metadata = { ...o.metadata, namespace: o.metadata?.namespace ?? 'berth-system' };
      await api.create(o, undefined, 'All');
    }
  }

  it('GIVEN the default values WHEN linted strictly and rendered THEN the API server accepts every object', async () => {
    expect(helm('lint', '--strict', ...KUBE, CHART).status).toBe(0);
    const r = helm('template', 'berth', CHART, ...KUBE, '--namespace', 'berth-system');
    expect(r.status, r.err).toBe(0);
    const objs = loadAllYaml(r.out) as KubernetesObject[];
    expect(objs.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
    ]);
    await dryRun(objs);
  });

  it('GIVEN the sample Registry and MinIO enabled WHEN rendered THEN the Registry points at the chart MinIO and passes the CRD validation', async () => {
    const r = helm(
      'template',
      'berth',
      CHART,
      ...KUBE,
      '--namespace',
      'berth-system',
      '--set',
      'sampleRegistry.enabled=true',
      '--set',
      'minio.enabled=true',
    );
    expect(r.status, r.err).toBe(0);
    const objs = loadAllYaml(r.out) as KubernetesObject[];
    const reg = objs.find((o) => o.kind === 'Registry') as KubernetesObject & {
      spec: { storage: { s3: { endpoint: string; credentialsSecretRef: { name: string } } } };
    };
    expect(reg.spec.storage.s3.endpoint).toBe('http://berth-minio.berth-system.svc:9000');
    expect(reg.spec.storage.s3.credentialsSecretRef.name).toBe('berth-minio');
    await dryRun(objs);
  });

  it('GIVEN the sample Registry without MinIO or an endpoint WHEN rendered THEN helm fails with the reason', () => {
    const r = helm('template', 'berth', CHART, ...KUBE, '--set', 'sampleRegistry.enabled=true');
    expect(r.status).not.toBe(0);
    expect(r.err).toContain(
      'sampleRegistry needs endpoint and credentialsSecret, or minio.enabled',
    );
  });

  it('GIVEN a value that breaks values.schema.json WHEN rendered THEN helm refuses it', () => {
    const r = helm('template', 'berth', CHART, ...KUBE, '--set', 'replicaCount=two');
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/replicaCount/);
  });

  it('GIVEN an image override WHEN rendered THEN the operator runs it and tells it, as BERTH_IMAGE, to run it for Registries without spec.image', () => {
    const r = helm(
      'template',
      'berth',
      CHART,
      ...KUBE,
      '--set',
      'image.repository=registry.example/berth',
      '--set',
      'image.tag=9.9.9',
    );
    expect(r.status, r.err).toBe(0);
    const objs = loadAllYaml(r.out) as KubernetesObject[];
    const d = objs.find((o): o is V1Deployment => o.kind === 'Deployment');
    const c = d?.spec?.template.spec?.containers[0];
    expect(c?.image).toBe('registry.example/berth:9.9.9');
    expect(c?.env?.find((e) => e.name === 'BERTH_IMAGE')?.value).toBe(
      'registry.example/berth:9.9.9',
    );
  });

  it('GIVEN networkPolicy.enabled WHEN rendered THEN a NetworkPolicy selects only the operator pod and admits only its metrics port from the monitoring namespaces, and the API server accepts it', async () => {
    const r = helm(
      'template',
      'berth',
      CHART,
      ...KUBE,
      '--namespace',
      'berth-system',
      '--set',
      'networkPolicy.enabled=true',
    );
    expect(r.status, r.err).toBe(0);
    const objs = loadAllYaml(r.out) as KubernetesObject[];
    const np = objs.find((o): o is V1NetworkPolicy => o.kind === 'NetworkPolicy');
    const d = objs.find((o): o is V1Deployment => o.kind === 'Deployment');
    const podLabels = d?.spec?.template.metadata?.labels ?? {};
    const selector = Object.entries(np?.spec?.podSelector?.matchLabels ?? {});
    expect(selector.length).toBeGreaterThan(0);
    expect(selector.every(([k, v]) => podLabels[k] === v)).toBe(true);
    expect(np?.spec?.policyTypes).toEqual(['Ingress']);
    const metricsPort = d?.spec?.template.spec?.containers[0]?.ports?.find(
      (p) => p.name === 'metrics',
    )?.containerPort;
    expect(np?.spec?.ingress).toEqual([
      {
        ports: [{ protocol: 'TCP', port: metricsPort }],
        _from: [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
        ],
      },
    ]);
    await dryRun(objs);
    expect(helm('template', 'berth', CHART, ...KUBE).out.includes('kind: NetworkPolicy')).toBe(
      false,
    );
  });

  it('GIVEN the default values WHEN rendered THEN the operator may manage the NetworkPolicies Registries ask for', () => {
    const r = helm('template', 'berth', CHART, ...KUBE);
    expect(r.status, r.err).toBe(0);
    const role = (loadAllYaml(r.out) as KubernetesObject[]).find(
      (o): o is V1ClusterRole => o.kind === 'ClusterRole',
    );
    const rule = role?.rules?.find((x) => x.resources?.includes('networkpolicies'));
    expect(rule?.apiGroups).toEqual(['networking.k8s.io']);
    expect(rule?.verbs).toEqual(
      expect.arrayContaining(['get', 'list', 'watch', 'create', 'patch', 'delete']),
    );
  });
  it("GIVEN watchNamespaces and allow-lists WHEN rendered THEN each listed namespace gets the ClusterRole's rules as a Role, no ClusterRole is rendered, the operator is told all three lists, and the API server accepts it", async () => {
    const plain = loadAllYaml(helm('template', 'berth', CHART, ...KUBE).out) as KubernetesObject[];
    const clusterRules = plain.find((o): o is V1ClusterRole => o.kind === 'ClusterRole')?.rules;
    expect(clusterRules?.length).toBeGreaterThan(0);

    const r = helm(
      'template',
      'berth',
      CHART,
      ...KUBE,
      '--namespace',
      'berth-system',
      '--set',
      'watchNamespaces={team-x,team-y}',
      '--set',
      'allowedImages={ghcr.io/berth-dev/berth:*}',
      '--set',
      'allowedS3Endpoints={https://a:9000,https://*.example}',
    );
    expect(r.status, r.err).toBe(0);
    const objs = loadAllYaml(r.out) as KubernetesObject[];
    expect(objs.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toEqual(
      [],
    );
    const roles = objs.filter(
      (o): o is V1Role => o.kind === 'Role' && o.metadata?.name === 'berth',
    );
    expect(roles.map((x) => x.metadata?.namespace).sort()).toEqual(['team-x', 'team-y']);
    for (const role of roles) expect(role.rules).toEqual(clusterRules);
    expect(
      objs
        .filter((o) => o.kind === 'RoleBinding' && o.metadata?.name === 'berth')
        .map((o) => o.metadata?.namespace)
        .sort(),
    ).toEqual(['team-x', 'team-y']);
    const env = objs.find((o): o is V1Deployment => o.kind === 'Deployment')?.spec?.template.spec
      ?.containers[0]?.env;
    const value = (name: string) => env?.find((e) => e.name === name)?.value;
    expect(value('BERTH_WATCH_NAMESPACES')).toBe('team-x,team-y');
    expect(value('BERTH_ALLOWED_IMAGES')).toBe('ghcr.io/berth-dev/berth:*');
    expect(value('BERTH_ALLOWED_S3_ENDPOINTS')).toBe('https://a:9000,https://*.example');

    for (const ns of ['team-x', 'team-y']) await createNamespace(cp.kc(), ns);
    await dryRun(objs);
  });

  it('GIVEN a watchNamespaces entry that is no namespace name WHEN rendered THEN helm refuses it', () => {
    const r = helm('template', 'berth', CHART, ...KUBE, '--set', 'watchNamespaces={Team_A}');
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/watchNamespaces/);
  });
});
