import {
  X509Certificate,
  createHash,
  createPublicKey,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';

/** JwtAlgorithm is a signature algorithm Berth can verify. */
export type JwtAlgorithm = 'ES256' | 'ES384' | 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'EdDSA';
export const JWT_ALGORITHMS: readonly JwtAlgorithm[] = [
  'ES256',
  'ES384',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'EdDSA',
];

/** MAX_TOKEN_LENGTH bounds a compact JWS before any parsing. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** JwtError is any reason a token is refused; `message` is safe to return to the client. */
export class JwtError extends Error {
  override readonly name = 'JwtError';
}

/** TrustedKey is a verification key with its key id (RFC 7638 thumbprint unless given). */
export interface TrustedKey {
  kid: string;
  key: KeyObject;
}

/** ResourceAccess is one entry of the `access` claim of the Docker token spec. */
export interface ResourceAccess {
  type: string;
  name: string;
  actions: string[];
}

/** TokenClaims are the claims Berth reads; unknown claims are ignored. */
export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  access: ResourceAccess[];
}

function b64url(buf: Buffer): string {
  return buf.toString('base64url');
}

function decodePart(part: string, what: string): Record<string, unknown> {
  if (!/^[A-Za-z0-9_-]*$/.test(part)) throw new JwtError(`malformed token ${what}`);
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new JwtError(`malformed token ${what}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new JwtError(`malformed token ${what}`);
  return v as Record<string, unknown>;
}

function params(alg: JwtAlgorithm): {
  hash: string | null;
  dsaEncoding?: 'ieee-p1363';
  padding?: number;
} {
  switch (alg) {
    case 'ES256':
      return { hash: 'sha256', dsaEncoding: 'ieee-p1363' };
    case 'ES384':
      return { hash: 'sha384', dsaEncoding: 'ieee-p1363' };
    case 'RS256':
      return { hash: 'sha256' };
    case 'RS384':
      return { hash: 'sha384' };
    case 'RS512':
      return { hash: 'sha512' };
    case 'PS256':
      return { hash: 'sha256', padding: 6 /* RSA_PKCS1_PSS_PADDING */ };
    case 'EdDSA':
      return { hash: null };
  }
}

/** keyMatchesAlg refuses an algorithm whose key type differs from the key's (alg confusion). */
function keyMatchesAlg(key: KeyObject, alg: JwtAlgorithm): boolean {
  const t = key.asymmetricKeyType;
  if (alg.startsWith('ES')) return t === 'ec';
  if (alg.startsWith('RS') || alg.startsWith('PS')) return t === 'rsa' || t === 'rsa-pss';
  return t === 'ed25519';
}

/** algorithmFor picks the JWS algorithm for a signing key (ES256 for P-256, RS256 for RSA). */
export function algorithmFor(key: KeyObject): JwtAlgorithm {
  if (key.asymmetricKeyType === 'ec') return 'ES256';
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  throw new Error(`unsupported signing key type ${String(key.asymmetricKeyType)}`);
}

/** thumbprint is the RFC 7638 JWK thumbprint (base64url SHA-256) of a public key. */
export function thumbprint(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  const members: Record<string, string[]> = {
    EC: ['crv', 'kty', 'x', 'y'],
    RSA: ['e', 'kty', 'n'],
    OKP: ['crv', 'kty', 'x'],
  };
  const names = members[String(jwk.kty)];
  if (!names) throw new Error(`unsupported key type ${String(jwk.kty)}`);
  const canonical = `{${names.map((n) => `${JSON.stringify(n)}:${JSON.stringify(jwk[n])}`).join(',')}}`;
  return b64url(createHash('sha256').update(canonical).digest());
}

function sameKey(a: KeyObject, b: KeyObject): boolean {
  const der = (k: KeyObject) => k.export({ format: 'der', type: 'spki' });
  return der(a).equals(der(b));
}

/** signJwt signs `claims` as a compact JWS with `key` (a private key). */
export function signJwt(claims: object, key: KeyObject, kid: string): string {
  const alg = algorithmFor(key);
  const header = b64url(Buffer.from(JSON.stringify({ typ: 'JWT', alg, kid })));
  const payload = b64url(Buffer.from(JSON.stringify(claims)));
  const p = params(alg);
  const sig = cryptoSign(p.hash, Buffer.from(`${header}.${payload}`), {
    key,
    ...(p.dsaEncoding && { dsaEncoding: p.dsaEncoding }),
    ...(p.padding !== undefined && { padding: p.padding }),
  });
  return `${header}.${payload}.${b64url(sig)}`;
}

/**
 * embeddedKey reads a `jwk` or `x5c` header member, if present. It is never trusted by itself:
 * the caller only uses it to insist that it is the same key material as a trusted key.
 */
function embeddedKey(header: Record<string, unknown>): KeyObject | undefined {
  try {
    if (header.jwk !== undefined) {
      if (typeof header.jwk !== 'object' || header.jwk === null) throw new Error('bad jwk');
      return createPublicKey({
        key: header.jwk as import('node:crypto').JsonWebKey,
        format: 'jwk',
      });
    }
    if (header.x5c !== undefined) {
      const leaf = Array.isArray(header.x5c) ? (header.x5c[0] as unknown) : undefined;
      if (typeof leaf !== 'string') throw new Error('bad x5c');
      return new X509Certificate(Buffer.from(leaf, 'base64')).publicKey;
    }
  } catch {
    throw new JwtError('malformed embedded key in token header');
  }
  return undefined;
}

export interface VerifyOptions {
  keys: readonly TrustedKey[];
  algorithms: readonly string[];
  issuer: string;
  audience: string;
  /** now is the current time in seconds since the epoch. */
  now: number;
  /** leewaySeconds tolerates clock skew on exp and nbf. */
  leewaySeconds?: number;
}

/**
 * verifyJwt checks a compact JWS and returns its claims. The key is chosen by `kid` among the
 * trusted keys, and an embedded `jwk` or `x5c` must be that same key material (a matching kid
 * alone is never enough: CVE-2025-24976). The algorithm must be on the allow-list and fit the
 * key type; `iss`, `aud`, `exp` and `nbf` are checked. Throws JwtError.
 */
export function verifyJwt(token: string, o: VerifyOptions): TokenClaims {
  if (token.length > MAX_TOKEN_LENGTH) throw new JwtError('token too long');
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError('malformed token');
  const [h, p, s] = parts as [string, string, string];
  const header = decodePart(h, 'header');
  const alg = allowedAlgorithm(header, o.algorithms);
  const trusted = signingKey(header, o.keys);
  if (!keyMatchesAlg(trusted.key, alg)) throw new JwtError('token algorithm does not fit the key');
  if (!/^[A-Za-z0-9_-]+$/.test(s)) throw new JwtError('malformed token signature');
  if (!signatureValid(alg, trusted.key, `${h}.${p}`, s))
    throw new JwtError('token signature invalid');
  const c = decodePart(p, 'claims');
  checkClaims(c, o);
  return { ...(c as unknown as TokenClaims), access: accessClaim(c.access) };
}

/** allowedAlgorithm is the header's `alg` if it is on the allow-list and one Berth knows. */
function allowedAlgorithm(
  header: Record<string, unknown>,
  algorithms: readonly string[],
): JwtAlgorithm {
  const alg = header.alg;
  if (
    typeof alg !== 'string' ||
    !algorithms.includes(alg) ||
    !JWT_ALGORITHMS.includes(alg as JwtAlgorithm)
  )
    throw new JwtError('token algorithm not allowed');
  return alg as JwtAlgorithm;
}

/**
 * signingKey picks the trusted key a token names by `kid`, or else by its embedded key, and
 * checks that an embedded key is that same key material.
 */
function signingKey(header: Record<string, unknown>, keys: readonly TrustedKey[]): TrustedKey {
  const embedded = embeddedKey(header);
  const kid = typeof header.kid === 'string' ? header.kid : undefined;
  let trusted: TrustedKey | undefined;
  if (kid !== undefined) trusted = keys.find((k) => k.kid === kid);
  else if (embedded) trusted = keys.find((k) => sameKey(k.key, embedded));
  if (!trusted) throw new JwtError('token signed by an unknown key');
  if (embedded && !sameKey(trusted.key, embedded))
    throw new JwtError('token key does not match the trusted key with its kid');
  return trusted;
}

/** signatureValid checks the base64url signature `s` of `signed`; a malformed one is invalid. */
function signatureValid(alg: JwtAlgorithm, key: KeyObject, signed: string, s: string): boolean {
  const pr = params(alg);
  try {
    return cryptoVerify(
      pr.hash,
      Buffer.from(signed),
      {
        key,
        ...(pr.dsaEncoding && { dsaEncoding: pr.dsaEncoding }),
        ...(pr.padding !== undefined && { padding: pr.padding }),
      },
      Buffer.from(s, 'base64url'),
    );
  } catch {
    return false;
  }
}

/** checkClaims checks `iss`, `aud`, `exp`, `nbf` (with leeway) and that there is a subject. */
function checkClaims(c: Record<string, unknown>, o: VerifyOptions): void {
  const leeway = o.leewaySeconds ?? 60;
  if (c.iss !== o.issuer) throw new JwtError('token issuer not trusted');
  const aud = typeof c.aud === 'string' ? [c.aud] : Array.isArray(c.aud) ? c.aud : [];
  if (!aud.includes(o.audience)) throw new JwtError('token audience is not this service');
  if (typeof c.exp !== 'number' || !Number.isFinite(c.exp) || c.exp + leeway < o.now)
    throw new JwtError('token expired');
  if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf - leeway > o.now))
    throw new JwtError('token not yet valid');
  if (typeof c.sub !== 'string') throw new JwtError('token has no subject');
}

/** accessClaim reads the `access` claim (absent: no access), at most 1000 entries. */
function accessClaim(claim: unknown): ResourceAccess[] {
  const access: ResourceAccess[] = [];
  if (claim === undefined) return access;
  if (!Array.isArray(claim) || claim.length > 1000) throw new JwtError('malformed access claim');
  for (const a of claim as unknown[]) {
    const r = a as Partial<ResourceAccess> | null;
    if (
      typeof r !== 'object' ||
      r === null ||
      typeof r.type !== 'string' ||
      typeof r.name !== 'string' ||
      !Array.isArray(r.actions) ||
      !r.actions.every((x) => typeof x === 'string')
    )
      throw new JwtError('malformed access claim');
    access.push({ type: r.type, name: r.name, actions: r.actions });
  }
  return access;
}
