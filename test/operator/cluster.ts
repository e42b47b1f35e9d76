/** Helpers for operator tests against the real control plane (test/support/kube.ts). */
import { readFileSync } from 'node:fs';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  loadYaml,
  PatchStrategy,
  type KubeConfig,
  type KubernetesObject,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import type { Registry } from '../../operator/types.js';
import { CRD_PATH } from './builders.js';

/** eventually retries `fn` until it stops throwing or `ms` pass, then rethrows its last error. */
export async function eventually<T>(fn: () => Promise<T>, ms = 30_000, every = 200): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, every));
    }
  }
}

/** installCrd creates the Registry CRD from crds/ and waits until it is Established. */
export async function installCrd(kc: KubeConfig): Promise<V1CustomResourceDefinition> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  // loadYaml maps x-kubernetes-* keys onto the typed model; a plain parse would lose them.
  const body = loadYaml<V1CustomResourceDefinition>(readFileSync(CRD_PATH, 'utf8'));
  await api.createCustomResourceDefinition({ body });
  return eventually(async () => {
    const crd = await api.readCustomResourceDefinition({ name: 'registries.berth.dev' });
    const est = crd.status?.conditions?.find((c) => c.type === 'Established');
    if (est?.status !== 'True') throw new Error('CRD not established');
    return crd;
  });
}

/** applyAs server-side-applies `obj` as a person with kubectl would (field manager kubectl). */
export async function kubectlApply<T extends KubernetesObject>(kc: KubeConfig, obj: T): Promise<T> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  return api.patch(obj, undefined, undefined, 'kubectl', true, PatchStrategy.ServerSideApply);
}

export async function createNamespace(kc: KubeConfig, name: string): Promise<void> {
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
}

export async function getRegistry(
  kc: KubeConfig,
  namespace: string,
  name: string,
): Promise<Registry> {
  return (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
    group: 'berth.dev',
    version: 'v1alpha1',
    namespace,
    plural: 'registries',
    name,
  })) as Registry;
}

/** condition returns `status/reason` of a Registry condition, or `missing`. */
export function condition(r: Registry, type: string): string {
  const c = r.status?.conditions?.find((x) => x.type === type);
  return c ? `${c.status}/${c.reason}` : 'missing';
}

/** apiError is the message of a rejected request (the Status body's message). */
export function apiError(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
  if (body && typeof body === 'object' && 'message' in body) return String(body.message);
  return String(err);
}
