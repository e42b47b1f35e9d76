/**
 * The operator against a real kube-apiserver that has forgotten the resourceVersion its
 * informers resume from: the watch is answered with 410 Gone and the informer must re-list by
 * itself, without the operator being restarted. The API server runs without a watch cache (so
 * watches are served by etcd) and compacts etcd every second (so old revisions are really gone);
 * its audit log shows which requests the operator made.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  Watch,
  type KubeConfig,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../operator/log.js';
import { runOperator, type RunningOperator } from '../../operator/main.js';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import { startMinio, type MinioServer } from '../support/minio.js';
import { aRegistry } from './builders.js';
import { createNamespace, eventually, getRegistry, installCrd, kubectlApply } from './cluster.js';

const REGISTRIES = '/apis/berth.dev/v1alpha1/registries';

function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
    if (lines.length > 2000) lines.shift();
  };
  return { lines, debug: () => undefined, info: at('info'), warn: at('warn'), error: at('error') };
}

interface AuditEvent {
  verb: string;
  stage: string;
  requestURI: string;
}

/** watchOutcome watches `path` from `rv` and resolves with the code of an ERROR event, or 0. */
function watchOutcome(kc: KubeConfig, path: string, rv: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let code = 0;
    let ctl: AbortController | undefined;
    const timer = setTimeout(() => ctl?.abort(), 3_000);
    new Watch(kc)
      .watch(
        path,
        { resourceVersion: rv },
        (phase, obj: { code?: number }) => {
          if (phase === 'ERROR') code = obj.code ?? -1;
        },
        () => {
          clearTimeout(timer);
          resolve(code);
        },
      )
      .then((c) => (ctl = c), reject);
  });
}

