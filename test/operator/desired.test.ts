import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../server/config/load.js';
import {
  configYaml,
  desiredConfigMap,
  mergeOverrides,
  renderConfig,
} from '../../operator/desired/config.js';
import { desiredDeployment } from '../../operator/desired/deployment.js';
import { desiredState, PRUNABLE, referencesDigest, refKey } from '../../operator/desired/index.js';
import { referencedObjects, rollingReferences } from '../../operator/desired/files.js';
import {
  CONFIG_CHECKSUM,
  childNames,
  endpoint,
  selectorString,
} from '../../operator/desired/meta.js';
import {
  desiredIngress,
  desiredMetricsService,
  desiredNetworkPolicy,
  desiredPodDisruptionBudget,
  desiredService,
  desiredServiceMonitor,
} from '../../operator/desired/network.js';
import { desiredSecret, httpSecretOf, signingKeyOf } from '../../operator/desired/secret.js';
import type { Registry } from '../../operator/types.js';
import {
  dumpYaml,
  type V1Deployment,
  type V1Secret,
  type V1Volume,
  type V1VolumeMount,
} from '@kubernetes/client-node';
import { withImage } from '../../operator/image.js';
import { aRegistry } from './builders.js';

const secretEnv = {
  BERTH_STORAGE_S3_ACCESS_KEY: 'AK',
  BERTH_STORAGE_S3_SECRET_KEY: 'SK',
  BERTH_HTTP_SECRET: 'shared',
};

function ok(r: ReturnType<typeof configYaml>): string {
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.yaml;
}

