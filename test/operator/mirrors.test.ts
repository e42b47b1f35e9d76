/**
 * spec.mirrors (the pull-through cache's upstreams) and spec.nodeAccess.mirrorFor: what the
 * operator renders, mounts and digests, what it refuses, and what the node-access DaemonSet
 * is told. The node side (the hosts.toml files) is in nodeconfig.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { V1DaemonSet, V1Deployment, V1Volume } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { JsonSchema } from '../../server/config/json-schema.js';
import { parseConfig } from '../../server/config/load.js';
import { syncListSchema } from '../../server/config/sync.js';
import { configYaml, renderConfig } from '../../operator/desired/config.js';
import { referencedObjects, rollingReferences } from '../../operator/desired/files.js';
import { desiredState, refKey } from '../../operator/desired/index.js';
import { CONFIG_CHECKSUM } from '../../operator/desired/meta.js';
import { desiredNodeAccessDaemonSet, mirrorFor } from '../../operator/desired/nodeaccess.js';
import { reconcileRegistry } from '../../operator/reconcile/registry.js';
import { computeStatus, transitions } from '../../operator/status.js';
import type { MirrorUpstreamSpec, Registry } from '../../operator/types.js';
import { aDaemonSet, aDeployment, aRegistry, CRD_PATH, type RegistryBuilder } from './builders.js';
import { FakeCluster } from './fake-cluster.js';

const NS = 'team-a';
const secretEnv = {
  BERTH_STORAGE_S3_ACCESS_KEY: 'AK',
  BERTH_STORAGE_S3_SECRET_KEY: 'SK',
  BERTH_HTTP_SECRET: 'h',
};

/** As a user writes them: the CRD fills in the reference keys. */
const dockerHub = (): MirrorUpstreamSpec =>
  ({
    name: 'docker-hub',
    url: 'https://registry-1.docker.io',
    prefix: 'docker.io',
    ns: ['docker.io'],
    repositories: ['library/**'],
    username: 'me',
    passwordSecretRef: { name: 'hub' },
    tagTtlSeconds: 600,
  }) as MirrorUpstreamSpec;
const team = (): MirrorUpstreamSpec =>
  ({
    name: 'team',
    url: 'https://registry.example.com:5000',
    prefix: 'team-mirror',
    caBundleConfigMapRef: { name: 'team-ca' },
    maxRetries: 1,
  }) as MirrorUpstreamSpec;

const mirrored = (): RegistryBuilder =>
  aRegistry()
    .named('images', NS)
    .with({ mirrors: { upstreams: [dockerHub(), team()] } });

function ok(r: ReturnType<typeof configYaml>): string {
  if (!r.ok) throw new Error(r.problems.join('; '));
  return r.yaml;
}

function deployment(r: Registry, referenced: Record<string, string> = {}): V1Deployment {
  const st = desiredState(r, {
    httpSecret: 's',
    serviceMonitorApi: false,
    referenced: new Map(Object.entries(referenced)),
  });
  if (!st.ok) throw new Error(st.problems.join('; '));
  return st.children.find((c) => c.kind === 'Deployment') as V1Deployment;
}

