/**
 * The server config a Registry asks for: rendered as berth.yaml into a ConfigMap. The
 * credentials and the shared HTTP secret are not in it; the pod gets them as BERTH_*
 * environment variables from Secrets, which the server merges over the file. Other secret
 * material (htpasswd, token keys, client CA, mirror passwords and CAs) is mounted as files;
 * only their paths are here.
 */
import { createHash } from 'node:crypto';
import type { V1ConfigMap } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ConfigError, parseConfig } from '../../server/config/load.js';
import type { UpstreamConfig } from '../../server/config/mirrors.js';
import type { SyncJobConfig } from '../../server/config/sync.js';
import type { AuthConfig, BerthConfig, S3Config } from '../../server/config/types.js';
import type { MirrorUpstreamSpec, Registry } from '../types.js';
import {
  BLOB_CACHE_DIR,
  CA_DIR,
  CONFIG_KEY,
  DEBUG_PORT,
  HTTP_PORT,
  PEER_PORT,
  TLS_DIR,
  blobCacheGiB,
  childMeta,
  childNames,
  peerInvalidation,
} from './meta.js';
import { mirrorFiles, mountedFiles, pathOf } from './files.js';

type PartialDeep<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: PartialDeep<T[K]> }
    : T;

/**
 * RenderedConfig is the part of a BerthConfig the operator sets (the server fills in its own
 * defaults for the rest). It has no S3 keys and no HTTP secret: those come from Secrets.
 */
export type RenderedConfig = Omit<PartialDeep<BerthConfig>, 'storage'> & {
  storage: { driver: 's3'; s3: Omit<S3Config, 'accessKey' | 'secretKey' | 'bufferMiB'> };
};

/** SHUTDOWN_SECONDS bounds in-flight requests on SIGTERM; the pod's grace period adds to it. */
export const SHUTDOWN_SECONDS = 30;

/** renderConfig is the server config for `r`, before configOverrides. */
export function renderConfig(r: Registry): RenderedConfig {
  const rendered: RenderedConfig = {
    http: renderHttp(r),
    storage: renderStorage(r),
    delete: { enabled: r.spec.deleteEnabled },
    readOnly: r.spec.readOnly,
    ...renderCache(r),
    log: { level: r.spec.logLevel },
    metrics: { enabled: r.spec.metrics.enabled },
  };
  const endpoints = r.spec.notifications?.endpoints ?? [];
  if (endpoints.length > 0) {
    rendered.notifications = {
      endpoints: endpoints.map((e) => ({
        name: e.name,
        url: e.url,
        timeoutSeconds: e.timeoutSeconds,
        ...(e.headers ? { headers: e.headers } : {}),
      })),
    };
  }
  const limits = r.spec.limits;
  if (limits && Object.keys(limits).length > 0) rendered.limits = structuredClone(limits);
  const auth = renderAuth(r);
  if (auth) rendered.auth = auth;
  const gc = r.spec.garbageCollection;
  if (gc) rendered.gc = structuredClone(gc);
  const mirrors = renderMirrors(r);
  if (mirrors) rendered.mirrors = mirrors;
  return rendered;
}

/**
 * renderCache is the server's `cache` section when the Registry asks for one: the blob cache
 * folder, and the peer listener whose address the server advertises as the pod IP.
 */
function renderCache(r: Registry): Pick<RenderedConfig, 'cache'> {
  const cache: NonNullable<RenderedConfig['cache']> = {
    ...(blobCacheGiB(r) > 0 ? { blobDir: BLOB_CACHE_DIR, blobMaxGiB: blobCacheGiB(r) } : {}),
    ...(peerInvalidation(r) ? { peerListen: `0.0.0.0:${PEER_PORT}` } : {}),
  };
  return Object.keys(cache).length > 0 ? { cache } : {};
}

/**
 * renderMirrors is the server's `mirrors` section: spec.mirrors.upstreams with the password
 * and CA references replaced by the paths they are mounted at, and spec.mirrors.sync as
 * written. Undefined with neither.
 */
export function renderMirrors(
  r: Registry,
): { upstreams: UpstreamConfig[]; sync?: SyncJobConfig[] } | undefined {
  const upstreams = r.spec.mirrors?.upstreams ?? [];
  const sync = r.spec.mirrors?.sync ?? [];
  if (upstreams.length === 0 && sync.length === 0) return undefined;
  return {
    upstreams: renderUpstreams(r, upstreams),
    ...(sync.length > 0 && { sync: structuredClone(sync) }),
  };
}

function renderUpstreams(r: Registry, upstreams: MirrorUpstreamSpec[]): UpstreamConfig[] {
  const files = mirrorFiles(r);
  return upstreams.map((u, i) => {
    const f = files[i];
    const out: UpstreamConfig = { name: u.name, url: u.url };
    if (u.prefix !== undefined) out.prefix = u.prefix;
    if (u.ns !== undefined) out.ns = [...u.ns];
    if (u.repositories !== undefined) out.repositories = [...u.repositories];
    if (u.username !== undefined) out.username = u.username;
    if (f?.password) out.passwordFile = pathOf(f.password);
    if (f?.ca) out.caFile = pathOf(f.ca);
    if (u.insecure !== undefined) out.insecure = u.insecure;
    if (u.tagTtlSeconds !== undefined) out.tagTtlSeconds = u.tagTtlSeconds;
    if (u.maxRetries !== undefined) out.maxRetries = u.maxRetries;
    if (u.idleTimeoutSeconds !== undefined) out.idleTimeoutSeconds = u.idleTimeoutSeconds;
    return out;
  });
}

