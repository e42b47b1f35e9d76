import { randomUUID } from 'node:crypto';
import type { BerthConfig } from '../config/types.js';
import { Errors, type RegistryError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { systemClock, type Clock } from '../util/clock.js';
import { Htpasswd, type CredentialChecker } from './htpasswd.js';
import {
  JwtError,
  signJwt,
  verifyJwt,
  type ResourceAccess,
  type TokenClaims,
  type TrustedKey,
} from './jwt.js';
import { loadCertBundle, loadJwks, loadSigningKey, type SigningKey } from './keys.js';
import { ANONYMOUS, AccessPolicy, principalOf, type Action, type Principal } from './policy.js';

/** Identity is the authenticated caller of one request. */
export interface Identity {
  principal: Principal;
  /** via says how the caller authenticated; `none` when auth is off. */
  via: 'none' | 'anonymous' | 'basic' | 'bearer';
  /** token holds a verified bearer token's claims. */
  token?: TokenClaims;
}

export const NO_AUTH: Identity = { principal: ANONYMOUS, via: 'none' };
const ANONYMOUS_ID: Identity = { principal: ANONYMOUS, via: 'anonymous' };

/** Need is one permission a request requires. */
export type Need =
  { kind: 'login' } | { kind: 'catalog' } | { kind: 'repository'; name: string; action: Action };

/** TokenResponse is the token endpoint's JSON body (Docker token spec). */
export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
}

const MAX_SCOPES = 32;

/**
 * parseScope reads `repository:<name>:<actions>` (or `registry:catalog:*`); the name is everything
 * between the first and the last colon. Returns undefined for anything else.
 */
export function parseScope(scope: string): ResourceAccess | undefined {
  if (scope.length > 1024) return undefined;
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const type = scope.slice(0, first).replace(/\(.*\)$/, '');
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .filter((a) => a !== '');
  if (name === '' || actions.length === 0) return undefined;
  return { type, name, actions };
}

export interface AuthServiceOptions {
  clock?: Clock;
  log?: Logger;
  /** checker replaces the htpasswd file (tests). */
  checker?: CredentialChecker;
}

/**
 * AuthService authenticates requests and decides what they may do. It holds the policy, the
 * htpasswd checker and the token keys; nothing it does touches registry storage, so an
 * anonymous-allowed pull costs one in-memory lookup.
 */
export class AuthService {
  readonly policy: AccessPolicy;
  readonly mode: BerthConfig['auth']['mode'];
  private readonly checker?: CredentialChecker;
  private readonly signing?: SigningKey;
  private readonly keys: TrustedKey[] = [];
  private readonly clock: Clock;

  constructor(
    private readonly config: BerthConfig['auth'],
    o: AuthServiceOptions = {},
  ) {
    this.mode = config.mode;
    this.clock = o.clock ?? systemClock;
    this.policy = new AccessPolicy(config);
    if (config.mode === 'none') return;
    const internal = config.mode === 'htpasswd' || !config.token.external;
    if (internal)
      this.checker = o.checker ?? Htpasswd.open(config.htpasswd.path ?? '', { clock: this.clock });
    if (config.mode === 'token') {
      if (config.token.external) {
        if (config.token.jwksFile) this.keys.push(...loadJwks(config.token.jwksFile));
        if (config.token.rootCertBundle)
          this.keys.push(...loadCertBundle(config.token.rootCertBundle));
      } else {
        this.signing = loadSigningKey(config.token.signingKeyFile);
        this.keys.push(this.signing.trusted);
        if (config.token.signingKeyFile === undefined)
          o.log?.warn(
            {},
            'no auth.token.signingKeyFile: tokens are signed with a key made at start',
          );
      }
    }
  }

  /** enabled is false in mode none: every request is allowed. */
  get enabled(): boolean {
    return this.mode !== 'none';
  }

  /** issuesTokens is true when Berth serves its own token endpoint. */
  get issuesTokens(): boolean {
    return this.mode === 'token' && !this.config.token.external;
  }

  private unauthorized(challenge: string, detail?: unknown): RegistryError {
    return Errors.unauthorized(detail, { 'WWW-Authenticate': challenge });
  }

  private basicChallenge(): string {
    return `Basic realm=${quote(this.config.htpasswd.realm)}`;
  }

  /** realm is the token endpoint URL put in challenges (never derived from forwarded headers). */
  realm(host: string | undefined, secure: boolean): string {
    return (
      this.config.token.realm ?? `${secure ? 'https' : 'http'}://${host ?? 'localhost'}/auth/token`
    );
  }

  private bearerChallenge(realm: string, needs: readonly Need[], error?: string): string {
    const scopes = scopeOf(needs);
    let c = `Bearer realm=${quote(realm)},service=${quote(this.config.token.service)}`;
    if (scopes !== '') c += `,scope=${quote(scopes)}`;
    if (error) c += `,error=${quote(error)}`;
    return c;
  }