describe('config renderer', () => {
  it('GIVEN a defaulted Registry WHEN its config is rendered THEN the server parses it into an s3 config with the spec values', () => {
    const r = aRegistry()
      .withS3({ bucket: 'imgs', prefix: 'team-a', partSizeMiB: 8, redirect: true })
      .with({ logLevel: 'debug', readOnly: true, deleteEnabled: false })
      .build();
    const config = parseConfig(ok(configYaml(r)), secretEnv);
    expect(config.storage).toMatchObject({
      driver: 's3',
      s3: {
        endpoint: 'http://minio.minio.svc:9000',
        bucket: 'imgs',
        prefix: 'team-a',
        region: 'us-east-1',
        pathStyle: true,
        partSizeMiB: 8,
        redirect: true,
        accessKey: 'AK',
        secretKey: 'SK',
      },
    });
    expect(config.log.level).toBe('debug');
    expect(config.readOnly).toBe(true);
    expect(config.delete.enabled).toBe(false);
    expect(config.http.addr).toBe('0.0.0.0:5000');
    expect(config.http.debugAddr).toBe('0.0.0.0:5001');
    expect(config.http.secret).toBe('shared');
  });

  it('GIVEN credentials in a Secret WHEN the config is rendered THEN no key or secret is in the ConfigMap text', () => {
    const yaml = ok(configYaml(aRegistry().build()));
    expect(yaml).not.toMatch(/accessKey|secretKey|secret:/);
  });

  it('GIVEN a CA bundle and TLS Secret WHEN rendered THEN the config points at the mounted files', () => {
    const r = aRegistry()
      .withS3({ caBundleSecretRef: { name: 'ca', key: 'bundle.pem' }, insecureSkipVerify: false })
      .with({ tls: { secretName: 'reg-tls' } })
      .build();
    const c = renderConfig(r);
    expect(c.storage.s3.tls).toEqual({ caFile: '/etc/berth/ca/ca.crt' });
    expect(c.http?.tls).toEqual({
      certFile: '/etc/berth/tls/tls.crt',
      keyFile: '/etc/berth/tls/tls.key',
    });
  });

  it('GIVEN notification endpoints WHEN rendered THEN they appear in the server config', () => {
    const r = aRegistry()
      .with({
        notifications: {
          endpoints: [{ name: 'audit', url: 'http://hook:8080/e', timeoutSeconds: 3 }],
        },
      })
      .build();
    const config = parseConfig(ok(configYaml(r)), secretEnv);
    expect(config.notifications.endpoints).toMatchObject([
      { name: 'audit', url: 'http://hook:8080/e', timeoutSeconds: 3 },
    ]);
  });

  it('GIVEN configOverrides WHEN rendered THEN they are merged last, mapping by mapping', () => {
    const r = aRegistry()
      .with({
        configOverrides: { limits: { maxTagsPerPush: 4 }, storage: { s3: { partSizeMiB: 64 } } },
      })
      .build();
    const config = parseConfig(ok(configYaml(r)), secretEnv);
    expect(config.limits.maxTagsPerPush).toBe(4);
    if (config.storage.driver !== 's3') throw new Error('not s3');
    expect(config.storage.s3.partSizeMiB).toBe(64);
    expect(config.storage.s3.bucket).toBe('images');
  });

  it('GIVEN an override the server rejects WHEN rendered THEN the result names the problem', () => {
    const r = aRegistry()
      .with({ configOverrides: { limits: { maxTagsPerPush: 'many' } } })
      .build();
    const res = configYaml(r);
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.problems.join()).toMatch(/limits\.maxTagsPerPush/);
  });

  it('GIVEN nested mappings and lists WHEN merged THEN mappings merge and lists replace', () => {
    expect(mergeOverrides({ a: { b: 1, c: [1] }, d: 1 }, { a: { c: [2] }, e: null })).toEqual({
      a: { b: 1, c: [2] },
      d: 1,
      e: null,
    });
  });

  it('GIVEN a Registry WHEN the ConfigMap is rendered THEN it is owned by the Registry and holds berth.yaml', () => {
    const r = aRegistry().named('edge', 'ns1').build();
    const cm = desiredConfigMap(r, 'x: 1\n');
    expect(cm.metadata?.name).toBe('edge-config');
    expect(cm.metadata?.namespace).toBe('ns1');
    expect(cm.data).toEqual({ 'berth.yaml': 'x: 1\n' });
    expect(cm.metadata?.ownerReferences).toEqual([
      {
        apiVersion: 'berth.dev/v1alpha1',
        kind: 'Registry',
        name: 'edge',
        uid: 'uid-edge',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });
});

describe('secret renderer', () => {
  it('GIVEN no stored secret WHEN rendered THEN a new one is generated', () => {
    const s = desiredSecret(aRegistry().build(), undefined, () => 'fresh');
    expect(httpSecretOf(s)).toBe('fresh');
  });

  it('GIVEN a stored secret WHEN rendered again THEN it is kept, never regenerated', () => {
    const r = aRegistry().build();
    const first = desiredSecret(r, undefined);
    const stored = httpSecretOf(first);
    const again = desiredSecret(r, stored, () => {
      throw new Error('must not generate');
    });
    expect(httpSecretOf(again)).toBe(stored);
    expect(stored).toMatch(/^[0-9a-f]{64}$/);
  });

  it('GIVEN a Secret as read from the API WHEN its value is read THEN base64 data is decoded', () => {
    const s: V1Secret = { data: { httpSecret: Buffer.from('abc').toString('base64') } };
    expect(httpSecretOf(s)).toBe('abc');
    expect(httpSecretOf(undefined)).toBeUndefined();
  });
});

describe('deployment renderer', () => {
  const r = aRegistry()
    .named('reg', 'ns')
    .withS3({
      credentialsSecretRef: { name: 'creds', accessKeyIdKey: 'ak', secretAccessKeyKey: 'sk' },
    })
    .with({
      image: 'ghcr.io/berth-dev/berth:0.1.0',
      replicas: 3,
      resources: { requests: { cpu: '100m' } },
      nodeSelector: { zone: 'a' },
    })
    .build();
  const d: V1Deployment = desiredDeployment(r, 'abc123');
  const pod = d.spec!.template.spec!;
  const c = pod.containers[0]!;

  it('GIVEN a Registry WHEN the Deployment is rendered THEN it runs `berth server` with the replicas and config mounted', () => {
    expect(d.spec?.replicas).toBe(3);
    expect(c.args).toEqual(['server']);
    expect(c.image).toBe('ghcr.io/berth-dev/berth:0.1.0');
    expect(c.env).toContainEqual({ name: 'BERTH_CONFIG', value: '/etc/berth/berth.yaml' });
    expect(pod.volumes).toContainEqual({
      name: 'config',
      configMap: { name: 'reg-config', items: [{ key: 'berth.yaml', path: 'berth.yaml' }] },
    });
    expect(pod.nodeSelector).toEqual({ zone: 'a' });
    expect(c.resources?.requests?.cpu).toBe('100m');
  });

  it('GIVEN no resources in the spec WHEN rendered THEN CPU, memory and the blob cache are requested and ephemeral storage is limited', () => {
    const bare = desiredDeployment(aRegistry().build(), 'x').spec!.template.spec!.containers[0]!;
    expect(bare.resources).toEqual({
      requests: { cpu: '100m', memory: '256Mi', 'ephemeral-storage': '10Gi' },
      limits: { 'ephemeral-storage': '12Gi' },
    });
    const noCache = desiredDeployment(
      aRegistry()
        .with({ blobCache: { sizeGiB: 0 } })
        .build(),
      'x',
    ).spec!.template.spec!.containers[0]!;
    expect(noCache.resources).toEqual({
      requests: { cpu: '100m', memory: '256Mi', 'ephemeral-storage': '256Mi' },
      limits: { 'ephemeral-storage': '2Gi' },
    });
  });

  it('GIVEN spec.resources with a memory limit only and a cpu request WHEN rendered THEN they win key by key and no default request exceeds the limit', () => {
    const own = desiredDeployment(
      aRegistry()
        .with({ resources: { requests: { cpu: '2' }, limits: { memory: '128Mi' } } })
        .build(),
      'x',
    ).spec!.template.spec!.containers[0]!;
    expect(own.resources).toEqual({
      requests: { cpu: '2', 'ephemeral-storage': '10Gi' },
      limits: { memory: '128Mi', 'ephemeral-storage': '12Gi' },
    });
  });

  it('GIVEN no spread constraints WHEN rendered THEN pods spread over nodes and zones without ever staying pending for it; given ones THEN they replace it', () => {
    expect(pod.topologySpreadConstraints).toEqual(
      ['kubernetes.io/hostname', 'topology.kubernetes.io/zone'].map((topologyKey) => ({
        maxSkew: 1,
        topologyKey,
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: {
          matchLabels: { 'app.kubernetes.io/name': 'berth', 'app.kubernetes.io/instance': 'reg' },
        },
        matchLabelKeys: ['pod-template-hash'],
      })),
    );
    const own = [{ maxSkew: 2, topologyKey: 'rack', whenUnsatisfiable: 'DoNotSchedule' }];
    const d2 = desiredDeployment(aRegistry().with({ topologySpreadConstraints: own }).build(), 'x');
    expect(d2.spec?.template.spec?.topologySpreadConstraints).toEqual(own);
  });

  it('GIVEN the blob cache default WHEN rendered THEN each pod gets an emptyDir for it and the server is pointed at it; sizeGiB 0 THEN neither', () => {
    expect(pod.volumes).toContainEqual({ name: 'blob-cache', emptyDir: { sizeLimit: '11Gi' } });
    expect(c.volumeMounts).toContainEqual({
      name: 'blob-cache',
      mountPath: '/var/cache/berth/blobs',
    });
    const config = parseConfig(ok(configYaml(r)), secretEnv);
    expect(config.cache).toMatchObject({ blobDir: '/var/cache/berth/blobs', blobMaxGiB: 10 });

    const sized = aRegistry()
      .with({ blobCache: { sizeGiB: 50 } })
      .build();
    expect(desiredDeployment(sized, 'x').spec!.template.spec!.volumes).toContainEqual({
      name: 'blob-cache',
      emptyDir: { sizeLimit: '51Gi' },
    });
    expect(parseConfig(ok(configYaml(sized)), secretEnv).cache.blobMaxGiB).toBe(50);

    const off = aRegistry()
      .with({ blobCache: { sizeGiB: 0 } })
      .build();
    const offPod = desiredDeployment(off, 'x').spec!.template.spec!;
    expect(offPod.volumes?.map((v) => v.name)).not.toContain('blob-cache');
    expect(offPod.containers[0]!.volumeMounts?.map((m) => m.name)).not.toContain('blob-cache');
    expect(parseConfig(ok(configYaml(off)), secretEnv).cache.blobDir).toBe('');
  });

  it('GIVEN credentials and the shared secret WHEN rendered THEN they come from Secrets as BERTH_* variables', () => {
    expect(c.env).toContainEqual({
      name: 'BERTH_STORAGE_S3_ACCESS_KEY',
      valueFrom: { secretKeyRef: { name: 'creds', key: 'ak' } },
    });
    expect(c.env).toContainEqual({
      name: 'BERTH_STORAGE_S3_SECRET_KEY',
      valueFrom: { secretKeyRef: { name: 'creds', key: 'sk' } },
    });
    expect(c.env).toContainEqual({
      name: 'BERTH_HTTP_SECRET',
      valueFrom: { secretKeyRef: { name: 'reg-secret', key: 'httpSecret' } },
    });
  });

  it('GIVEN a Registry WHEN rendered THEN a preStop sleep keeps the pod serving until its endpoint is gone, within the grace period', () => {
    expect(c.lifecycle).toEqual({ preStop: { sleep: { seconds: 5 } } });
    // The grace period covers the sleep, the server's drain (30 s) and a margin.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(5 + 30);
  });

  it('GIVEN a Registry WHEN rendered THEN probes hit /healthz and /readyz on the debug port', () => {
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'debug' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'debug' });
    expect(c.ports?.map((p) => [p.name, p.containerPort])).toEqual([
      ['http', 5000],
      ['debug', 5001],
    ]);
  });

  it('GIVEN a Registry WHEN rendered THEN the pod is hardened: non-root, read-only root, no capabilities, RuntimeDefault seccomp', () => {
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('GIVEN a config checksum WHEN rendered THEN it is a pod-template annotation, so a change rolls the pods', () => {
    expect(d.spec?.template.metadata?.annotations).toEqual({ [CONFIG_CHECKSUM]: 'abc123' });
    expect(
      desiredDeployment(r, 'other').spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM],
    ).toBe('other');
  });

  it('GIVEN the Recreate strategy WHEN rendered THEN no rollingUpdate block is sent', () => {
    const rec = desiredDeployment(
      aRegistry()
        .with({ updateStrategy: { type: 'Recreate' } })
        .build(),
      'x',
    );
    expect(rec.spec?.strategy).toEqual({ type: 'Recreate' });
    expect(d.spec?.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
  });

  it('GIVEN a selector WHEN rendered THEN it matches the pod labels and the status selector string', () => {
    expect(d.spec?.selector.matchLabels).toEqual({
      'app.kubernetes.io/name': 'berth',
      'app.kubernetes.io/instance': 'reg',
    });
    expect(d.spec?.template.metadata?.labels).toMatchObject(d.spec!.selector.matchLabels!);
    expect(selectorString(r)).toBe('app.kubernetes.io/name=berth,app.kubernetes.io/instance=reg');
  });
});

describe('network renderers', () => {
  it('GIVEN service settings WHEN rendered THEN the Service exposes only http on the pods', () => {
    const r = aRegistry()
      .with({ service: { type: 'NodePort', port: 80, annotations: { a: 'b' } } })
      .build();
    const s = desiredService(r);
    expect(s.spec?.type).toBe('NodePort');
    expect(s.spec?.ports).toEqual([
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
    ]);
    expect(s.metadata?.annotations).toEqual({ a: 'b' });
    expect(endpoint(r)).toBe('http://reg.default.svc:80');
  });

  it('GIVEN metrics enabled and a NodePort registry Service WHEN rendered THEN the debug port is on its own ClusterIP Service <name>-metrics, and the ServiceMonitor selects only it keeping the job name', () => {
    const r = aRegistry()
      .with({
        service: { type: 'NodePort', port: 5000 },
        metrics: { enabled: true, serviceMonitor: { enabled: true, interval: '30s' } },
      })
      .build();
    const m = desiredMetricsService(r);
    expect(m?.metadata?.name).toBe('reg-metrics');
    expect(m?.spec?.type).toBe('ClusterIP');
    expect(m?.spec?.ports).toEqual([
      { name: 'metrics', port: 5001, targetPort: 'debug', protocol: 'TCP' },
    ]);
    expect(m?.spec?.selector).toEqual(desiredService(r).spec?.selector);
    const sm = desiredServiceMonitor(r) as unknown as {
      spec: { jobLabel: string; selector: { matchLabels: Record<string, string> } };
    };
    const smSelector = Object.entries(sm.spec.selector.matchLabels);
    const picks = (labels: Record<string, string> | undefined) =>
      smSelector.every(([k, v]) => labels?.[k] === v);
    expect(picks(m?.metadata?.labels)).toBe(true);
    expect(picks(desiredService(r).metadata?.labels)).toBe(false);
    expect(m?.metadata?.labels?.[sm.spec.jobLabel]).toBe('reg');
    expect(
      desiredMetricsService(
        aRegistry()
          .with({
            metrics: { enabled: false, serviceMonitor: { enabled: false, interval: '30s' } },
          })
          .build(),
      ),
    ).toBeUndefined();
  });

  it('GIVEN the PDB defaults WHEN rendered THEN one pod may be down; disabled THEN none is rendered', () => {
    expect(desiredPodDisruptionBudget(aRegistry().build())?.spec).toMatchObject({
      maxUnavailable: 1,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    });
    expect(
      desiredPodDisruptionBudget(
        aRegistry()
          .with({ replicas: 3, podDisruptionBudget: { enabled: true, minAvailable: '50%' } })
          .build(),
      )?.spec,
    ).toMatchObject({ minAvailable: '50%' });
    expect(
      desiredPodDisruptionBudget(
        aRegistry()
          .with({ podDisruptionBudget: { enabled: false } })
          .build(),
      ),
    ).toBeUndefined();
  });

  it('GIVEN one replica and a minAvailable that would block every drain WHEN rendered THEN the PDB still lets the pod be evicted', () => {
    const spec = desiredPodDisruptionBudget(
      aRegistry()
        .with({ replicas: 1, podDisruptionBudget: { enabled: true, minAvailable: 1 } })
        .build(),
    )?.spec;
    expect(spec?.maxUnavailable).toBe(1);
    expect(spec?.minAvailable).toBeUndefined();
  });

  it('GIVEN an enabled ingress WHEN rendered THEN it routes the host to the Service with TLS', () => {
    const r = aRegistry()
      .with({
        ingress: {
          enabled: true,
          host: 'reg.example.com',
          path: '/',
          className: 'nginx',
          tlsSecretName: 't',
        },
      })
      .build();
    const ing = desiredIngress(r);
    expect(ing?.spec?.ingressClassName).toBe('nginx');
    expect(ing?.spec?.tls).toEqual([{ hosts: ['reg.example.com'], secretName: 't' }]);
    expect(ing?.spec?.rules?.[0]?.http?.paths[0]?.backend.service?.name).toBe('reg');
    expect(desiredIngress(aRegistry().build())).toBeUndefined();
  });

  it('GIVEN a ServiceMonitor asked for WHEN rendered THEN it scrapes /metrics with the labels; without metrics THEN none', () => {
    const on = aRegistry()
      .with({
        metrics: {
          enabled: true,
          serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prom' } },
        },
      })
      .build();
    const sm = desiredServiceMonitor(on) as unknown as {
      metadata: { labels: Record<string, string> };
      spec: unknown;
    };
    expect(sm.metadata.labels.release).toBe('prom');
    expect(sm.spec).toMatchObject({
      endpoints: [{ port: 'metrics', path: '/metrics', interval: '15s' }],
    });
    expect(desiredServiceMonitor(aRegistry().build())).toBeUndefined();
  });
});

describe('network policy renderer', () => {
  /** containerPort is the Deployment's port called `name` (what a policy must open). */
  const containerPort = (r: Registry, name: string): number | undefined =>
    desiredDeployment(r, 'sum').spec?.template.spec?.containers[0]?.ports?.find(
      (p) => p.name === name,
    )?.containerPort;

  it('GIVEN the CRD defaults WHEN rendered THEN there is no NetworkPolicy (it is opt-in)', () => {
    const r = aRegistry().build();
    expect(r.spec.networkPolicy?.enabled).toBe(false);
    expect(desiredNetworkPolicy(r)).toBeUndefined();
  });

  it('GIVEN networkPolicy enabled with namespaces, a selector and addresses WHEN rendered THEN only the server pods are selected, Ingress only, the registry port admits its own namespace and those peers, and the debug port only the monitoring namespace', () => {
    const r = aRegistry()
      .named('images', 'registry')
      .with({
        networkPolicy: {
          enabled: true,
          registry: {
            namespaces: ['ci', 'apps', 'registry'],
            namespaceSelector: { matchLabels: { 'berth.dev/pull': 'true' } },
            ipBlocks: ['10.0.0.0/16'],
          },
        },
      })
      .build();
    const np = desiredNetworkPolicy(r);
    expect(np?.metadata?.name).toBe('images');
    expect(np?.metadata?.ownerReferences?.[0]?.uid).toBe('uid-images');
    const podLabels = desiredDeployment(r, 'sum').spec?.template.metadata?.labels ?? {};
    const selector = Object.entries(np?.spec?.podSelector?.matchLabels ?? {});
    expect(selector.length).toBeGreaterThan(0);
    expect(selector.every(([k, v]) => podLabels[k] === v)).toBe(true);
    expect(np?.spec?.podSelector?.matchLabels).toEqual(desiredService(r).spec?.selector);
    expect(np?.spec?.policyTypes).toEqual(['Ingress']);
    expect(np?.spec?.egress).toBeUndefined();
    expect(np?.spec?.ingress).toEqual([
      {
        ports: [{ protocol: 'TCP', port: containerPort(r, 'http') }],
        _from: [
          {
            namespaceSelector: {
              matchExpressions: [
                {
                  key: 'kubernetes.io/metadata.name',
                  operator: 'In',
                  values: ['apps', 'ci', 'registry'],
                },
              ],
            },
          },
          { namespaceSelector: { matchLabels: { 'berth.dev/pull': 'true' } } },
          { ipBlock: { cidr: '10.0.0.0/16' } },
        ],
      },
      {
        ports: [{ protocol: 'TCP', port: containerPort(r, 'debug') }],
        _from: [
          { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
        ],
      },
    ]);
  });

  it('GIVEN no peers for the debug port WHEN rendered THEN it gets no rule at all (a rule without from would admit everyone), and the registry port still admits the own namespace', () => {
    const r = aRegistry()
      .named('images', 'registry')
      .with({ networkPolicy: { enabled: true, metrics: {} } })
      .build();
    const ingress = desiredNetworkPolicy(r)?.spec?.ingress ?? [];
    expect(ingress.map((rule) => rule.ports?.[0]?.port)).toEqual([containerPort(r, 'http')]);
    for (const rule of ingress) expect(rule._from?.length).toBeGreaterThan(0);
    expect(ingress[0]?._from).toEqual([
      {
        namespaceSelector: {
          matchExpressions: [
            { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['registry'] },
          ],
        },
      },
    ]);
  });

  it('GIVEN the rendered NetworkPolicy WHEN serialized as the Applier sends it THEN every rule keeps its from peers on the wire', () => {
    const np = desiredNetworkPolicy(
      aRegistry()
        .with({ networkPolicy: { enabled: true, registry: { ipBlocks: ['10.0.0.0/16'] } } })
        .build(),
    );
    // dumpYaml serializes as KubernetesObjectApi.patch does (ObjectSerializer by kind).
    const wire = parse(dumpYaml(np)) as { spec: { ingress: { from?: unknown[] }[] } };
    expect(wire.spec.ingress).toHaveLength(2);
    for (const rule of wire.spec.ingress) expect(rule.from?.length).toBeGreaterThan(0);
    expect(wire.spec.ingress[0]?.from).toContainEqual({ ipBlock: { cidr: '10.0.0.0/16' } });
  });

  it('GIVEN networkPolicy enabled WHEN the desired state is computed THEN the NetworkPolicy is a child, and NetworkPolicy is a prunable kind so turning it off removes it', () => {
    const st = desiredState(
      aRegistry()
        .with({ networkPolicy: { enabled: true } })
        .build(),
      {
        httpSecret: 's',
        serviceMonitorApi: false,
      },
    );
    expect(st.ok && st.children.map((c) => c.kind)).toContain('NetworkPolicy');
    expect(PRUNABLE.map((k) => `${k.apiVersion} ${k.kind}`)).toContain(
      'networking.k8s.io/v1 NetworkPolicy',
    );
  });
});

describe('desired state', () => {
  it('GIVEN a valid Registry WHEN the desired state is computed THEN config comes before the workload and every child is owned', () => {
    const st = desiredState(aRegistry().build(), { httpSecret: 'kept', serviceMonitorApi: false });
    if (!st.ok) throw new Error('not ok');
    expect(st.children.map((c) => c.kind)).toEqual([
      'ConfigMap',
      'Secret',
      'Deployment',
      'Service',
      'Service',
      'PodDisruptionBudget',
    ]);
    for (const c of st.children) expect(c.metadata?.ownerReferences?.[0]?.uid).toBe('uid-reg');
  });

  it('GIVEN the same inputs WHEN computed twice THEN the output is identical (pure)', () => {
    const r = aRegistry().build();
    const a = desiredState(r, { httpSecret: 's', serviceMonitorApi: true });
    const b = desiredState(r, { httpSecret: 's', serviceMonitorApi: true });
    expect(a).toEqual(b);
  });

  it('GIVEN a config change WHEN computed THEN the Deployment checksum changes; an unrelated change THEN it does not', () => {
    const sum = (r: ReturnType<ReturnType<typeof aRegistry>['build']>) => {
      const st = desiredState(r, { httpSecret: 's', serviceMonitorApi: false });
      if (!st.ok) throw new Error('not ok');
      const d = st.children.find((c) => c.kind === 'Deployment') as V1Deployment;
      return d.spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM];
    };
    const base = sum(aRegistry().build());
    expect(sum(aRegistry().with({ logLevel: 'debug' }).build())).not.toBe(base);
    expect(sum(aRegistry().with({ replicas: 5 }).build())).toBe(base);
  });

  it('GIVEN a ServiceMonitor asked for without its API WHEN computed THEN it is skipped and named', () => {
    const r = aRegistry()
      .with({ metrics: { enabled: true, serviceMonitor: { enabled: true, interval: '30s' } } })
      .build();
    const st = desiredState(r, { httpSecret: 's', serviceMonitorApi: false });
    expect(st.ok && st.skipped).toEqual(['ServiceMonitor']);
  });

  it('GIVEN an invalid override WHEN computed THEN no children are rendered and the problems are returned', () => {
    const r = aRegistry()
      .with({ configOverrides: { http: { addr: 'nope' } } })
      .build();
    const st = desiredState(r, { httpSecret: 's', serviceMonitorApi: false });
    expect(st.ok).toBe(false);
    if (!st.ok) expect(st.problems.join()).toMatch(/http\.addr/);
  });

  it('GIVEN names WHEN computed THEN children use the documented names', () => {
    expect(childNames(aRegistry().named('x').build())).toEqual({
      workload: 'x',
      config: 'x-config',
      secret: 'x-secret',
      metrics: 'x-metrics',
    });
    expect(parse(ok(configYaml(aRegistry().build())))).toHaveProperty('storage.driver', 's3');
  });
});

describe('auth, limits and garbage collection', () => {
  const htpasswdRef = { name: 'reg-users', key: 'htpasswd' };
  const fullAuth = (): Registry['spec']['auth'] => ({
    mode: 'htpasswd',
    htpasswdSecretRef: htpasswdRef,
    basicRealm: 'team',
    anonymousPull: ['public/*'],
    groups: [{ name: 'devs', members: ['alice', 'bob'] }],
    rules: [
      { repositories: ['team/*'], groups: ['devs'], actions: ['pull', 'push'] },
      { repositories: ['*'], users: ['*'], actions: ['pull'] },
    ],
    immutableTags: [{ repositories: ['team/*'], tags: ['v*'] }],
    eventsAccess: 'admins',
    admins: { users: ['root'], groups: ['ops'] },
  });
  const gc = {
    enabled: true,
    intervalSeconds: 600,
    graceSeconds: 7200,
    dryRun: true,
    leaseSeconds: 90,
    policies: [
      {
        repositories: ['team/**'],
        keepTags: [{ patterns: ['^v'], mostRecentlyPushed: 5 }],
        deleteUntaggedAfterSeconds: 86400,
        deleteReferrers: true,
      },
    ],
  };

  function mounts(d: V1Deployment): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
    const spec = d.spec!.template.spec!;
    return { volumes: spec.volumes ?? [], mounts: spec.containers[0]!.volumeMounts ?? [] };
  }

  it('GIVEN htpasswd auth, client CA, limits and gc WHEN rendered THEN the server parses it with mounted paths and the spec values', () => {
    const r = aRegistry()
      .with({
        tls: { secretName: 'reg-tls', clientCASecretRef: { name: 'clients', key: 'ca.pem' } },
        limits: {
          headerBytes: 32768,
          uploadSessionsPerClient: 10,
          rate: { requestsPerSecond: 50, burst: 100 },
        },
        auth: fullAuth(),
        garbageCollection: gc,
      })
      .build();
    const config = parseConfig(ok(configYaml(r)), secretEnv);
    expect(config.http.tls).toEqual({
      certFile: '/etc/berth/tls/tls.crt',
      keyFile: '/etc/berth/tls/tls.key',
      clientCaFile: '/etc/berth/client-ca/ca.crt',
    });
    expect(config.limits).toMatchObject({
      headerBytes: 32768,
      uploadSessionsPerClient: 10,
      rate: { requestsPerSecond: 50, burst: 100 },
    });
    expect(config.auth).toMatchObject({
      mode: 'htpasswd',
      htpasswd: { path: '/etc/berth/htpasswd/htpasswd', realm: 'team' },
      anonymousPull: ['public/*'],
      groups: [{ name: 'devs', members: ['alice', 'bob'] }],
      rules: fullAuth()!.rules,
      immutableTags: [{ repositories: ['team/*'], tags: ['v*'] }],
      eventsAccess: 'admins',
      admins: { users: ['root'], groups: ['ops'] },
    });
    expect(config.gc).toEqual({ ...gc, settleMillis: config.gc.settleMillis });
  });

  it('GIVEN gc with only enabled set WHEN rendered THEN the CRD defaults are copied and the server fills the rest', () => {
    const r = aRegistry()
      .with({ garbageCollection: { enabled: true } as Registry['spec']['garbageCollection'] })
      .build();
    expect(renderConfig(r).gc).toEqual({
      enabled: true,
      intervalSeconds: 3600,
      graceSeconds: 3600,
      dryRun: false,
    });
    expect(parseConfig(ok(configYaml(r)), secretEnv).gc.leaseSeconds).toBe(120);
  });

  it('GIVEN no auth, limits or gc WHEN rendered THEN the config has no such sections (no rollout on upgrade)', () => {
    const c = renderConfig(aRegistry().build());
    expect(c.auth).toBeUndefined();
    expect(c.gc).toBeUndefined();
    expect(c.limits).toBeUndefined();
  });

  it('GIVEN referenced Secrets WHEN rendered THEN each is a volume by key without subPath and the ConfigMap holds no secret value', () => {
    const r = aRegistry()
      .with({
        tls: { secretName: 'reg-tls', clientCASecretRef: { name: 'clients', key: 'ca.pem' } },
        auth: {
          mode: 'token',
          htpasswdSecretRef: htpasswdRef,
          token: { signingKeySecretRef: { name: 'signer', key: 'key.pem' }, service: 'reg' },
        },
      })
      .build();
    const st = desiredState(r, { httpSecret: 'super-secret-value', serviceMonitorApi: false });
    if (!st.ok) throw new Error(st.problems.join('; '));
    const cm = st.children.find((c) => c.kind === 'ConfigMap') as { data: Record<string, string> };
    const yaml = cm.data['berth.yaml']!;
    expect(yaml).not.toContain('super-secret-value');
    expect(yaml).not.toMatch(/BEGIN|PRIVATE/);
    const config = parseConfig(yaml, secretEnv);
    expect(config.auth.token).toMatchObject({
      signingKeyFile: '/etc/berth/token-key/signing-key.pem',
      service: 'reg',
      external: false,
    });
    expect(config.auth.htpasswd.path).toBe('/etc/berth/htpasswd/htpasswd');
    const d = st.children.find((c) => c.kind === 'Deployment') as V1Deployment;
    const { volumes, mounts: ms } = mounts(d);
    const secretVolume = (name: string): V1Volume['secret'] =>
      volumes.find((v) => v.name === name)?.secret;
    expect(secretVolume('htpasswd')).toEqual({
      secretName: 'reg-users',
      items: [{ key: 'htpasswd', path: 'htpasswd' }],
      defaultMode: 0o440,
    });
    expect(secretVolume('token-signing-key')).toEqual({
      secretName: 'signer',
      items: [{ key: 'key.pem', path: 'signing-key.pem' }],
      defaultMode: 0o440,
    });
    expect(secretVolume('client-ca')).toEqual({
      secretName: 'clients',
      items: [{ key: 'ca.pem', path: 'ca.crt' }],
      defaultMode: 0o440,
    });
    expect(ms.every((m) => m.subPath === undefined && m.subPathExpr === undefined)).toBe(true);
    for (const dir of ['/etc/berth/htpasswd', '/etc/berth/token-key', '/etc/berth/client-ca'])
      expect(ms.map((m) => m.mountPath)).toContain(dir);
    const env = JSON.stringify(d.spec!.template.spec!.containers[0]!.env);
    expect(env).not.toMatch(/htpasswd|signer/);
    // The operator's Secret keeps no signing key when one is referenced.
    const secret = st.children.find((c) => c.kind === 'Secret') as V1Secret;
    expect(Object.keys(secret.data ?? {})).toEqual(['httpSecret']);
  });

  it('GIVEN token mode with replicas and no signingKeySecretRef WHEN computed THEN one generated key is kept in the operator Secret and mounted', () => {
    const r = aRegistry()
      .with({ replicas: 3, auth: { mode: 'token', htpasswdSecretRef: htpasswdRef } })
      .build();
    let made = 0;
    const st = desiredState(r, { httpSecret: 's', serviceMonitorApi: false });
    if (!st.ok) throw new Error(st.problems.join('; '));
    const secret = st.children.find((c) => c.kind === 'Secret') as V1Secret;
    const key = signingKeyOf(secret);
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const again = desiredSecret(r, 's', undefined, key, () => `${++made}`);
    expect(signingKeyOf(again)).toBe(key);
    expect(made).toBe(0);
    const d = st.children.find((c) => c.kind === 'Deployment') as V1Deployment;
    expect(mounts(d).volumes.find((v) => v.name === 'token-signing-key')?.secret).toEqual({
      secretName: childNames(r).secret,
      items: [{ key: 'tokenSigningKey', path: 'signing-key.pem' }],
      defaultMode: 0o440,
    });
    const cm = st.children.find((c) => c.kind === 'ConfigMap') as { data: Record<string, string> };
    expect(cm.data['berth.yaml']).not.toContain(key?.split('\n')[1] ?? 'no key');
    expect(parseConfig(cm.data['berth.yaml'], secretEnv).auth.token.signingKeyFile).toBe(
      '/etc/berth/token-key/signing-key.pem',
    );
    // Without token mode the key is dropped again.
    const plain = desiredSecret(aRegistry().build(), 's', undefined, key);
    expect(signingKeyOf(plain)).toBeUndefined();
  });

  it('GIVEN external token verification WHEN rendered THEN JWKS and certificates are mounted ConfigMaps and no key is generated', () => {
    const r = aRegistry()
      .with({
        auth: {
          mode: 'token',
          token: {
            realm: 'https://auth.example.com/token',
            external: {
              jwksConfigMapRef: { name: 'issuer', key: 'jwks.json' },
              rootCertBundleConfigMapRef: { name: 'issuer', key: 'ca.crt' },
            },
            algorithms: ['RS256'],
          },
        },
      })
      .build();
    const config = parseConfig(ok(configYaml(r)), secretEnv);
    expect(config.auth.token).toMatchObject({
      external: true,
      realm: 'https://auth.example.com/token',
      jwksFile: '/etc/berth/token-jwks/jwks.json',
      rootCertBundle: '/etc/berth/token-certs/bundle.pem',
      algorithms: ['RS256'],
    });
    expect(config.auth.token.signingKeyFile).toBeUndefined();
    const { volumes } = mounts(desiredDeployment(r, 'x'));
    expect(volumes).toContainEqual({
      name: 'token-jwks',
      configMap: { name: 'issuer', items: [{ key: 'jwks.json', path: 'jwks.json' }] },
    });
    expect(signingKeyOf(desiredSecret(r, 's'))).toBeUndefined();
  });

  it('GIVEN a missing referenced Secret WHEN computed THEN nothing is applied and the reason is SecretMissing', () => {
    const r = aRegistry()
      .with({ auth: { mode: 'htpasswd', htpasswdSecretRef: htpasswdRef } })
      .build();
    const st = desiredState(r, {
      httpSecret: 's',
      serviceMonitorApi: false,
      missing: ['Secret default/reg-users not found'],
    });
    expect(st).toEqual({
      ok: false,
      reason: 'SecretMissing',
      problems: ['Secret default/reg-users not found'],
    });
  });
});

describe('referenced Secrets and ConfigMaps', () => {
  const r = aRegistry()
    .withS3({
      credentialsSecretRef: { name: 'creds', accessKeyIdKey: 'ak', secretAccessKeyKey: 'sk' },
      caBundleSecretRef: { name: 's3-ca', key: 'ca.crt' },
    })
    .with({
      tls: { secretName: 'tls', clientCASecretRef: { name: 'client-ca', key: 'ca.crt' } },
      auth: {
        mode: 'token',
        htpasswdSecretRef: { name: 'users', key: 'htpasswd' },
        token: { signingKeySecretRef: { name: 'signing', key: 'tls.key' } },
      },
    })
    .build();

  const checksumWith = (reg: Registry, values: Record<string, string>): string | undefined => {
    const st = desiredState(reg, {
      httpSecret: 's',
      serviceMonitorApi: false,
      referenced: new Map(Object.entries(values)),
    });
    if (!st.ok) throw new Error(st.problems.join('; '));
    const d = st.children.find((c) => c.kind === 'Deployment') as V1Deployment;
    return d.spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM];
  };

  it('GIVEN a Registry referencing credentials, TLS, client CA, htpasswd, S3 CA and a signing key WHEN listed THEN every object is named once, in order', () => {
    expect(referencedObjects(r).map((o) => `${o.source}/${o.name}`)).toEqual([
      'Secret/client-ca',
      'Secret/creds',
      'Secret/s3-ca',
      'Secret/signing',
      'Secret/tls',
      'Secret/users',
    ]);
  });

  it('GIVEN those references WHEN the keys that need a restart are listed THEN the credentials, S3 CA and signing key are; TLS, client CA and htpasswd (re-read in place) are not', () => {
    expect(rollingReferences(r).map(refKey)).toEqual([
      'Secret/creds/ak',
      'Secret/creds/sk',
      'Secret/s3-ca/ca.crt',
      'Secret/signing/tls.key',
    ]);
  });

  it('GIVEN rotated S3 credentials WHEN the desired state is computed THEN the pod-template checksum changes; a rotated htpasswd or an unrelated key THEN it does not', () => {
    const before = { 'Secret/creds/ak': 'AK1', 'Secret/creds/sk': 'SK1' };
    const base = checksumWith(r, before);
    expect(checksumWith(r, { ...before, 'Secret/creds/sk': 'SK2' })).not.toBe(base);
    expect(checksumWith(r, { ...before, 'Secret/users/htpasswd': 'alice:$2y$...' })).toBe(base);
    expect(checksumWith(r, { ...before, 'Secret/creds/other': 'x' })).toBe(base);
  });

  it('GIVEN a referenced key that is missing WHEN digested THEN it differs from the same key present and empty', () => {
    const a = referencesDigest(r, new Map([['Secret/creds/ak', 'AK1']]));
    const b = referencesDigest(
      r,
      new Map([
        ['Secret/creds/ak', 'AK1'],
        ['Secret/creds/sk', ''],
      ]),
    );
    expect(a).not.toBe(b);
  });
});

