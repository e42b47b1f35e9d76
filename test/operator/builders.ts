/**
 * Fixtures for operator tests: a fluent Registry builder whose objects carry the defaults the
 * CRD schema gives them (read from crds/registries.berth.dev.yaml, applied as the API server does).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { V1DaemonSet, V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { NodeAccessSpec, Registry, RegistrySpec } from '../../operator/types.js';

export const CRD_PATH = fileURLToPath(
  new URL('../../crds/registries.berth.dev.yaml', import.meta.url),
);

interface Schema {
  type?: string;
  default?: unknown;
  properties?: Record<string, Schema>;
  items?: Schema;
}

/** crd is the parsed CRD manifest. */
export function crd(): {
  spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
} {
  return parse(readFileSync(CRD_PATH, 'utf8')) as ReturnType<typeof crd>;
}

/** applyDefaults fills `value` with the schema's defaults, as structural defaulting does. */
export function applyDefaults(schema: Schema, value: unknown): unknown {
  if (
    schema.type === 'object' &&
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value)
  ) {
    const obj = value as Record<string, unknown>;
    for (const [k, s] of Object.entries(schema.properties ?? {})) {
      if (obj[k] === undefined && s.default !== undefined) obj[k] = structuredClone(s.default);
      if (obj[k] !== undefined) obj[k] = applyDefaults(s, obj[k]);
    }
    return obj;
  }
  if (schema.type === 'array' && Array.isArray(value) && schema.items) {
    return value.map((v) => applyDefaults(schema.items!, v));
  }
  return value;
}

type SpecInput = Partial<Omit<RegistrySpec, 'storage' | 'nodeAccess'>> & {
  storage?: { s3?: Partial<RegistrySpec['storage']['s3']> };
  nodeAccess?: Partial<NodeAccessSpec>;
};

/** RegistryBuilder builds a Registry step by step; `build()` applies the CRD defaults. */
export class RegistryBuilder {
  private name = 'reg';
  private namespace = 'default';
  private generation = 1;
  private spec: SpecInput = {};
  private s3: Partial<RegistrySpec['storage']['s3']> = {
    endpoint: 'http://minio.minio.svc:9000',
    bucket: 'images',
    credentialsSecretRef: {
      name: 'minio-creds',
    } as RegistrySpec['storage']['s3']['credentialsSecretRef'],
  };

  named(name: string, namespace = 'default'): this {
    this.name = name;
    this.namespace = namespace;
    return this;
  }

  atGeneration(g: number): this {
    this.generation = g;
    return this;
  }

  with(spec: SpecInput): this {
    this.spec = { ...this.spec, ...spec };
    return this;
  }

  /** withNodeAccess sets spec.nodeAccess as a user writes it (the CRD fills in the rest). */
  withNodeAccess(na: Partial<NodeAccessSpec>): this {
    this.spec = { ...this.spec, nodeAccess: na };
    return this;
  }

  withS3(s3: Partial<RegistrySpec['storage']['s3']>): this {
    this.s3 = { ...this.s3, ...s3 };
    return this;
  }

  /** raw is the object as a user would write it (no defaults): for applying to a cluster. */
  raw(): Record<string, unknown> {
    return {
      apiVersion: 'berth.dev/v1alpha1',
      kind: 'Registry',
      metadata: { name: this.name, namespace: this.namespace },
      spec: structuredClone({ ...this.spec, storage: { s3: this.s3 } }),
    };
  }

  build(): Registry {
    const obj = this.raw() as unknown as Registry;
    obj.metadata.uid = `uid-${this.name}`;
    obj.metadata.generation = this.generation;
    const schema = crd().spec.versions[0]!.schema.openAPIV3Schema;
    return applyDefaults(schema, obj) as Registry;
  }
}

export const aRegistry = (): RegistryBuilder => new RegistryBuilder();

/** aDeploymentStatus is a Deployment as the API shows it mid- or post-rollout. */
export function aDeployment(opts: {
  replicas: number;
  ready: number;
  updated?: number;
  available?: boolean;
  generation?: number;
  observedGeneration?: number;
}): V1Deployment {
  const gen = opts.generation ?? 1;
  return {
    metadata: { generation: gen },
    spec: { replicas: opts.replicas, selector: {}, template: {} },
    status: {
      observedGeneration: opts.observedGeneration ?? gen,
      replicas: opts.replicas,
      readyReplicas: opts.ready,
      availableReplicas: opts.ready,
      updatedReplicas: opts.updated ?? opts.replicas,
      conditions: [
        {
          type: 'Available',
          status: (opts.available ?? opts.ready >= opts.replicas) ? 'True' : 'False',
        },
      ],
    },
  };
}

/** aDaemonSet is a DaemonSet as the API shows it with `ready` of `desired` nodes ready. */
export function aDaemonSet(opts: {
  desired: number;
  ready: number;
  generation?: number;
}): V1DaemonSet {
  const gen = opts.generation ?? 1;
  return {
    metadata: { generation: gen },
    status: {
      observedGeneration: gen,
      desiredNumberScheduled: opts.desired,
      currentNumberScheduled: opts.desired,
      numberMisscheduled: 0,
      numberReady: opts.ready,
      updatedNumberScheduled: opts.desired,
    },
  };
}

/** aPod is a registry pod whose `berth` container is running, or waiting with `waiting`. */
export function aPod(
  name: string,
  waiting?: { reason: string; message?: string; lastExitCode?: number },
): V1Pod {
  return {
    metadata: { name, labels: { 'app.kubernetes.io/name': 'berth' } },
    status: {
      containerStatuses: [
        {
          name: 'berth',
          image: 'ghcr.io/berth-dev/berth:0.1.0',
          imageID: '',
          ready: waiting === undefined,
          restartCount: waiting?.lastExitCode !== undefined ? 3 : 0,
          state: waiting
            ? { waiting: { reason: waiting.reason, message: waiting.message } }
            : { running: {} },
          ...(waiting?.lastExitCode !== undefined
            ? {
                lastState: {
                  terminated: { exitCode: waiting.lastExitCode, reason: 'Error' },
                },
              }
            : {}),
        },
      ],
    },
  };
}