  /**
   * authenticate reads an Authorization header. No header is the anonymous caller; a header
   * that does not check out is 401 with a challenge (never "anonymous" by accident).
   */
  async authenticate(header: string | undefined, realm: string): Promise<Identity> {
    if (!this.enabled) return NO_AUTH;
    if (header === undefined || header === '') return ANONYMOUS_ID;
    const sp = header.indexOf(' ');
    const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
    const value = sp < 0 ? '' : header.slice(sp + 1).trim();
    if (scheme === 'basic' && this.mode === 'htpasswd') {
      // Clients answer a Basic challenge without credentials with an empty pair (`Og==`).
      if (Buffer.from(value, 'base64').toString('utf8') === ':') return ANONYMOUS_ID;
      const id = await this.basic(value);
      if (id) return id;
      throw this.unauthorized(this.basicChallenge(), { reason: 'invalid credentials' });
    }
    if (scheme === 'bearer' && this.mode === 'token') {
      try {
        const token = this.verify(value);
        const principal = token.sub === '' ? ANONYMOUS : principalOf(token.sub);
        return { principal, via: 'bearer', token };
      } catch (err) {
        if (!(err instanceof JwtError)) throw err;
        throw this.unauthorized(this.bearerChallenge(realm, [], 'invalid_token'), {
          reason: err.message,
        });
      }
    }
    throw this.unauthorized(
      this.mode === 'htpasswd' ? this.basicChallenge() : this.bearerChallenge(realm, []),
      { reason: 'unsupported authorization scheme' },
    );
  }