describe('tags kept coherent between replicas (tagCache.peerInvalidation, ADR 0025)', () => {
  const peers = (r: Registry) => ({
    listen: renderConfig(r).cache?.peerListen,
    port: desiredDeployment(r, 'digest').spec?.template.spec?.containers[0]?.ports?.find(
      (p) => p.name === 'peers',
    )?.containerPort,
  });

  it('GIVEN a Registry that follows the operator image WHEN rendered THEN every pod listens for invalidations on the peer port and advertises its pod IP', () => {
    const r = withImage(aRegistry().build(), 'berth:next');
    expect(r.spec.tagCache?.peerInvalidation).toBe(true);
    expect(peers(r)).toEqual({ listen: '0.0.0.0:5002', port: 5002 });
    const config = parseConfig(ok(configYaml(r)), secretEnv);
    expect(config.cache.peerListen).toBe('0.0.0.0:5002');
    expect(config.cache.peerAdvertise).toBe('');
  });

  it('GIVEN a pinned image WHEN rendered THEN no peer listener is rendered (an older server may not know the key); asked for THEN it is', () => {
    const pinned = withImage(aRegistry().with({ image: 'berth:old' }).build(), 'berth:next');
    expect(peers(pinned)).toEqual({ listen: undefined, port: undefined });
    const asked = withImage(
      aRegistry()
        .with({ image: 'berth:old', tagCache: { peerInvalidation: true } })
        .build(),
      'berth:next',
    );
    expect(peers(asked)).toEqual({ listen: '0.0.0.0:5002', port: 5002 });
  });

  it('GIVEN peerInvalidation false on an unpinned Registry WHEN rendered THEN it stays off', () => {
    const r = withImage(
      aRegistry()
        .with({ tagCache: { peerInvalidation: false } })
        .build(),
      'x',
    );
    expect(peers(r)).toEqual({ listen: undefined, port: undefined });
  });

  it('GIVEN a NetworkPolicy and peer invalidation WHEN rendered THEN the peer port admits only the pods of the same Registry', () => {
    const r = withImage(
      aRegistry()
        .named('images', 'registry')
        .with({ networkPolicy: { enabled: true, metrics: {} } })
        .build(),
      'x',
    );
    const ingress = desiredNetworkPolicy(r)?.spec?.ingress ?? [];
    const rule = ingress.find((i) => i.ports?.[0]?.port === 5002);
    expect(rule?._from).toEqual([
      { podSelector: { matchLabels: desiredNetworkPolicy(r)?.spec?.podSelector?.matchLabels } },
    ]);
    expect(Object.keys(rule?._from?.[0]?.podSelector?.matchLabels ?? {}).length).toBeGreaterThan(0);
  });
});
