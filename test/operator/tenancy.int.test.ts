/**
 * Tenancy against a real kube-apiserver: the chart installed namespace-scoped
 * (`watchNamespaces`), the operator running with only the Roles it renders (impersonating its
 * ServiceAccount), and the operator's allow-list of S3 endpoints. No MinIO: the Registries
 * here never reach a bucket (their credentials Secret does not exist, or their endpoint is
 * refused before it is contacted).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import {
  ApiException,
  AppsV1Api,
  EventsV1Api,
  NetworkingV1Api,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../operator/log.js';
import { runOperator, type RunningOperator } from '../../operator/main.js';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import { tool } from '../support/tools.js';
import { aRegistry } from './builders.js';
import { condition, createNamespace, eventually, getRegistry, kubectlApply } from './cluster.js';

const CHART = join(import.meta.dirname, '..', '..', 'charts', 'berth');
const SA = 'system:serviceaccount:berth-system:berth';
const ALLOWED = 'http://minio.minio.svc:9000';

function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
    if (lines.length > 2000) lines.shift();
  };
  return { lines, debug: () => undefined, info: at('info'), warn: at('warn'), error: at('error') };
}

describe('tenancy: a namespace-scoped install and the allow-list, on a real API server', () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  let operator: RunningOperator | undefined;
  const log = memoryLog();

  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
    admin = cp.kc();
    for (const ns of ['team-a', 'team-b']) await createNamespace(admin, ns);
    const helm = spawnSync(
      tool('helm'),
      [
        'install',
        'berth',
        CHART,
        '-n',
        'berth-system',
        '--create-namespace',
        '--set',
        'watchNamespaces={team-a}',
        '--set',
        `allowedS3Endpoints={${ALLOWED}}`,
        '--kubeconfig',
        cp.kubeconfig,
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    if (helm.status !== 0) throw new Error(`helm install failed: ${helm.stderr}`);
    // The operator runs here, as the chart's ServiceAccount, with what the chart passes it.
    operator = await runOperator({
      kc: cp.kc(SA),
      leaseNamespace: 'berth-system',
      identity: 'tenancy-operator',
      probeHost: '127.0.0.1',
      probePort: 0,
      resyncMs: 600_000,
      retryPeriodMs: 200,
      namespaces: ['team-a'],
      policy: { s3Endpoints: [ALLOWED] },
      operatorImage: 'ghcr.io/berth-dev/berth:test',
      log,
    });
  }, 180_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail')
      process.stderr.write(`operator log (last 40 lines):\n${log.lines.slice(-40).join('\n')}\n`);
  });

  afterAll(async () => {
    await operator?.stop();
    await cp?.stop();
  });

  const deployment = async (namespace: string, name: string) => {
    try {
      return await admin.makeApiClient(AppsV1Api).readNamespacedDeployment({ name, namespace });
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return undefined;
      throw err;
    }
  };

  it('GIVEN watchNamespaces [team-a] WHEN installed THEN the operator has Roles in team-a and no ClusterRole, becomes ready with them, reconciles team-a and leaves team-b alone', async () => {
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    const clusterRoles = await rbac.listClusterRole({
      labelSelector: 'app.kubernetes.io/instance=berth',
    });
    expect(clusterRoles.items).toEqual([]);
    const bindings = await rbac.listClusterRoleBinding({
      labelSelector: 'app.kubernetes.io/instance=berth',
    });
    expect(bindings.items).toEqual([]);
    expect(
      (await rbac.listNamespacedRole({ namespace: 'team-a' })).items.map((r) => r.metadata?.name),
    ).toEqual(['berth']);
    expect((await rbac.listNamespacedRole({ namespace: 'team-b' })).items).toEqual([]);

    const op = operator!;
    await eventually(async () => {
      expect(op.isLeader()).toBe(true);
      expect((await fetch(`http://127.0.0.1:${op.port}/readyz`)).status).toBe(200);
    });

    for (const ns of ['team-a', 'team-b'])
      await kubectlApply(admin, aRegistry().named('images', ns).raw() as never);
    await eventually(async () => {
      const r = await getRegistry(admin, 'team-a', 'images');
      expect(condition(r, 'StorageReady')).toBe('False/CredentialsMissing');
      expect(await deployment('team-a', 'images')).toBeDefined();
    });
    // team-a's Registry was reconciled after team-b's was created: the operator had its
    // chance at team-b and took none.
    expect((await getRegistry(admin, 'team-b', 'images')).status).toBeUndefined();
    expect(await deployment('team-b', 'images')).toBeUndefined();
    // Nothing it watches was forbidden (a cluster-wide list would have been). A 429 while
    // the just-installed CRD's storage initializes is retried and is not what this is about.
    expect(log.lines.filter((l) => /HTTP-Code: 403|forbidden/i.test(l))).toEqual([]);
  });

  it('GIVEN allowedS3Endpoints WHEN a Registry asks for another endpoint THEN it is refused naming spec.storage.s3.endpoint, with a Warning Event, and no child is created', async () => {
    await kubectlApply(
      admin,
      aRegistry()
        .named('elsewhere', 'team-a')
        .withS3({ endpoint: 'http://evil.example:9000' })
        .raw() as never,
    );
    const r = await eventually(async () => {
      const got = await getRegistry(admin, 'team-a', 'elsewhere');
      expect(condition(got, 'ConfigValid')).toBe('False/NotAllowed');
      return got;
    });
    expect(condition(r, 'Degraded')).toBe('True/NotAllowed');
    expect(r.status?.conditions?.find((c) => c.type === 'Ready')?.message).toContain(
      'spec.storage.s3.endpoint "http://evil.example:9000"',
    );
    const events = await eventually(async () => {
      const list = await admin
        .makeApiClient(EventsV1Api)
        .listNamespacedEvent({ namespace: 'team-a' });
      const mine = list.items.filter(
        (e) => e.regarding?.name === 'elsewhere' && e.reason === 'NotAllowed',
      );
      expect(mine.length).toBeGreaterThan(0);
      return mine;
    });
    expect(events.map((e) => e.type)).toEqual(['Warning']);
    expect(await deployment('team-a', 'elsewhere')).toBeUndefined();

    // WHEN the endpoint is changed to an allowed one THEN it is reconciled.
    await kubectlApply(
      admin,
      aRegistry().named('elsewhere', 'team-a').withS3({ endpoint: ALLOWED }).raw() as never,
    );
    await eventually(async () => {
      const got = await getRegistry(admin, 'team-a', 'elsewhere');
      expect(condition(got, 'ConfigValid')).toBe('True/ConfigRendered');
      expect(await deployment('team-a', 'elsewhere')).toBeDefined();
    });
  });
  it('GIVEN a Registry with an Ingress WHEN its host is edited by hand and then the Ingress is deleted THEN each time it is repaired within seconds (a watch: the resync is 10 minutes away)', async () => {
    const net = admin.makeApiClient(NetworkingV1Api);
    const ingress = async () => {
      try {
        return await net.readNamespacedIngress({ name: 'drift', namespace: 'team-a' });
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return undefined;
        throw err;
      }
    };
    await kubectlApply(
      admin,
      aRegistry()
        .named('drift', 'team-a')
        .with({ ingress: { enabled: true, host: 'drift.example', path: '/' } })
        .raw() as never,
    );
    const first = await eventually(async () => {
      const i = await ingress();
      expect(i?.spec?.rules?.[0]?.host).toBe('drift.example');
      return i!;
    });

    await net.patchNamespacedIngress(
      {
        name: 'drift',
        namespace: 'team-a',
        body: {
          spec: { rules: [{ host: 'hijacked.example', http: first.spec?.rules?.[0]?.http }] },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await eventually(async () => {
      const i = await ingress();
      expect(i?.spec?.rules?.map((r) => r.host)).toEqual(['drift.example']);
    }, 10_000);

    await net.deleteNamespacedIngress({ name: 'drift', namespace: 'team-a' });
    await eventually(async () => {
      const i = await ingress();
      expect(i?.metadata?.uid).toBeDefined();
      expect(i?.metadata?.uid).not.toBe(first.metadata?.uid);
    }, 10_000);
  });
});
