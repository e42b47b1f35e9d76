import { describe, expect, it } from 'vitest';
import type { V1Pod } from '@kubernetes/client-node';
import {
  computeStatus,
  maxUnavailable,
  podProblems,
  runningImage,
  servingNeed,
  statusChanged,
  transitions,
  unmanagedStatus,
  type Observed,
} from '../../operator/status.js';
import type { Registry } from '../../operator/types.js';
import { aDaemonSet, aDeployment, aPod, aRegistry } from './builders.js';

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

  it('GIVEN a rollout in flight with the old pod serving WHEN status is computed THEN Progressing is True and Ready stays True', () => {
    const s = computeStatus(
      reg,
      observed({ deployment: aDeployment({ replicas: 1, ready: 1, updated: 0 }) }),
    );
    expect(cond(s, 'Progressing')).toBe('True/RollingOut');
    expect(cond(s, 'Ready')).toBe('True/Ready');
    expect(s.conditions?.find((c) => c.type === 'Ready')?.message).toContain('rolling out');
  });

  it('GIVEN a Ready Registry with 2 ready WHEN an HPA scales it to 5 and the new pods start THEN Ready and Available stay True with no warning transition, Progressing says so', () => {
    const prev = computeStatus(
      aRegistry().named('reg', 'ns').with({ replicas: 2 }).build(),
      observed({ deployment: aDeployment({ replicas: 2, ready: 2 }) }),
    );
    const scaled = aRegistry().named('reg', 'ns').with({ replicas: 5 }).atGeneration(2).build();
    scaled.status = prev;
    // The Deployment's own Available is False: maxUnavailable 0 wants all 5.
    const s = computeStatus(
      scaled,
      observed({ deployment: aDeployment({ replicas: 5, ready: 2, available: false }), now: T1 }),
    );
    expect(cond(s, 'Ready')).toBe('True/Ready');
    expect(cond(s, 'Available')).toBe('True/MinimumReplicasAvailable');
    expect(cond(s, 'Progressing')).toBe('True/RollingOut');
    expect(transitions(prev, s).filter((t) => t.warning)).toEqual([]);
  });

  it('GIVEN a Ready Registry with 3 ready WHEN one pod is lost THEN Ready is False (Unavailable) and stays False until all 3 are back', () => {
    const three = aRegistry().named('reg', 'ns').with({ replicas: 3 }).build();
    three.status = computeStatus(
      three,
      observed({ deployment: aDeployment({ replicas: 3, ready: 3 }) }),
    );
    const lost = computeStatus(
      three,
      observed({ deployment: aDeployment({ replicas: 3, ready: 2 }), now: T1 }),
    );
    expect(cond(lost, 'Ready')).toBe('False/Unavailable');
    expect(transitions(three.status, lost).find((t) => t.type === 'Ready')?.warning).toBe(true);
    three.status = lost;
    expect(
      cond(
        computeStatus(three, observed({ deployment: aDeployment({ replicas: 3, ready: 2 }) })),
        'Ready',
      ),
    ).toBe('False/Unavailable');
    expect(
      cond(
        computeStatus(three, observed({ deployment: aDeployment({ replicas: 3, ready: 3 }) })),
        'Ready',
      ),
    ).toBe('True/Ready');
  });

  it('GIVEN maxUnavailable 25% of 4 or the Recreate strategy WHEN resolved THEN a rollout may take down 1 or all; both 0 THEN 1', () => {
    const rolling = (maxUnavailable?: string | number, maxSurge?: string | number) =>
      aRegistry()
        .with({ replicas: 4, updateStrategy: { type: 'RollingUpdate', maxUnavailable, maxSurge } })
        .build();
    expect(maxUnavailable(rolling('25%'), 4)).toBe(1);
    expect(maxUnavailable(rolling(), 4)).toBe(0);
    expect(maxUnavailable(rolling(0, 0), 4)).toBe(1);
    expect(
      maxUnavailable(
        aRegistry()
          .with({ updateStrategy: { type: 'Recreate' } })
          .build(),
        4,
      ),
    ).toBe(4);
    expect(servingNeed(rolling('25%'))).toBe(3);
    expect(servingNeed(aRegistry().with({ replicas: 0 }).build())).toBe(0);
  });

  it('GIVEN pods of a rollout WHEN the running image is computed THEN it is what most ready pods run, ties to the older pods, none ready THEN undefined', () => {
    const pod = (name: string, image: string, created: string, ready = true): V1Pod => ({
      metadata: { name, creationTimestamp: new Date(created) },
      spec: { containers: [{ name: 'berth', image }] },
      status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] },
    });
    expect(
      runningImage([
        pod('a', 'berth:1', '2026-01-01T00:00:00Z'),
        pod('b', 'berth:2', '2026-01-02T00:00:00Z'),
      ]),
    ).toBe('berth:1');
    expect(
      runningImage([
        pod('a', 'berth:1', '2026-01-01T00:00:00Z'),
        pod('b', 'berth:2', '2026-01-02T00:00:00Z'),
        pod('c', 'berth:2', '2026-01-02T00:00:00Z'),
        pod('d', 'berth:1', '2026-01-01T00:00:00Z', false),
      ]),
    ).toBe('berth:2');
    expect(runningImage([pod('a', 'berth:1', '2026-01-01T00:00:00Z', false)])).toBeUndefined();
    const s = computeStatus(reg, observed({ image: 'berth:2' }));
    expect(s.image).toBe('berth:2');
    expect(computeStatus(reg, observed()).image).toBeUndefined();
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
    expect(transitions(undefined, good).length).toBe(7);
  });
});

