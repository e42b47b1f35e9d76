/**
 * watchResource against a real kube-apiserver: a metadata-only watch (what the operator keeps
 * of every Secret and ConfigMap in the cluster) holds no values, yet sees every change.
 */
import { CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { metadataList, watchResource, type Watched } from '../../operator/informer.js';
import { startControlPlane, type ControlPlane } from '../support/kube.js';
import { createNamespace, eventually } from './cluster.js';

const NS = 'informer';
const VALUE = 'value-the-operator-must-not-hold';
/** holdsValue says whether `o` carries the Secret's value (base64 in `data`), old or rotated. */
const holdsValue = (o: unknown): boolean =>
  [VALUE, `${VALUE}-rotated`].some((v) =>
    JSON.stringify(o).includes(Buffer.from(v).toString('base64')),
  );
const silent = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

describe('watchResource on a real API server', () => {
  let cp: ControlPlane;
  let core: CoreV1Api;
  const started: Watched<V1Secret>[] = [];

  beforeAll(async () => {
    cp = await startControlPlane({ controllerManager: false });
    core = cp.kc().makeApiClient(CoreV1Api);
    await createNamespace(cp.kc(), NS);
    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'creds' }, stringData: { secretAccessKey: VALUE } },
    });
  }, 180_000);

  afterEach(() => {
    for (const w of started.splice(0)) w.stop();
  });

  afterAll(async () => {
    await cp?.stop();
  });

  const secrets = (metadataOnly: boolean, seen: string[] = []) => {
    const w = watchResource<V1Secret>({
      kc: cp.kc(),
      path: '/api/v1/secrets',
      list: () =>
        metadataOnly
          ? core.listSecretForAllNamespaces({}, metadataList())
          : core.listSecretForAllNamespaces(),
      metadataOnly,
      onEvent: (t, o) =>
        seen.push(`${t} ${o.metadata?.name} ${holdsValue(o) ? 'with' : 'without'} value`),
      log: silent,
    });
    started.push(w);
    return w;
  };

  it('GIVEN a Secret WHEN watched metadata-only THEN the cache has its name and resourceVersion but no value, and an update of its value is seen without it', async () => {
    const seen: string[] = [];
    const w = secrets(true, seen);
    await w.start();
    const cached = w.get('creds', NS);
    expect(cached?.metadata?.resourceVersion).toMatch(/^\d+$/);
    expect(cached?.data).toBeUndefined();
    expect(holdsValue(w.list())).toBe(false);

    await core.replaceNamespacedSecret({
      name: 'creds',
      namespace: NS,
      body: { metadata: { name: 'creds' }, stringData: { secretAccessKey: `${VALUE}-rotated` } },
    });
    await eventually(async () => expect(seen).toContain('update creds without value'), 10_000);
    expect(w.get('creds', NS)?.metadata?.resourceVersion).not.toBe(
      cached?.metadata?.resourceVersion,
    );
  });

  it('GIVEN the same Secret WHEN watched whole THEN the cache holds its value (so the check above can fail)', async () => {
    const w = secrets(false);
    await w.start();
    expect(w.get('creds', NS)?.data?.secretAccessKey).toBeDefined();
    expect(holdsValue(w.list())).toBe(true);
  });
});
