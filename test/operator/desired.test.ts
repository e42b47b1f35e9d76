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
import { desiredState } from '../../operator/desired/index.js';
import {
  CONFIG_CHECKSUM,
  childNames,
  endpoint,
  selectorString,
} from '../../operator/desired/meta.js';
import {
  desiredIngress,
  desiredPodDisruptionBudget,
  desiredService,
  desiredServiceMonitor,
} from '../../operator/desired/network.js';
import { desiredSecret, httpSecretOf } from '../../operator/desired/secret.js';
import type { V1Deployment, V1Secret } from '@kubernetes/client-node';
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
    .with({ replicas: 3, resources: { requests: { cpu: '100m' } }, nodeSelector: { zone: 'a' } })
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
    expect(c.resources).toEqual({ requests: { cpu: '100m' } });
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
  it('GIVEN service settings WHEN rendered THEN the Service exposes http (and metrics) on the pods', () => {
    const r = aRegistry()
      .with({ service: { type: 'NodePort', port: 80, annotations: { a: 'b' } } })
      .build();
    const s = desiredService(r);
    expect(s.spec?.type).toBe('NodePort');
    expect(s.spec?.ports).toEqual([
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
      { name: 'metrics', port: 5001, targetPort: 'debug', protocol: 'TCP' },
    ]);
    expect(s.metadata?.annotations).toEqual({ a: 'b' });
    expect(endpoint(r)).toBe('http://reg.default.svc:80');
  });

  it('GIVEN the PDB defaults WHEN rendered THEN one pod may be down; disabled THEN none is rendered', () => {
    expect(desiredPodDisruptionBudget(aRegistry().build())?.spec).toMatchObject({
      maxUnavailable: 1,
    });
    expect(
      desiredPodDisruptionBudget(
        aRegistry()
          .with({ podDisruptionBudget: { enabled: true, minAvailable: '50%' } })
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

describe('desired state', () => {
  it('GIVEN a valid Registry WHEN the desired state is computed THEN config comes before the workload and every child is owned', () => {
    const st = desiredState(aRegistry().build(), { httpSecret: 'kept', serviceMonitorApi: false });
    if (!st.ok) throw new Error('not ok');
    expect(st.children.map((c) => c.kind)).toEqual([
      'ConfigMap',
      'Secret',
      'Deployment',
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
    });
    expect(parse(ok(configYaml(aRegistry().build())))).toHaveProperty('storage.driver', 's3');
  });
});