describe('an Unmanaged Registry', () => {
  it('GIVEN a Ready Registry WHEN it is set Unmanaged THEN Managed turns False/Unmanaged with a Normal transition, the other conditions and fields stay, observedGeneration moves', () => {
    const r = aRegistry().named('reg', 'ns').atGeneration(3).build();
    r.status = computeStatus(r, observed());
    expect(cond(r.status, 'Managed')).toBe('True/Managed');
    r.metadata.generation = 4;
    const s = unmanagedStatus(r, T1);
    expect(cond(s, 'Managed')).toBe('False/Unmanaged');
    expect(s.conditions?.find((c) => c.type === 'Managed')?.message).toContain(
      'spec.managementState',
    );
    expect(s.observedGeneration).toBe(4);
    expect(s.conditions?.filter((c) => c.type !== 'Managed')).toEqual(
      r.status.conditions?.filter((c) => c.type !== 'Managed'),
    );
    expect(s.endpoint).toBe(r.status.endpoint);
    expect(transitions(r.status, s)).toEqual([
      expect.objectContaining({ type: 'Managed', to: 'False', warning: false }),
    ]);
  });

  it('GIVEN an Unmanaged status WHEN computed again later THEN nothing changed (no patch, no event)', () => {
    const r = aRegistry().named('reg', 'ns').build();
    r.status = unmanagedStatus(r, T0);
    const again = unmanagedStatus(r, T1);
    expect(statusChanged(r.status, again)).toBe(false);
    expect(transitions(r.status, again)).toEqual([]);
  });
});

