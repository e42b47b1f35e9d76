import {
  X509Certificate,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BerthConfig } from '../config/types.js';
import { thumbprint, type TrustedKey } from './jwt.js';

/** SigningKey is the private key of Berth's own token endpoint with its public half. */
export interface SigningKey {
  privateKey: KeyObject;
  trusted: TrustedKey;
}

/**
 * loadSigningKey reads a PEM private key (EC P-256, RSA or Ed25519). Without a file it makes a
 * fresh P-256 key: tokens then die with the process and differ between replicas, but no key is
 * ever shipped as a default (the harbor-helm advisory).
 */
export function loadSigningKey(file: string | undefined): SigningKey {
  const privateKey =
    file === undefined
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
      : createPrivateKey(readFileSync(file));
  const key = createPublicKey(privateKey);
  return { privateKey, trusted: { kid: thumbprint(key), key } };
}

/** loadJwks reads `{"keys":[…]}`; a key's `kid` is used when present, else its thumbprint. */
export function loadJwks(file: string): TrustedKey[] {
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { keys?: unknown };
  if (!Array.isArray(doc.keys)) throw new Error(`${file}: not a JWKS document`);
  return (doc.keys as (JsonWebKey & { kid?: string })[]).map((jwk) => {
    const { kid, ...material } = jwk;
    const key = createPublicKey({ key: material, format: 'jwk' });
    return { kid: typeof kid === 'string' ? kid : thumbprint(key), key };
  });
}

/** loadCertBundle reads PEM certificates; each key's kid is its RFC 7638 thumbprint. */
export function loadCertBundle(file: string): TrustedKey[] {
  const pem = readFileSync(file, 'utf8');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${file}: no certificates`);
  return blocks.map((b) => {
    const key = new X509Certificate(b).publicKey;
    return { kid: thumbprint(key), key };
  });
}

/**
 * sharedSigningKeyFile makes, for a primary process about to fork workers, a signing key file
 * they all read (mode 0600, in a fresh private directory) when Berth issues tokens and no key
 * is configured. Returns undefined when none is needed.
 */
export function sharedSigningKeyFile(config: BerthConfig): string | undefined {
  const a = config.auth;
  if (a.mode !== 'token' || a.token.external || a.token.signingKeyFile !== undefined)
    return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'berth-token-'));
  const file = join(dir, 'signing-key.pem');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return file;
}