describe('spec.mirrors rendered into the server config', () => {
  it('GIVEN two upstreams WHEN rendered THEN the server parses mirrors.upstreams with the spec values and the mounted file paths', () => {
    const config = parseConfig(ok(configYaml(mirrored().build())), secretEnv);
    expect(config.mirrors.upstreams).toEqual([
      {
        name: 'docker-hub',
        url: 'https://registry-1.docker.io',
        prefix: 'docker.io',
        ns: ['docker.io'],
        repositories: ['library/**'],
        username: 'me',
        passwordFile: '/etc/berth/mirrors/docker-hub/password/password',
        tagTtlSeconds: 600,
      },
      {
        name: 'team',
        url: 'https://registry.example.com:5000',
        prefix: 'team-mirror',
        caFile: '/etc/berth/mirrors/team/ca/ca.crt',
        maxRetries: 1,
      },
    ]);
  });

  it('GIVEN no spec.mirrors WHEN rendered THEN the config has no mirrors section (no rollout on upgrade)', () => {
    expect(renderConfig(aRegistry().build()).mirrors).toBeUndefined();
    expect(
      renderConfig(
        aRegistry()
          .with({ mirrors: { upstreams: [] } })
          .build(),
      ).mirrors,
    ).toBeUndefined();
  });

  it('GIVEN an upstream the server rejects WHEN rendered THEN the config is invalid and names the field', () => {
    const bad = { ...team(), url: 'ftp://nope' };
    const res = configYaml(
      aRegistry()
        .with({ mirrors: { upstreams: [bad] } })
        .build(),
    );
    expect(res.ok).toBe(false);
    expect(!res.ok && res.problems.join('\n')).toContain('mirrors.upstreams');
  });

  it('GIVEN a password Secret and a CA ConfigMap WHEN the Deployment is rendered THEN each is its own volume by key, mounted read-only without subPath, and neither is in the ConfigMap or the environment', () => {
    const r = mirrored().build();
    const d = deployment(r);
    const pod = d.spec!.template.spec!;
    const volume = (name: string): V1Volume | undefined =>
      pod.volumes?.find((v) => v.name === name);
    expect(volume('mirror-0-password')).toEqual({
      name: 'mirror-0-password',
      secret: {
        secretName: 'hub',
        items: [{ key: 'password', path: 'password' }],
        defaultMode: 0o440,
      },
    });
    expect(volume('mirror-1-ca')).toEqual({
      name: 'mirror-1-ca',
      configMap: { name: 'team-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
    const mounts = pod.containers[0]!.volumeMounts ?? [];
    expect(mounts.filter((m) => m.name.startsWith('mirror-'))).toEqual([
      {
        name: 'mirror-0-password',
        mountPath: '/etc/berth/mirrors/docker-hub/password',
        readOnly: true,
      },
      { name: 'mirror-1-ca', mountPath: '/etc/berth/mirrors/team/ca', readOnly: true },
    ]);
    expect(JSON.stringify(pod.containers[0]!.env)).not.toMatch(/hub|team-ca|mirror/);
  });

  it('GIVEN mirror references WHEN listed THEN the Secret and ConfigMap are watched and both keys roll the pods (the server reads them at start)', () => {
    const r = mirrored().build();
    expect(referencedObjects(r).map((o) => `${o.source}/${o.name}`)).toEqual([
      'ConfigMap/team-ca',
      'Secret/hub',
      'Secret/minio-creds',
    ]);
    expect(rollingReferences(r).map(refKey).slice(-2)).toEqual([
      'Secret/hub/password',
      'ConfigMap/team-ca/ca.crt',
    ]);
  });

  it('GIVEN a rotated upstream password or CA WHEN the desired state is computed THEN the pod-template checksum changes; the same values THEN it does not', () => {
    const r = mirrored().build();
    const values = { 'Secret/hub/password': 'p1', 'ConfigMap/team-ca/ca.crt': 'PEM1' };
    const sum = (v: Record<string, string>) =>
      deployment(r, v).spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM];
    const base = sum(values);
    expect(sum({ ...values })).toBe(base);
    expect(sum({ ...values, 'Secret/hub/password': 'p2' })).not.toBe(base);
    expect(sum({ ...values, 'ConfigMap/team-ca/ca.crt': 'PEM2' })).not.toBe(base);
  });
});

describe('spec.mirrors.sync rendered into the server config', () => {
  const job = {
    name: 'base',
    upstream: 'docker-hub',
    repositories: ['library/alpine'],
    tags: { semver: '>=3.19 <4', glob: ['latest'] },
    platforms: ['linux/amd64'],
    intervalSeconds: 600,
  };
  const syncing = () =>
    aRegistry()
      .named('images', NS)
      .with({ mirrors: { upstreams: [{ ...dockerHub(), idleTimeoutSeconds: 30 }], sync: [job] } });

  it('GIVEN a sync job WHEN rendered THEN the server parses mirrors.sync as written, and the upstream keeps its idle timeout', () => {
    const config = parseConfig(ok(configYaml(syncing().build())), secretEnv);
    expect(config.mirrors.sync).toEqual([job]);
    expect(config.mirrors.upstreams[0]?.idleTimeoutSeconds).toBe(30);
  });

  it('GIVEN a sync job naming no configured upstream WHEN rendered THEN the config is invalid and names the field', () => {
    const res = configYaml(
      aRegistry()
        .with({ mirrors: { sync: [{ ...job, upstream: 'quay' }] } })
        .build(),
    );
    expect(res.ok).toBe(false);
    expect(!res.ok && res.problems.join('\n')).toContain('mirrors.sync.0.upstream');
  });

  it('GIVEN a sync job with a cron schedule WHEN rendered THEN the server parses it; GIVEN one that does not parse THEN the config is invalid and names the field', () => {
    const timed = syncing().build();
    const unscheduled = { ...job, intervalSeconds: undefined };
    timed.spec.mirrors!.sync![0] = { ...unscheduled, schedule: '30 2 * * mon-fri' };
    expect(parseConfig(ok(configYaml(timed)), secretEnv).mirrors.sync[0]?.schedule).toBe(
      '30 2 * * mon-fri',
    );
    const bad = syncing().build();
    bad.spec.mirrors!.sync![0] = { ...unscheduled, schedule: '30 25 * * *' };
    const res = configYaml(bad);
    expect(res.ok).toBe(false);
    expect(!res.ok && res.problems.join('\n')).toContain(
      'mirrors.sync.0.schedule: hour: "25" is not between 0 and 23',
    );
  });

  it('GIVEN a changed sync job WHEN the desired state is computed THEN the pod-template checksum changes (the server reads the config at start)', () => {
    const sum = (r: Registry) =>
      deployment(r, { 'Secret/hub/password': 'p' }).spec?.template.metadata?.annotations?.[
        CONFIG_CHECKSUM
      ];
    const base = sum(syncing().build());
    expect(sum(syncing().build())).toBe(base);
    const moved = syncing().build();
    moved.spec.mirrors!.sync![0]!.intervalSeconds = 60;
    expect(sum(moved)).not.toBe(base);
  });

  it('GIVEN the CRD WHEN its spec.mirrors.sync items are compared with the server schema THEN they have the same properties and required fields', () => {
    const crd = parse(readFileSync(CRD_PATH, 'utf8')) as {
      spec: { versions: { schema: { openAPIV3Schema: JsonSchema } }[] };
    };
    const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties!.spec!;
    const items = spec.properties!.mirrors!.properties!.sync!.items!;
    const server = syncListSchema.items;
    expect(Object.keys(items.properties!).sort()).toEqual(Object.keys(server.properties).sort());
    expect(items.required).toEqual([...server.required]);
    expect(Object.keys(items.properties!.tags!.properties!).sort()).toEqual(
      Object.keys(server.properties.tags.properties).sort(),
    );
    const upstream = spec.properties!.mirrors!.properties!.upstreams!.items!;
    expect(upstream.properties).toHaveProperty('idleTimeoutSeconds');
  });
});

/** cluster holds the S3 credentials and, unless left out, the mirror password and CA. */
function cluster(reg: RegistryBuilder, opts: { password?: string } = {}): FakeCluster {
  const c = new FakeCluster();
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  c.put({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'minio-creds', namespace: NS },
    data: { accessKeyId: b64('AK'), secretAccessKey: b64('SK') },
  });
  c.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'team-ca', namespace: NS },
    data: { 'ca.crt': 'PEM' },
  });
  if (opts.password !== undefined)
    c.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'hub', namespace: NS },
      data: { password: b64(opts.password) },
    });
  c.registry = reg.build();
  return c;
}