describe('status from pods and node access', () => {
  const reg = aRegistry()
    .named('reg', 'ns')
    .with({ image: 'ghcr.io/berth-dev/berth:0.1.0' })
    .build();
  const na = aRegistry()
    .named('reg', 'ns')
    .withNodeAccess({ enabled: true, nodePort: 30500 })
    .build();

  it('GIVEN a registry container in ImagePullBackOff WHEN computed THEN Degraded and Ready say ImagePullFailed naming spec.image and the kubelet message', () => {
    const problems = podProblems([
      aPod('reg-a', { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x:bad"' }),
      aPod('reg-b'),
    ]);
    const s = computeStatus(
      reg,
      observed({ podProblems: problems, deployment: aDeployment({ replicas: 1, ready: 0 }) }),
    );
    expect(cond(s, 'Degraded')).toBe('True/ImagePullFailed');
    expect(cond(s, 'Ready')).toBe('False/ImagePullFailed');
    const msg = s.conditions?.find((c) => c.type === 'Degraded')?.message;
    expect(msg).toContain('spec.image "ghcr.io/berth-dev/berth:0.1.0" cannot be pulled');
    expect(msg).toContain(
      'pod reg-a container berth: ImagePullBackOff: Back-off pulling image "x:bad"',
    );
    const t = transitions(computeStatus(reg, observed()), s).find((x) => x.type === 'Degraded');
    expect(t).toMatchObject({ to: 'True', reason: 'ImagePullFailed', warning: true });
  });

  it('GIVEN each stuck waiting reason WHEN summarised THEN it maps to a Degraded reason; a running or terminating pod THEN none', () => {
    const reasons = [
      'ErrImagePull',
      'ImagePullBackOff',
      'InvalidImageName',
      'ErrImageNeverPull',
      'CreateContainerConfigError',
      'CrashLoopBackOff',
    ];
    const got = reasons.map((w) => podProblems([aPod('p', { reason: w })])[0]?.reason);
    expect(got).toEqual([
      'ImagePullFailed',
      'ImagePullFailed',
      'ImagePullFailed',
      'ImagePullFailed',
      'ContainerConfigFailed',
      'ContainerFailing',
    ]);
    expect(podProblems([aPod('p'), aPod('q', { reason: 'ContainerCreating' })])).toEqual([]);
    const leaving = aPod('p', { reason: 'ErrImagePull' });
    leaving.metadata!.deletionTimestamp = T0;
    expect(podProblems([leaving])).toEqual([]);
  });

  it('GIVEN a crash loop WHEN computed THEN Degraded is ContainerFailing with the last exit code; the same reason again THEN no new transition', () => {
    const crash = (msg: string) =>
      podProblems([aPod('reg-a', { reason: 'CrashLoopBackOff', message: msg, lastExitCode: 1 })]);
    const s1 = computeStatus(reg, observed({ podProblems: crash('back-off 10s') }));
    expect(cond(s1, 'Degraded')).toBe('True/ContainerFailing');
    expect(s1.conditions?.find((c) => c.type === 'Degraded')?.message).toContain(
      'back-off 10s (last exit code 1, Error)',
    );
    const s2 = computeStatus(
      { ...reg, status: s1 },
      observed({ podProblems: crash('back-off 20s') }),
    );
    expect(transitions(s1, s2)).toEqual([]);
  });

  it('GIVEN node access off WHEN computed THEN there is no NodeAccessReady and no nodeAddress', () => {
    const s = computeStatus(reg, observed());
    expect(cond(s, 'NodeAccessReady')).toBe('missing');
    expect(s.nodeAddress).toBeUndefined();
  });

  it('GIVEN node access with every node ready WHEN computed THEN NodeAccessReady is True and nodeAddress is localhost:<nodePort>', () => {
    const s = computeStatus(
      na,
      observed({ nodeAccess: { daemonSet: aDaemonSet({ desired: 3, ready: 3 }) } }),
    );
    expect(cond(s, 'NodeAccessReady')).toBe('True/NodesConfigured');
    expect(s.nodeAddress).toBe('localhost:30500');
    expect(cond(s, 'Ready')).toBe('True/Ready');
  });

  it('GIVEN some nodes not ready or no nodes WHEN computed THEN NodeAccessReady is False, pending ones without a warning', () => {
    const pending = computeStatus(
      na,
      observed({ nodeAccess: { daemonSet: aDaemonSet({ desired: 3, ready: 1 }) } }),
    );
    expect(cond(pending, 'NodeAccessReady')).toBe('False/NodesPending');
    expect(pending.conditions?.find((c) => c.type === 'NodeAccessReady')?.message).toBe(
      '1/3 nodes configured',
    );
    expect(transitions(undefined, pending).find((t) => t.type === 'NodeAccessReady')?.warning).toBe(
      false,
    );
    const none = computeStatus(
      na,
      observed({ nodeAccess: { daemonSet: aDaemonSet({ desired: 0, ready: 0 }) } }),
    );
    expect(cond(none, 'NodeAccessReady')).toBe('False/NoNodes');
  });

  it('GIVEN the API server refused the node port WHEN computed THEN NodeAccessReady is False naming spec.nodeAccess.nodePort and the reason, Degraded says so, Ready stays about serving', () => {
    const s = computeStatus(
      na,
      observed({
        nodeAccess: {
          daemonSet: undefined,
          refused:
            'Service "reg-node" is invalid: spec.ports[0].nodePort: Invalid value: 30500: provided port is already allocated',
        },
      }),
    );
    expect(cond(s, 'NodeAccessReady')).toBe('False/NodePortRefused');
    const msg = s.conditions?.find((c) => c.type === 'NodeAccessReady')?.message ?? '';
    expect(msg).toContain('spec.nodeAccess.nodePort 30500');
    expect(msg).toContain('provided port is already allocated');
    expect(cond(s, 'Degraded')).toBe('True/NodePortRefused');
    expect(cond(s, 'Ready')).toBe('True/Ready');
    const t = transitions(undefined, s).find((x) => x.type === 'NodeAccessReady');
    expect(t).toMatchObject({ to: 'False', warning: true });
  });

  it('GIVEN a refused cluster IP WHEN computed THEN the reason is ClusterIPRefused naming spec.nodeAccess.clusterIP', () => {
    const r = aRegistry()
      .withNodeAccess({ enabled: true, mode: 'ClusterIP', clusterIP: '10.0.0.9' })
      .build();
    const s = computeStatus(
      r,
      observed({
        nodeAccess: { daemonSet: undefined, refused: 'the provided IP is not in the valid range' },
      }),
    );
    expect(cond(s, 'NodeAccessReady')).toBe('False/ClusterIPRefused');
    expect(s.conditions?.find((c) => c.type === 'NodeAccessReady')?.message).toContain(
      'spec.nodeAccess.clusterIP 10.0.0.9',
    );
  });

  it('GIVEN node access turned off after being on WHEN compared THEN the status changed (nodeAddress dropped)', () => {
    const on = computeStatus(
      na,
      observed({ nodeAccess: { daemonSet: aDaemonSet({ desired: 1, ready: 1 }) } }),
    );
    const off = computeStatus({ ...reg, status: on }, observed());
    expect(statusChanged(on, off)).toBe(true);
    expect(off.nodeAddress).toBeUndefined();
  });
});