/** renderHttp is the server's `http` section: its ports, one worker, the drain, and TLS. */
function renderHttp(r: Registry): RenderedConfig['http'] {
  const files = mountedFiles(r);
  return {
    addr: `0.0.0.0:${HTTP_PORT}`,
    debugAddr: `0.0.0.0:${DEBUG_PORT}`,
    workers: 1,
    shutdownTimeoutSeconds: SHUTDOWN_SECONDS,
    ...(r.spec.tls
      ? {
          tls: {
            certFile: `${TLS_DIR}/tls.crt`,
            keyFile: `${TLS_DIR}/tls.key`,
            ...(files.clientCa ? { clientCaFile: pathOf(files.clientCa) } : {}),
          },
        }
      : {}),
  };
}

/** renderStorage is the server's `storage` section: the S3 bucket without its credentials. */
function renderStorage(r: Registry): RenderedConfig['storage'] {
  const s3 = r.spec.storage.s3;
  return {
    driver: 's3',
    s3: {
      endpoint: s3.endpoint.replace(/\/$/, ''),
      bucket: s3.bucket,
      region: s3.region,
      pathStyle: s3.pathStyle,
      partSizeMiB: s3.partSizeMiB,
      redirect: s3.redirect,
      ...(s3.prefix !== undefined && s3.prefix !== '' ? { prefix: s3.prefix } : {}),
      ...(s3.caBundleSecretRef || s3.insecureSkipVerify
        ? {
            tls: {
              ...(s3.caBundleSecretRef ? { caFile: `${CA_DIR}/ca.crt` } : {}),
              ...(s3.insecureSkipVerify ? { insecureSkipVerify: true } : {}),
            },
          }
        : {}),
    },
  };
}

/**
 * renderAuth is the server's `auth` section for `r`: the same fields, with every referenced
 * Secret or ConfigMap replaced by the path it is mounted at. Undefined without `spec.auth`.
 */
export function renderAuth(r: Registry): PartialDeep<AuthConfig> | undefined {
  const a = r.spec.auth;
  if (!a) return undefined;
  const files = mountedFiles(r);
  const out: PartialDeep<AuthConfig> = { mode: a.mode };
  if (files.htpasswd || a.basicRealm !== undefined)
    out.htpasswd = {
      ...(files.htpasswd ? { path: pathOf(files.htpasswd) } : {}),
      ...(a.basicRealm !== undefined ? { realm: a.basicRealm } : {}),
    };
  const t = a.token;
  if (t || files.signingKey) {
    const token: PartialDeep<AuthConfig['token']> = {};
    if (t?.realm !== undefined) token.realm = t.realm;
    if (t?.service !== undefined) token.service = t.service;
    if (t?.issuer !== undefined) token.issuer = t.issuer;
    if (t?.expiresSeconds !== undefined) token.expiresSeconds = t.expiresSeconds;
    if (t?.algorithms !== undefined) token.algorithms = [...t.algorithms];
    if (files.signingKey) token.signingKeyFile = pathOf(files.signingKey);
    if (t?.external) {
      token.external = true;
      if (files.jwks) token.jwksFile = pathOf(files.jwks);
      if (files.rootCertBundle) token.rootCertBundle = pathOf(files.rootCertBundle);
    }
    out.token = token;
  }
  if (a.anonymousPull) out.anonymousPull = [...a.anonymousPull];
  if (a.groups) out.groups = structuredClone(a.groups);
  if (a.rules) out.rules = structuredClone(a.rules);
  if (a.immutableTags) out.immutableTags = structuredClone(a.immutableTags);
  if (a.eventsAccess !== undefined) out.eventsAccess = a.eventsAccess;
  if (a.admins) out.admins = structuredClone(a.admins);
  return out;
}

type Json = Record<string, unknown>;

function isPlainObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * mergeOverrides deep-merges `overrides` over `base` and returns a new object: mappings merge
 * key by key, anything else (lists, scalars, null) replaces.
 */
export function mergeOverrides(base: Json, overrides: Json | undefined): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(overrides ?? {})) {
    const cur = out[k];
    out[k] = isPlainObject(cur) && isPlainObject(v) ? mergeOverrides(cur, v) : v;
  }
  return out;
}

/** PLACEHOLDER_ENV stands in for the Secret-provided variables when validating a config. */
const PLACEHOLDER_ENV = {
  BERTH_STORAGE_S3_ACCESS_KEY: 'validation-placeholder',
  BERTH_STORAGE_S3_SECRET_KEY: 'validation-placeholder',
  BERTH_HTTP_SECRET: 'validation-placeholder',
};

/** ConfigResult is the berth.yaml text for a Registry, or why it cannot be rendered. */
export type ConfigResult = { ok: true; yaml: string } | { ok: false; problems: readonly string[] };

/**
 * configYaml renders `r`'s config with configOverrides merged last and validates it with the
 * server's own parser, exactly as a pod would load it (Secret values given as env).
 */
export function configYaml(r: Registry): ConfigResult {
  const merged = mergeOverrides(renderConfig(r), r.spec.configOverrides);
  const yaml = stringify(merged, { sortMapEntries: false });
  try {
    parseConfig(yaml, PLACEHOLDER_ENV, CONFIG_KEY);
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: err.problems };
    throw err;
  }
  return { ok: true, yaml };
}

/** checksum is a short stable digest of the given strings, for pod-template annotations. */
export function checksum(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
}

/** desiredConfigMap holds the rendered berth.yaml under the key `berth.yaml`. */
export function desiredConfigMap(r: Registry, yaml: string): V1ConfigMap {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: childMeta(r, childNames(r).config),
    data: { [CONFIG_KEY]: yaml },
  };
}
