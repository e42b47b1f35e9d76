import { describe, expect, it } from 'vitest';
import { computeStatus, statusChanged, transitions, type Observed } from '../../operator/status.js';
import type { Registry } from '../../operator/types.js';
import { aDeployment, aRegistry } from './builders.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const T1 = new Date('2026-01-01T00:05:00Z');
const storageOk = { ready: true, reason: 'BucketExists', message: 'bucket images exists' };

function observed(over: Partial<Observed> = {}): Observed {
  return {
    configProblems: [],
    storage: storageOk,
    deployment: aDeployment({ replicas: 1, ready: 1 }),
    now: T0,
    ...over,
  };
}

function cond(
  r: { conditions?: { type: string; status: string; reason: string }[] },
  type: string,
) {
  const c = r.conditions?.find((x) => x.type === type);
  return c ? `${c.status}/${c.reason}` : 'missing';
}

describe('status computation', () => {
  const reg = aRegistry().named('reg', 'ns').atGeneration(4).build();

  it('GIVEN all replicas ready and storage fine WHEN status is computed THEN Ready is True with the endpoint and generation', () => {
    const s = computeStatus(reg, observed());
    expect(cond(s, 'Ready')).toBe('True/Ready');
    expect(cond(s, 'Available')).toBe('True/MinimumReplicasAvailable');
    expect(cond(s, 'Progressing')).toBe('False/RolloutComplete');
    expect(cond(s, 'Degraded')).toBe('False/AsExpected');
    expect(cond(s, 'StorageReady')).toBe('True/BucketExists');
    expect(cond(s, 'ConfigValid')).toBe('True/ConfigRendered');
    expect(s).toMatchObject({
      observedGeneration: 4,
      replicas: 1,
      readyReplicas: 1,
      selector: 'app.kubernetes.io/name=berth,app.kubernetes.io/instance=reg',
      endpoint: 'http://reg.ns.svc:5000',
      storage: { bucket: 'images', managed: false },
    });
    expect(s.conditions?.every((c) => c.observedGeneration === 4)).toBe(true);
  });

  it('GIVEN a rollout in flight WHEN status is computed THEN Progressing is True and Ready False', () => {
    const s = computeStatus(
      reg,
      observed({ deployment: aDeployment({ replicas: 1, ready: 1, updated: 0 }) }),
    );
    expect(cond(s, 'Progressing')).toBe('True/RollingOut');
    expect(cond(s, 'Ready')).toBe('False/RollingOut');
  });

  it('GIVEN the Deployment controller has not seen the new generation WHEN computed THEN it is Progressing', () => {
    const s = computeStatus(
      reg,
      observed({
        deployment: aDeployment({ replicas: 1, ready: 1, generation: 3, observedGeneration: 2 }),
      }),
    );
    expect(cond(s, 'Progressing')).toBe('True/RollingOut');
  });

  it('GIVEN no Deployment yet WHEN computed THEN Available is False with DeploymentMissing', () => {
    const s = computeStatus(reg, observed({ deployment: undefined }));
    expect(cond(s, 'Available')).toBe('False/DeploymentMissing');
    expect(cond(s, 'Ready')).toBe('False/Unavailable');
  });

  it('GIVEN missing credentials WHEN computed THEN StorageReady, Degraded and Ready carry CredentialsMissing', () => {
    const s = computeStatus(
      reg,
      observed({
        storage: {
          ready: false,
          reason: 'CredentialsMissing',
          message: 'Secret ns/minio-creds not found',
        },
      }),
    );
    expect(cond(s, 'StorageReady')).toBe('False/CredentialsMissing');
    expect(cond(s, 'Degraded')).toBe('True/CredentialsMissing');
    expect(cond(s, 'Ready')).toBe('False/CredentialsMissing');
    expect(s.conditions?.find((c) => c.type === 'Ready')?.message).toBe(
      'Secret ns/minio-creds not found',
    );
  });

  it('GIVEN an invalid config WHEN computed THEN ConfigValid is False with the problems as the message', () => {
    const s = computeStatus(reg, observed({ configProblems: ['http.addr: must be host:port'] }));
    expect(cond(s, 'ConfigValid')).toBe('False/InvalidConfig');
    expect(s.conditions?.find((c) => c.type === 'ConfigValid')?.message).toBe(
      'http.addr: must be host:port',
    );
    expect(cond(s, 'Ready')).toBe('False/InvalidConfig');
  });

  it('GIVEN a missing referenced Secret WHEN computed THEN ConfigValid, Degraded and Ready say SecretMissing and a warning transition is emitted', () => {
    const s = computeStatus(
      reg,
      observed({
        configProblems: ['Secret default/reg-users not found'],
        configReason: 'SecretMissing',
      }),
    );
    expect(cond(s, 'ConfigValid')).toBe('False/SecretMissing');
    expect(cond(s, 'Degraded')).toBe('True/SecretMissing');
    expect(cond(s, 'Ready')).toBe('False/SecretMissing');
    expect(s.conditions?.find((c) => c.type === 'Ready')?.message).toBe(
      'Secret default/reg-users not found',
    );
    const ok = computeStatus(reg, observed());
    const t = transitions(ok, s).find((x) => x.type === 'ConfigValid');
    expect(t).toMatchObject({ to: 'False', reason: 'SecretMissing', warning: true });
  });

  it('GIVEN a child the API server refused WHEN computed THEN Degraded and Ready carry ApplyFailed with its message', () => {
    const s = computeStatus(
      reg,
      observed({ applyError: 'Ingress.networking.k8s.io "reg" is invalid' }),
    );
    expect(cond(s, 'Degraded')).toBe('True/ApplyFailed');
    expect(cond(s, 'Ready')).toBe('False/ApplyFailed');
    expect(s.conditions?.find((c) => c.type === 'Ready')?.message).toBe(
      'Ingress.networking.k8s.io "reg" is invalid',
    );
  });

  it('GIVEN zero replicas WHEN computed THEN the Registry is Ready with nothing running', () => {
    const zero = aRegistry().with({ replicas: 0 }).build();
    const s = computeStatus(zero, observed({ deployment: aDeployment({ replicas: 0, ready: 0 }) }));
    expect(cond(s, 'Ready')).toBe('True/Ready');
  });

  it('GIVEN an unchanged condition WHEN recomputed later THEN lastTransitionTime is kept; a flip THEN it moves', () => {
    const first = computeStatus(reg, observed());
    const withPrev: Registry = { ...reg, status: first };
    const same = computeStatus(withPrev, observed({ now: T1 }));
    expect(same.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime).toBe(
      T0.toISOString(),
    );
    expect(statusChanged(first, same)).toBe(false);
    const flipped = computeStatus(
      withPrev,
      observed({ now: T1, deployment: aDeployment({ replicas: 1, ready: 0 }) }),
    );
    expect(flipped.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime).toBe(
      T1.toISOString(),
    );
    expect(statusChanged(first, flipped)).toBe(true);
  });

  it('GIVEN a status read back from the API WHEN compared THEN Date and string times are equal', () => {
    const s = computeStatus(reg, observed());
    const fromApi = JSON.parse(JSON.stringify(s)) as typeof s;
    for (const c of fromApi.conditions ?? []) c.lastTransitionTime = new Date(c.lastTransitionTime);
    expect(statusChanged(fromApi, s)).toBe(false);
  });

  it('GIVEN a condition flips WHEN transitions are listed THEN only the flipped ones appear, bad ones as warnings', () => {
    const good = computeStatus(reg, observed());
    const bad = computeStatus(
      { ...reg, status: good },
      observed({
        storage: { ready: false, reason: 'EndpointUnreachable', message: 'connect ECONNREFUSED' },
      }),
    );
    const t = transitions(good, bad);
    expect(t.map((x) => `${x.type}:${x.to}:${x.warning}`).sort()).toEqual([
      'Degraded:True:true',
      'Ready:False:true',
      'StorageReady:False:true',
    ]);
    expect(transitions(bad, bad)).toEqual([]);
    expect(transitions(undefined, good).length).toBe(6);
  });
});
