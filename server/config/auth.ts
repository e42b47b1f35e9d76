import { globs } from './globs.js';
import { defaultsOf, type Resolved } from './json-schema.js';

const names = <D extends string>(description: D) =>
  ({
    description,
    type: 'array',
    maxItems: 10000,
    items: { type: 'string', minLength: 1, maxLength: 256 },
  }) as const;

/** authSchema is the `auth` section of `berth.yaml`. */
export const authSchema = {
  description: 'Authentication and access control. Lists are file-only (no environment variable).',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    mode: {
      description: 'none (no checks), htpasswd (Basic) or token (Bearer JWT).',
      type: 'string',
      enum: ['none', 'htpasswd', 'token'],
      default: 'none',
    },
    htpasswd: {
      description:
        'The htpasswd file (bcrypt entries), used by htpasswd mode and by the token endpoint.',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        path: {
          description: 'Path of the htpasswd file; re-read on change.',
          type: 'string',
          minLength: 1,
        },
        realm: {
          description: 'Realm named in the Basic challenge.',
          type: 'string',
          minLength: 1,
          default: 'berth',
        },
      },
    },
    token: {
      description: 'Bearer token settings (Docker token spec).',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        realm: {
          description: 'Token endpoint URL sent in challenges; unset: this server’s /auth/token.',
          type: 'string',
          pattern: '^https?://[^\\s"]+$',
        },
        service: {
          description: 'Token audience and challenge service.',
          type: 'string',
          minLength: 1,
          default: 'berth',
        },
        issuer: {
          description: 'Token issuer (iss) issued and required.',
          type: 'string',
          minLength: 1,
          default: 'berth',
        },
        expiresSeconds: {
          description: 'Lifetime of issued tokens.',
          type: 'integer',
          minimum: 30,
          maximum: 86400,
          default: 300,
        },
        signingKeyFile: {
          description: 'PEM private key for issued tokens; unset: generated at start.',
          type: 'string',
          minLength: 1,
        },
        external: {
          description: 'Verify tokens of another issuer; serve no token endpoint.',
          type: 'boolean',
          default: false,
        },
        jwksFile: {
          description: 'External issuer public keys (JWKS JSON).',
          type: 'string',
          minLength: 1,
        },
        rootCertBundle: {
          description: 'External issuer certificates (PEM).',
          type: 'string',
          minLength: 1,
        },
        algorithms: {
          description: 'Allowed token signature algorithms.',
          type: 'array',
          maxItems: 7,
          items: {
            type: 'string',
            enum: ['ES256', 'ES384', 'RS256', 'RS384', 'RS512', 'PS256', 'EdDSA'],
          },
          default: ['ES256', 'RS256'],
        },
      },
    },
    anonymousPull: {
      ...globs('Repository globs anyone may pull without credentials.'),
      default: [],
    },
    groups: {
      description: 'Named sets of users.',
      type: 'array',
      default: [],
      maxItems: 1000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'members'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 256 },
          members: names('User names.'),
        },
      },
    },
    rules: {
      description: 'Grants of pull, push, delete on repository globs.',
      type: 'array',
      default: [],
      maxItems: 10000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['repositories', 'actions'],
        properties: {
          repositories: globs('Repository globs.'),
          users: names('User names; "*" is any authenticated caller.'),
          groups: names('Group names.'),
          robots: names('Robot account names without the robot$ prefix.'),
          actions: {
            type: 'array',
            items: { type: 'string', enum: ['pull', 'push', 'delete'] },
          },
        },
      },
    },
    eventsAccess: {
      description:
        'Who reads the events API: "pullable" shows each caller the events of repositories it may pull; "admins" only admins, all events.',
      type: 'string',
      enum: ['pullable', 'admins'],
      default: 'pullable',
    },
    admins: {
      description: 'Users and groups with the admin role.',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        users: { ...names('User names (robot accounts as robot$<name>).'), default: [] },
        groups: { ...names('Group names.'), default: [] },
      },
    },
    immutableTags: {
      description: 'Tags that are never moved or deleted once they exist.',
      type: 'array',
      default: [],
      maxItems: 1000,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['repositories', 'tags'],
        properties: {
          repositories: globs('Repository globs.'),
          tags: globs('Tag globs.'),
        },
      },
    },
  },
} as const;

/**
 * AuthConfig is authentication and access control. With mode `none` everything is allowed and
 * the other fields are ignored. Lists are file-only (no environment variable).
 */
export type AuthConfig = Resolved<typeof authSchema>;

/** AuthMode selects how callers authenticate. */
export type AuthMode = AuthConfig['mode'];

/** TokenAuthConfig is how Bearer tokens are issued or, with `external`, verified. */
export type TokenAuthConfig = AuthConfig['token'];

/** AccessRule grants `actions` on `repositories` to the listed principals (`users: ['*']`: any). */
export type AccessRule = AuthConfig['rules'][number];

/** AccessAction is what a rule may grant in a repository. */
export type AccessAction = AccessRule['actions'][number];

/** authDefaults is a fresh `auth` section for when nothing is configured: no authentication. */
export function authDefaults(): AuthConfig {
  return defaultsOf(authSchema);
}

/**
 * authProblems finds what the schema cannot say about `auth`: files and settings a mode needs.
 * `from` names the environment variable a field came from, if any.
 */
export function authProblems(a: AuthConfig, from: (field: string) => string): string[] {
  const out: string[] = [];
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