  /** basic checks `base64(user:password)` against the htpasswd file. */
  async basic(value: string): Promise<Identity | undefined> {
    if (!this.checker || value.length > 4096) return undefined;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i <= 0) return undefined;
    const user = decoded.slice(0, i);
    const ok = await this.checker.verify(user, decoded.slice(i + 1));
    return ok ? { principal: principalOf(user), via: 'basic' } : undefined;
  }

  private verify(token: string): TokenClaims {
    return verifyJwt(token, {
      keys: this.keys,
      algorithms: this.config.token.algorithms,
      issuer: this.config.token.issuer,
      audience: this.config.token.service,
      now: Math.floor(this.clock.now() / 1000),
    });
  }

  /** may is true when `id` may take `action` in `repo`. */
  may(id: Identity, repo: string, action: Action): boolean {
    if (id.via === 'none') return true;
    if (id.via !== 'bearer') return this.policy.actions(id.principal, repo).has(action);
    if (action === 'pull' && this.policy.anonymousPull(repo)) return true;
    const granted = tokenGrants(id.token, repo, action);
    // Berth's own tokens are re-checked against today's policy, so removing a rule takes
    // effect before the token expires.
    return (
      granted && (this.config.token.external || this.policy.actions(id.principal, repo).has(action))
    );
  }

  /**
   * grants is every action `id` has in `repo` under today's rules (what Berth's own issuer
   * would put in a token; with an external issuer, what its token carries). It tells the web
   * UI which controls to offer; every request is still authorized on its own.
   */
  grants(id: Identity, repo: string): Action[] {
    const all: Action[] = ['pull', 'push', 'delete'];
    if (id.via === 'none') return all;
    if (id.via === 'bearer' && this.config.token.external)
      return all.filter((a) => this.may(id, repo, a));
    const allowed = this.policy.actions(id.principal, repo);
    return all.filter((a) => allowed.has(a));
  }

  /** isAdmin is true when `id` has the admin role (`auth.admins`), or auth is off. */
  isAdmin(id: Identity): boolean {
    return id.via === 'none' || this.policy.isAdmin(id.principal);
  }

  /** mayMount: a mount names its source (`from`) and needs pull there; without it, only with auth off. */
  mayMount(id: Identity, from: string | undefined): boolean {
    if (id.via === 'none') return true;
    return from !== undefined && this.may(id, from, 'pull');
  }

  /**
   * eventsFilter is what of the events API `id` may read (`auth.eventsAccess`): a filter on an
   * event's repository. Throws 403 DENIED when `admins` is configured and `id` is not one.
   */
  eventsFilter(id: Identity): (repo: string | undefined) => boolean {
    if (id.via === 'none') return () => true;
    if (this.config.eventsAccess === 'admins') {
      if (!this.policy.isAdmin(id.principal))
        throw Errors.denied({ kind: 'events' }, undefined, 'the events API is for admins');
      return () => true;
    }
    const pullable = this.canList(id);
    return (repo) => repo !== undefined && pullable(repo);
  }

  /** canList is the catalog filter: repositories `id` may pull. */
  canList(id: Identity): (repo: string) => boolean {
    if (id.via === 'none') return () => true;
    return (repo) => this.policy.actions(id.principal, repo).has('pull');
  }

  /**
   * require throws unless `id` has every need: 401 with a challenge when credentials (or a
   * token with that scope) could help, 403 DENIED when the caller is known and refused.
   */
  require(id: Identity, needs: readonly Need[], realm: string): void {
    if (id.via === 'none') return;
    const missing = needs.filter((n) => !this.has(id, n));
    if (missing.length === 0) return;
    const detail = missing.map((n) =>
      n.kind === 'repository' ? { name: n.name, action: n.action } : { kind: n.kind },
    );
    if (this.mode === 'htpasswd') {
      if (id.via === 'anonymous') throw this.unauthorized(this.basicChallenge(), detail);
      throw Errors.denied(detail);
    }
    if (id.via === 'anonymous') throw this.unauthorized(this.bearerChallenge(realm, needs), detail);
    // The token was asked for this repository and did not get it: asking again will not help.
    const asked = missing.every(
      (n) =>
        n.kind !== 'repository' ||
        (id.token?.access ?? []).some((a) => a.type === 'repository' && a.name === n.name),
    );
    if (asked && missing.every((n) => n.kind === 'repository')) throw Errors.denied(detail);
    throw this.unauthorized(this.bearerChallenge(realm, needs, 'insufficient_scope'), detail);
  }

  private has(id: Identity, n: Need): boolean {
    switch (n.kind) {
      case 'login':
        return id.via !== 'anonymous';
      case 'catalog':
        return id.via !== 'anonymous' || !this.policy.anonymousEmpty;
      case 'repository':
        return this.may(id, n.name, n.action);
    }
  }

  /**
   * issue answers the token endpoint: the caller (anonymous, or Basic credentials checked
   * against htpasswd) gets the requested scopes cut down to what the policy grants.
   */
  async issue(
    authorization: string | undefined,
    scopes: readonly string[],
    service: string | undefined,
  ): Promise<TokenResponse> {
    if (!this.signing) throw Errors.notFound({ path: '/auth/token' });
    if (service !== undefined && service !== this.config.token.service)
      throw Errors.denied({ service: service.slice(0, 100) }, undefined, 'unknown service');
    let principal: Principal = ANONYMOUS;
    if (authorization !== undefined && authorization !== '') {
      const [scheme = '', value = ''] = authorization.split(' ', 2);
      const id = scheme.toLowerCase() === 'basic' ? await this.basic(value) : undefined;
      if (!id) throw this.unauthorized(this.basicChallenge(), { reason: 'invalid credentials' });
      principal = id.principal;
    }
    const access: ResourceAccess[] = [];
    for (const raw of scopes.slice(0, MAX_SCOPES)) {
      for (const one of raw.split(' ')) {
        const s = parseScope(one);
        if (!s) continue;
        if (s.type === 'registry' && s.name === 'catalog') {
          if (principal.kind !== 'anonymous')
            access.push({ type: 'registry', name: 'catalog', actions: ['*'] });
          continue;
        }
        if (s.type !== 'repository') continue;
        const allowed = this.policy.actions(principal, s.name);
        const wanted = s.actions.includes('*') ? ['pull', 'push', 'delete'] : s.actions;
        access.push({
          type: 'repository',
          name: s.name,
          actions: wanted.filter((a) => allowed.has(a as Action)),
        });
      }
    }
    const now = Math.floor(this.clock.now() / 1000);
    const exp = this.config.token.expiresSeconds;
    const claims = {
      iss: this.config.token.issuer,
      sub: principal.name,
      aud: this.config.token.service,
      exp: now + exp,
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const token = signJwt(claims, this.signing.privateKey, this.signing.trusted.kid);
    return {
      token,
      access_token: token,
      expires_in: exp,
      issued_at: new Date(now * 1000).toISOString(),
    };
  }
}

function tokenGrants(token: TokenClaims | undefined, repo: string, action: Action): boolean {
  return (token?.access ?? []).some(
    (a) =>
      a.type === 'repository' &&
      a.name === repo &&
      (a.actions.includes(action) || a.actions.includes('*')),
  );
}

function scopeOf(needs: readonly Need[]): string {
  const byRepo = new Map<string, Set<string>>();
  const out: string[] = [];
  for (const n of needs) {
    if (n.kind === 'catalog') out.push('registry:catalog:*');
    if (n.kind !== 'repository') continue;
    const set = byRepo.get(n.name) ?? new Set<string>();
    set.add(n.action);
    // A client that pushes also needs pull (it HEADs blobs first), as distribution asks.
    if (n.action === 'push') set.add('pull');
    byRepo.set(n.name, set);
  }
  for (const [name, acts] of byRepo)
    out.push(
      `repository:${name}:${['pull', 'push', 'delete'].filter((a) => acts.has(a)).join(',')}`,
    );
  return out.join(' ');
}

function quote(s: string): string {
  return `"${s.replace(/["\\]/g, '\\$&')}"`;
}
