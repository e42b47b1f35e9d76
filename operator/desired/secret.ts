import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { Registry } from '../types.js';
import { generatedSigningKey } from './files.js';
import { HTTP_SECRET_KEY, TOKEN_SIGNING_KEY_KEY, childMeta, childNames } from './meta.js';

/** newHttpSecret makes a fresh shared secret for upload-state tokens (32 random bytes, hex). */
export function newHttpSecret(): string {
  return randomBytes(32).toString('hex');
}

/** newSigningKey makes a token signing key: an EC P-256 private key (ES256), PKCS#8 PEM. */
export function newSigningKey(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

const b64 = (v: string): string => Buffer.from(v, 'utf8').toString('base64');
const kept = (v: string | undefined, make: () => string): string =>
  v !== undefined && v !== '' ? v : make();

/**
 * desiredSecret holds the shared HTTP secret every replica signs upload tokens with and, when
 * Berth issues tokens without a signingKeySecretRef, the token signing key they all share.
 * Pass the values already stored (`existing`) so they are kept across reconciles; only a
 * missing or empty value is replaced by `generate()` / `generateKey()`.
 */
export function desiredSecret(
  r: Registry,
  existing: string | undefined,
  generate: () => string = newHttpSecret,
  existingKey?: string,
  generateKey: () => string = newSigningKey,
): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMeta(r, childNames(r).secret),
    type: 'Opaque',
    data: {
      [HTTP_SECRET_KEY]: b64(kept(existing, generate)),
      ...(generatedSigningKey(r)
        ? { [TOKEN_SIGNING_KEY_KEY]: b64(kept(existingKey, generateKey)) }
        : {}),
    },
  };
}

/** signingKeyOf reads the generated token signing key out of a Secret as read from the API. */
export function signingKeyOf(s: V1Secret | undefined): string | undefined {
  const v = s?.data?.[TOKEN_SIGNING_KEY_KEY];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}

/** httpSecretOf reads the shared HTTP secret out of a Secret as read from the API. */
export function httpSecretOf(s: V1Secret | undefined): string | undefined {
  const b64 = s?.data?.[HTTP_SECRET_KEY];
  if (b64 !== undefined) return Buffer.from(b64, 'base64').toString('utf8');
  return s?.stringData?.[HTTP_SECRET_KEY];
}
