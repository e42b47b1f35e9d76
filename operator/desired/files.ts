/**
 * Files the server reads that come from Secrets and ConfigMaps the Registry references: each
 * is mounted as its own volume (no subPath, so the kubelet updates it in place) and only its
 * path goes into the rendered config. One list drives the config, the volumes and the check
 * that every referenced object exists.
 */
import type { Registry } from '../types.js';
import { TOKEN_SIGNING_KEY_KEY, childNames } from './meta.js';

/** MountedFile is one referenced key mounted at `dir/file`. */
export interface MountedFile {
  /** volume is the pod volume name. */
  volume: string;
  source: 'Secret' | 'ConfigMap';
  /** name and key identify the referenced object and its key. */
  name: string;
  key: string;
  dir: string;
  file: string;
  /** generated: the operator's own Secret, made by the operator (never missing). */
  generated?: boolean;
}

/** path is where the server finds a mounted file. */
export const pathOf = (f: MountedFile): string => `${f.dir}/${f.file}`;

/** tokenIssuer says whether Berth itself issues tokens (token mode, not external). */
export function tokenIssuer(r: Registry): boolean {
  return r.spec.auth?.mode === 'token' && r.spec.auth.token?.external === undefined;
}

/**
 * generatedSigningKey says whether the operator keeps a token signing key for `r` in its own
 * Secret: Berth issues tokens and no signingKeySecretRef is given. Every replica (and every
 * pod of a rollout) then signs with and accepts the same key.
 */
export function generatedSigningKey(r: Registry): boolean {
  return tokenIssuer(r) && r.spec.auth?.token?.signingKeySecretRef === undefined;
}

/**
 * mountedFiles lists the files `r` needs, keyed by their role. Auth files are only mounted in
 * the modes that read them.
 */
export function mountedFiles(r: Registry): {
  clientCa?: MountedFile;
  htpasswd?: MountedFile;
  signingKey?: MountedFile;
  jwks?: MountedFile;
  rootCertBundle?: MountedFile;
} {
  const out: ReturnType<typeof mountedFiles> = {};
  const ca = r.spec.tls?.clientCASecretRef;
  if (ca)
    out.clientCa = {
      volume: 'client-ca',
      source: 'Secret',
      ...ca,
      dir: '/etc/berth/client-ca',
      file: 'ca.crt',
    };
  const auth = r.spec.auth;
  if (!auth || auth.mode === 'none') return out;
  if (auth.htpasswdSecretRef)
    out.htpasswd = {
      volume: 'htpasswd',
      source: 'Secret',
      ...auth.htpasswdSecretRef,
      dir: '/etc/berth/htpasswd',
      file: 'htpasswd',
    };
  if (auth.mode !== 'token') return out;
  const external = auth.token?.external;
  if (external) {
    if (external.jwksConfigMapRef)
      out.jwks = {
        volume: 'token-jwks',
        source: 'ConfigMap',
        ...external.jwksConfigMapRef,
        dir: '/etc/berth/token-jwks',
        file: 'jwks.json',
      };
    if (external.rootCertBundleConfigMapRef)
      out.rootCertBundle = {
        volume: 'token-certs',
        source: 'ConfigMap',
        ...external.rootCertBundleConfigMapRef,
        dir: '/etc/berth/token-certs',
        file: 'bundle.pem',
      };
    return out;
  }
  const ref = auth.token?.signingKeySecretRef;
  out.signingKey = {
    volume: 'token-signing-key',
    source: 'Secret',
    ...(ref ?? { name: childNames(r).secret, key: TOKEN_SIGNING_KEY_KEY }),
    dir: '/etc/berth/token-key',
    file: 'signing-key.pem',
    ...(ref ? {} : { generated: true }),
  };
  return out;
}

/** MIRROR_DIR holds one folder per mirror upstream (by its name) with its mounted files. */
export const MIRROR_DIR = '/etc/berth/mirrors';

/** MirrorFiles are the files one spec.mirrors upstream reads. */
export interface MirrorFiles {
  password?: MountedFile;
  ca?: MountedFile;
}