function condition(r: Registry | undefined, type: string): string {
  const x = r?.status?.conditions?.find((c) => c.type === type);
  return x ? `${x.status}/${x.reason}` : 'missing';
}

function checksumOf(c: FakeCluster): string | undefined {
  const d = c.get('Deployment', NS, 'images') as V1Deployment;
  return d.spec?.template.metadata?.annotations?.[CONFIG_CHECKSUM];
}

describe('spec.mirrors reconciled on a fake cluster', () => {
  it('GIVEN the password Secret missing WHEN reconciled THEN nothing is applied, ConfigValid says SecretMissing naming it, a Warning Event fires; WHEN it appears THEN the children are applied', async () => {
    const c = cluster(mirrored());
    const res = await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.calls).toEqual(['status']);
    expect(res).toEqual({ requeueAfterMs: 15_000 });
    expect(condition(c.registry, 'ConfigValid')).toBe('False/SecretMissing');
    const msg = c.registry?.status?.conditions?.find((x) => x.type === 'ConfigValid')?.message;
    expect(msg).toBe('Secret team-a/hub not found');
    expect(c.events).toContain('Warning/SecretMissing');

    c.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'hub', namespace: NS },
      data: { other: Buffer.from('x').toString('base64') },
    });
    c.calls.length = 0;
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.registry?.status?.conditions?.find((x) => x.type === 'ConfigValid')?.message).toBe(
      'Secret team-a/hub has no key password',
    );
    expect(c.calls).toEqual(['status']);

    c.remove('Secret', NS, 'hub');
    c.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'hub', namespace: NS },
      data: { password: Buffer.from('p1').toString('base64') },
    });
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.calls).toContain('apply Deployment/images');
    expect(condition(c.registry, 'ConfigValid')).toBe('True/ConfigRendered');
  });

  it('GIVEN a running Registry WHEN the upstream password is rotated THEN the next reconcile rolls the pods through the checksum', async () => {
    const c = cluster(mirrored(), { password: 'p1' });
    await reconcileRegistry(c.deps(), NS, 'images');
    const before = checksumOf(c);
    expect(before).toBeDefined();
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(checksumOf(c)).toBe(before);
    c.put({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'hub', namespace: NS },
      data: { password: Buffer.from('p2').toString('base64') },
    });
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(checksumOf(c)).not.toBe(before);
    const cm = c.get('ConfigMap', NS, 'images-config') as { data: Record<string, string> };
    expect(cm.data['berth.yaml']).not.toMatch(/p1|p2/);
    expect(cm.data['berth.yaml']).toContain('/etc/berth/mirrors/docker-hub/password/password');
  });
});

