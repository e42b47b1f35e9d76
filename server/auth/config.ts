import type { AuthConfig, BerthConfig, TokenAuthConfig } from '../config/types.js';

/** authDefaults is the `auth` section when nothing is configured: no authentication. */
export function authDefaults(): AuthConfig {
  return {
    mode: 'none',
    htpasswd: { realm: 'berth' },
    token: {
      service: 'berth',
      issuer: 'berth',
      expiresSeconds: 300,
      external: false,
      algorithms: ['ES256', 'RS256'],
    },
    anonymousPull: [],
    groups: [],
    rules: [],
    immutableTags: [],
    eventsAccess: 'pullable',
    admins: { users: [], groups: [] },
  };
}

/** RawAuthConfig is a validated `auth` section with every field optional. */
export interface RawAuthConfig {
  mode?: AuthConfig['mode'];
  htpasswd?: Partial<AuthConfig['htpasswd']>;
  token?: Partial<TokenAuthConfig>;
  anonymousPull?: string[];
  groups?: AuthConfig['groups'];
  rules?: AuthConfig['rules'];
  immutableTags?: AuthConfig['immutableTags'];
  eventsAccess?: AuthConfig['eventsAccess'];
  admins?: Partial<AuthConfig['admins']>;
}

/** mergeAuth fills a raw section from the defaults; every object in the result is fresh. */
export function mergeAuth(raw: RawAuthConfig | undefined): AuthConfig {
  const d = authDefaults();
  return {
    mode: raw?.mode ?? d.mode,
    htpasswd: { ...d.htpasswd, ...raw?.htpasswd },
    token: {
      ...d.token,
      ...raw?.token,
      algorithms: [...(raw?.token?.algorithms ?? d.token.algorithms)],
    },
    anonymousPull: [...(raw?.anonymousPull ?? [])],
    groups: structuredClone(raw?.groups ?? []),
    rules: structuredClone(raw?.rules ?? []),
    immutableTags: structuredClone(raw?.immutableTags ?? []),
    eventsAccess: raw?.eventsAccess ?? d.eventsAccess,
    admins: { users: [...(raw?.admins?.users ?? [])], groups: [...(raw?.admins?.groups ?? [])] },
  };
}

/**
 * authChecks finds problems across `auth` and `http.tls` fields (`origin` maps fields to the
 * environment variables they came from).
 */
export function authChecks(c: BerthConfig, origin: Map<string, string>): string[] {
  const a = c.auth;
  const from = (p: string): string => (origin.has(p) ? ` (from ${origin.get(p)})` : '');
  const out: string[] = [];
  const tls = c.http.tls as Partial<BerthConfig['http']['tls']> | undefined;
  if (tls && (tls.certFile === undefined || tls.keyFile === undefined))
    out.push('http.tls: certFile and keyFile are both required to serve HTTPS');
  const needsFile = a.mode === 'htpasswd' || (a.mode === 'token' && !a.token.external);
  if (needsFile && a.htpasswd.path === undefined)
    out.push(`auth.htpasswd.path: is required when auth.mode is ${a.mode}${from('auth.mode')}`);
  if (
    a.mode === 'token' &&
    a.token.external &&
    a.token.jwksFile === undefined &&
    a.token.rootCertBundle === undefined
  )
    out.push(
      'auth.token.jwksFile: jwksFile or rootCertBundle is required when auth.token.external is true',
    );
  if (a.mode === 'token' && a.token.external && a.token.realm === undefined)
    out.push('auth.token.realm: is required when auth.token.external is true');
  if (a.mode === 'token' && a.token.algorithms.length === 0)
    out.push('auth.token.algorithms: must allow at least one algorithm');
  return out;
}
