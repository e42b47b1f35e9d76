/**
 * The operator starting to lead while the API server stumbles, against a real kube-apiserver.
 * A leader whose controller could not start used to stay unready for good (helm's --wait of
 * the chart timed out on the real node): its first discovery request (`GET /apis`, asked to
 * know whether ServiceMonitors are served) was awaited before any informer started, and one
 * failed or unanswered request ended start() with nothing watched. The faults are injected
 * into the operator's own client: the API server itself stays healthy.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../operator/log.js';
import { runOperator, type RunningOperator } from '../../operator/main.js';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import { aRegistry } from './builders.js';
import {
  condition,
  createNamespace,
  eventually,
  getRegistry,
  installCrd,
  kubectlApply,
} from './cluster.js';

const NS = 'startup';

function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
    if (lines.length > 2000) lines.shift();
  };
  return { lines, debug: () => undefined, info: at('info'), warn: at('warn'), error: at('error') };
}

type Fault = 'fail-once' | 'hang-once';

/**
 * withDiscoveryFault is an admin KubeConfig whose first request for the API group list
 * (`GET /apis`) meets `fault`: it fails before it is sent, or it is never answered. Later ones
 * go through. `asked` counts them.
 */
function withDiscoveryFault(kc: KubeConfig, fault: Fault): { kc: KubeConfig; asked: () => number } {
  let asked = 0;
  const apply = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (ctx) => {
    if (/^\/apis\/?$/.test(new URL(ctx.getUrl()).pathname)) {
      asked++;
      if (asked === 1 && fault === 'hang-once') return new Promise<void>(() => undefined);
      if (asked === 1) throw new Error('connect ECONNREFUSED 10.96.0.1:443 (injected)');
    }
    return apply(ctx);
  };
  return { kc, asked: () => asked };
}

describe('berth operator starting to lead while the API server stumbles', () => {
  let cp: ControlPlane;
  let operator: RunningOperator | undefined;
  const log = memoryLog();

  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
    await installCrd(cp.kc());
    await createNamespace(cp.kc(), NS);
  }, 180_000);

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail')
      process.stderr.write(`operator log (last 40 lines):\n${log.lines.slice(-40).join('\n')}\n`);
    await operator?.stop();
    operator = undefined;
  });

  afterAll(async () => {
    await cp?.stop();
  });

  const start = (kc: KubeConfig, lease: string) =>
    runOperator({
      kc,
      leaseNamespace: NS,
      leaseName: lease,
      identity: lease,
      probeHost: '127.0.0.1',
      probePort: 0,
      retryPeriodMs: 200,
      log,
    });

  /**
   * reconciles applies a Registry whose credentials Secret (the builder's) does not exist, and
   * waits for the status that says so.
   */
  const reconciles = async (name: string): Promise<void> => {
    await kubectlApply(cp.kc(), aRegistry().named(name, NS).raw() as never);
    await eventually(async () => {
      const r = await getRegistry(cp.kc(), NS, name);
      expect(condition(r, 'StorageReady')).toBe('False/CredentialsMissing');
    });
  };

  it('GIVEN the leader’s first API discovery request fails WHEN the operator starts THEN it becomes ready, reconciles Registries, stays healthy, and asks discovery again', async () => {
    const fault = withDiscoveryFault(cp.kc(), 'fail-once');
    operator = await start(fault.kc, 'fail-once');
    const op = operator;

    await eventually(async () => {
      expect(op.isLeader()).toBe(true);
      expect((await fetch(`http://127.0.0.1:${op.port}/readyz`)).status).toBe(200);
    });
    expect((await fetch(`http://127.0.0.1:${op.port}/healthz`)).status).toBe(200);
    await reconciles('after-failure');
    await eventually(async () => expect(fault.asked()).toBeGreaterThanOrEqual(2));
    expect(log.lines.some((l) => l.includes('api discovery failed'))).toBe(true);
  });

  it('GIVEN the leader’s first API discovery request is never answered WHEN the operator starts THEN it becomes ready and reconciles Registries at once, and gives that request up after 10 s', async () => {
    const fault = withDiscoveryFault(cp.kc(), 'hang-once');
    operator = await start(fault.kc, 'hang-once');
    const op = operator;

    await eventually(async () => {
      expect(op.isLeader()).toBe(true);
      expect((await fetch(`http://127.0.0.1:${op.port}/readyz`)).status).toBe(200);
    });
    await reconciles('unanswered');
    await eventually(
      async () =>
        expect(log.lines.filter((l) => l.includes('no answer in 10000 ms')).length).toBe(1),
      20_000,
    );
  }, 60_000);
});