describe('berth operator against an API server that compacts etcd every second', () => {
  let cp: ControlPlane;
  let admin: KubeConfig;
  let minio: MinioServer;
  let operator: RunningOperator | undefined;
  let work: string;
  const log = memoryLog();
  let auditLog: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'berth-gone-'));
    const policy = join(work, 'audit-policy.yaml');
    auditLog = join(work, 'audit.log');
    writeFileSync(
      policy,
      [
        'apiVersion: audit.k8s.io/v1',
        'kind: Policy',
        'omitStages: [RequestReceived]',
        'rules:',
        '- level: Metadata',
        '  resources: [{group: berth.dev, resources: [registries]}]',
        '- level: None',
        '',
      ].join('\n'),
    );
    [cp, minio] = await Promise.all([
      startControlPlane({
        controllerManager: false,
        apiServerArgs: [
          '--watch-cache=false',
          '--etcd-compaction-interval=1s',
          `--audit-policy-file=${policy}`,
          `--audit-log-path=${auditLog}`,
          '--audit-log-mode=blocking',
        ],
      }),
      startMinio(),
    ]);
    admin = cp.kc();
    await installCrd(admin);
  }, 180_000);

  afterAll(async () => {
    await operator?.stop();
    await cp?.stop();
    await minio?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') {
      process.stderr.write(`operator log (last 40 lines):\n${log.lines.slice(-40).join('\n')}\n`);
    }
  });

  /** audit is the operator's cluster-wide list and watch requests for Registries, in order. */
  function audit(): AuditEvent[] {
    return readFileSync(auditLog, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as AuditEvent)
      .filter(
        (e) =>
          (e.verb === 'list' || e.verb === 'watch') &&
          new URL(e.requestURI, 'https://x').pathname === REGISTRIES,
      );
  }

  async function observed(namespace: string, name: string): Promise<number> {
    return eventually(async () => {
      const r = await getRegistry(admin, namespace, name);
      if (!r.metadata.generation || r.status?.observedGeneration !== r.metadata.generation)
        throw new Error(
          `generation ${r.metadata.generation} not observed: ${r.status?.observedGeneration}`,
        );
      return r.metadata.generation;
    }, 60_000);
  }

  it('GIVEN the operator watches Registries WHEN its resourceVersion is compacted away and its watch reconnects THEN the API server answers 410 Gone, the operator re-lists, and a later spec change is still reconciled without a restart', async () => {
    await createNamespace(admin, 'team-g');
    await admin.makeApiClient(CoreV1Api).createNamespacedSecret({
      namespace: 'team-g',
      body: {
        metadata: { name: 'minio-creds' },
        stringData: { accessKeyId: minio.accessKey, secretAccessKey: minio.secretKey },
      },
    });
    operator = await runOperator({
      kc: cp.kc(),
      leaseNamespace: 'default',
      identity: 'gone-operator',
      probeHost: '127.0.0.1',
      probePort: 0,
      // No periodic resync: the Registry stays untouched while its revision is compacted.
      resyncMs: 3_600_000,
      storageRetryMs: 1_000,
      retryPeriodMs: 500,
      // Keep the lease through the API server restart, so the same informers live on.
      leaseDurationSeconds: 120,
      renewDeadlineMs: 90_000,
      log,
    });
    await eventually(() => Promise.resolve(expect(operator?.isLeader()).toBe(true)));
    await kubectlApply(
      admin,
      aRegistry()
        .named('images', 'team-g')
        .withS3({ endpoint: minio.endpoint, bucket: 'team-g-images', bucketManagement: 'Managed' })
        .raw() as never,
    );
    const first = await observed('team-g', 'images');
    // Let the operator's last status write settle: that revision is where its watch stands.
    let rv = '';
    await eventually(async () => {
      const before = (await getRegistry(admin, 'team-g', 'images')).metadata.resourceVersion;
      await new Promise((r) => setTimeout(r, 1_500));
      rv = (await getRegistry(admin, 'team-g', 'images')).metadata.resourceVersion ?? '';
      expect(rv).toBe(before);
    }, 30_000);
    const listsBefore = audit().filter((e) => e.verb === 'list' && e.stage === 'ResponseComplete');
    expect(listsBefore.length).toBeGreaterThanOrEqual(1);

    // Move etcd on (other objects only) until the compactor has dropped the Registry's revision.
    const core = admin.makeApiClient(CoreV1Api);
    for (let i = 0; i < 20; i++)
      await core.createNamespacedConfigMap({
        namespace: 'team-g',
        body: { metadata: { name: `churn-${i}` }, data: { i: String(i) } },
      });
    await eventually(
      async () => expect(await watchOutcome(admin, REGISTRIES, rv)).toBe(410),
      30_000,
      1_000,
    );

    // Break the operator's watch: it resumes from `rv`, which is gone.
    const seen = audit().length;
    await cp.restartApiServer();
    await eventually(
      async () => {
        const after = audit().slice(seen);
        const resumed = after.findIndex(
          (e) =>
            e.verb === 'watch' &&
            new URL(e.requestURI, 'https://x').searchParams.get('resourceVersion') === rv,
        );
        expect(
          resumed,
          'operator resumed its watch from the compacted revision',
        ).toBeGreaterThanOrEqual(0);
        expect(
          after.slice(resumed).some((e) => e.verb === 'list' && e.stage === 'ResponseComplete'),
          'operator re-listed after 410 Gone',
        ).toBe(true);
      },
      60_000,
      500,
    );

    await admin.makeApiClient(CustomObjectsApi).patchNamespacedCustomObject(
      {
        group: 'berth.dev',
        version: 'v1alpha1',
        namespace: 'team-g',
        plural: 'registries',
        name: 'images',
        body: { spec: { replicas: 2 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect(await observed('team-g', 'images')).toBe(first + 1);
    expect(operator.isLeader()).toBe(true);
    // The same controller and informers ran throughout: leadership never lapsed.
    expect(log.lines.filter((l) => l.includes('became leader'))).toHaveLength(1);
  });
});
