import { randomBytes } from 'node:crypto';
import type { V1Secret } from '@kubernetes/client-node';
import type { Registry } from '../types.js';
import { HTTP_SECRET_KEY, childMeta, childNames } from './meta.js';

/** newHttpSecret makes a fresh shared secret for upload-state tokens (32 random bytes, hex). */
export function newHttpSecret(): string {
  return randomBytes(32).toString('hex');
}

/**
 * desiredSecret holds the shared HTTP secret every replica signs upload tokens with. Pass the
 * value already stored (`existing`) so it is kept across reconciles; only a missing or empty
 * value is replaced by `generate()`.
 */
export function desiredSecret(
  r: Registry,
  existing: string | undefined,
  generate: () => string = newHttpSecret,
): V1Secret {
  const value = existing !== undefined && existing !== '' ? existing : generate();
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMeta(r, childNames(r).secret),
    type: 'Opaque',
    data: { [HTTP_SECRET_KEY]: Buffer.from(value, 'utf8').toString('base64') },
  };
}

/** httpSecretOf reads the shared HTTP secret out of a Secret as read from the API. */
export function httpSecretOf(s: V1Secret | undefined): string | undefined {
  const b64 = s?.data?.[HTTP_SECRET_KEY];
  if (b64 !== undefined) return Buffer.from(b64, 'base64').toString('utf8');
  return s?.stringData?.[HTTP_SECRET_KEY];
}