/**
 * mirrorFiles lists, for each spec.mirrors upstream in order, its mounted password and CA
 * bundle: volumes `mirror-<i>-password` and `mirror-<i>-ca`, files under
 * `/etc/berth/mirrors/<upstream name>/`.
 */
export function mirrorFiles(r: Registry): MirrorFiles[] {
  return (r.spec.mirrors?.upstreams ?? []).map((u, i) => {
    const out: MirrorFiles = {};
    const dir = `${MIRROR_DIR}/${u.name}`;
    if (u.passwordSecretRef)
      out.password = {
        volume: `mirror-${i}-password`,
        source: 'Secret',
        ...u.passwordSecretRef,
        dir: `${dir}/password`,
        file: 'password',
      };
    const ca = u.caBundleSecretRef ?? u.caBundleConfigMapRef;
    if (ca)
      out.ca = {
        volume: `mirror-${i}-ca`,
        source: u.caBundleSecretRef ? 'Secret' : 'ConfigMap',
        ...ca,
        dir: `${dir}/ca`,
        file: 'ca.crt',
      };
    return out;
  });
}

/** mirrorFileList is mirrorFiles as a flat list. */
function mirrorFileList(r: Registry): MountedFile[] {
  return mirrorFiles(r).flatMap((m) =>
    [m.password, m.ca].filter((f): f is MountedFile => f !== undefined),
  );
}

/**
 * referencedFiles is mountedFiles and mirrorFiles as a list, for volumes and existence
 * checks.
 */
export function referencedFiles(r: Registry): MountedFile[] {
  return [
    ...Object.values(mountedFiles(r)).filter((f): f is MountedFile => f !== undefined),
    ...mirrorFileList(r),
  ];
}

/** ObjectRef names a Secret or ConfigMap in the Registry's namespace. */
export interface ObjectRef {
  source: 'Secret' | 'ConfigMap';
  name: string;
}

/** KeyRef is one key of a referenced Secret or ConfigMap. */
export interface KeyRef extends ObjectRef {
  key: string;
}

/**
 * referencedObjects lists every Secret and ConfigMap a Registry reads from (not its own
 * generated Secret), each once, sorted: a change to one of them is a reason to reconcile it.
 */
export function referencedObjects(r: Registry): ObjectRef[] {
  const s3 = r.spec.storage.s3;
  const refs: ObjectRef[] = [{ source: 'Secret', name: s3.credentialsSecretRef.name }];
  if (s3.caBundleSecretRef) refs.push({ source: 'Secret', name: s3.caBundleSecretRef.name });
  if (r.spec.tls) refs.push({ source: 'Secret', name: r.spec.tls.secretName });
  for (const f of referencedFiles(r))
    if (!f.generated) refs.push({ source: f.source, name: f.name });
  const seen = new Map(refs.map((o) => [`${o.source}/${o.name}`, o]));
  return [...seen.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, o]) => o);
}

/**
 * rollingReferences lists the referenced keys the server reads only when it starts, so a
 * change must roll the pods: the S3 credentials (environment variables), the S3 CA bundle, a
 * given token signing key, an external issuer's JWKS or certificates, and each mirror
 * upstream's password and CA bundle. The TLS certificate and key, the client CA and htpasswd
 * are left out: the server re-reads those files when the kubelet updates them
 * (server/http/tls.ts, server/auth/htpasswd.ts), with no restart.
 */
export function rollingReferences(r: Registry): KeyRef[] {
  const s3 = r.spec.storage.s3;
  const c = s3.credentialsSecretRef;
  const out: KeyRef[] = [
    { source: 'Secret', name: c.name, key: c.accessKeyIdKey },
    { source: 'Secret', name: c.name, key: c.secretAccessKeyKey },
  ];
  if (s3.caBundleSecretRef) out.push({ source: 'Secret', ...s3.caBundleSecretRef });
  const files = mountedFiles(r);
  for (const f of [files.signingKey, files.jwks, files.rootCertBundle])
    if (f && !f.generated) out.push({ source: f.source, name: f.name, key: f.key });
  for (const f of mirrorFileList(r)) out.push({ source: f.source, name: f.name, key: f.key });
  return out;
}