describe('spec.nodeAccess.mirrorFor', () => {
  const withMirrorFor = (hosts: string[], runtimes?: ('containerd' | 'cri-o')[]) =>
    mirrored().withNodeAccess({
      enabled: true,
      nodePort: 30500,
      mirrorFor: hosts,
      ...(runtimes ? { runtimes } : {}),
    });

  const argsOf = (ds: V1DaemonSet | undefined): string[] =>
    ds?.spec?.template.spec?.containers[0]?.args ?? [];

  it('GIVEN docker.io in the ns of an upstream WHEN the DaemonSet is rendered THEN node-config is told to mirror it', () => {
    const args = argsOf(desiredNodeAccessDaemonSet(withMirrorFor(['docker.io']).build()));
    expect(args).toContain('--containerd-dir');
    const i = args.indexOf('--mirror-for');
    expect(args[i + 1]).toBe('docker.io');
  });

  it('GIVEN no mirrorFor WHEN the DaemonSet is rendered THEN there is no --mirror-for (no node rollout on upgrade)', () => {
    expect(argsOf(desiredNodeAccessDaemonSet(withMirrorFor([]).build()))).not.toContain(
      '--mirror-for',
    );
  });

  it('GIVEN ghcr.io that no upstream maps WHEN rendered and computed THEN only docker.io is passed, NodeAccessReady and Degraded say MirrorNotConfigured naming the field, with a warning', () => {
    const r = withMirrorFor(['docker.io', 'ghcr.io']).build();
    expect(mirrorFor(r)).toEqual({
      hosts: ['docker.io'],
      unmapped: ['spec.nodeAccess.mirrorFor[1] "ghcr.io"'],
    });
    const args = argsOf(desiredNodeAccessDaemonSet(r));
    expect(args[args.indexOf('--mirror-for') + 1]).toBe('docker.io');
    const status = computeStatus(r, {
      configProblems: [],
      storage: { ready: true, reason: 'BucketExists', message: 'ok' },
      deployment: aDeployment({ replicas: 1, ready: 1 }),
      now: new Date('2026-01-01T00:00:00Z'),
      nodeAccess: { daemonSet: aDaemonSet({ desired: 2, ready: 2 }) },
    });
    const nodeCond = status.conditions?.find((x) => x.type === 'NodeAccessReady');
    expect(`${nodeCond?.status}/${nodeCond?.reason}`).toBe('False/MirrorNotConfigured');
    expect(nodeCond?.message).toContain('spec.nodeAccess.mirrorFor[1] "ghcr.io"');
    expect(condition({ ...r, status }, 'Degraded')).toBe('True/MirrorNotConfigured');
    expect(condition({ ...r, status }, 'Ready')).toBe('True/Ready');
    expect(transitions(undefined, status)).toContainEqual(
      expect.objectContaining({ type: 'NodeAccessReady', warning: true }),
    );
  });

  it('GIVEN node access for CRI-O only WHEN rendered THEN mirrorFor is not passed nor reported (containerd only)', () => {
    const r = withMirrorFor(['ghcr.io'], ['cri-o']).build();
    expect(mirrorFor(r)).toEqual({ hosts: [], unmapped: [] });
    expect(argsOf(desiredNodeAccessDaemonSet(r))).not.toContain('--mirror-for');
  });

  it('GIVEN an unmapped host WHEN reconciled on a fake cluster THEN the DaemonSet is still applied and a Warning Event names MirrorNotConfigured', async () => {
    const c = cluster(withMirrorFor(['docker.io', 'quay.io']), { password: 'p' });
    await reconcileRegistry(c.deps(), NS, 'images');
    expect(c.calls).toContain('apply DaemonSet/images-node-access');
    expect(condition(c.registry, 'NodeAccessReady')).toBe('False/MirrorNotConfigured');
    expect(c.events).toContain('Warning/MirrorNotConfigured');
    const ds = c.get('DaemonSet', NS, 'images-node-access') as V1DaemonSet;
    expect(argsOf(ds)).toContain('docker.io');
    expect(argsOf(ds)).not.toContain('quay.io');
  });
});
