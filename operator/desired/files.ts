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

/** referencedFiles is mountedFiles as a list, for volumes and existence checks. */
export function referencedFiles(r: Registry): MountedFile[] {
  return Object.values(mountedFiles(r)).filter((f): f is MountedFile => f !== undefined);
}
