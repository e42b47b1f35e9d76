import type { JsonSchema } from '../config/schema.js';
import { globs } from '../util/glob.js';

const names = (description: string): JsonSchema => ({
  description,
  type: 'array',
  maxItems: 10000,
  items: { type: 'string', minLength: 1, maxLength: 256 },
});

/** authSchema is the `auth` section of `berth.yaml`. */
export const authSchema: JsonSchema = {
  description: 'Authentication and access control. Lists are file-only (no environment variable).',
  type: 'object',
  additionalProperties: false,
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
    anonymousPull: globs('Repository globs anyone may pull without credentials.'),
    groups: {
      description: 'Named sets of users.',
      type: 'array',
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
      properties: {
        users: names('User names (robot accounts as robot$<name>).'),
        groups: names('Group names.'),
      },
    },
    immutableTags: {
      description: 'Tags that are never moved or deleted once they exist.',
      type: 'array',
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
};

/** httpTlsSchema is `http.tls`. */
export const httpTlsSchema: JsonSchema = {
  description:
    'HTTPS for the listener (TLS 1.2 or later); certificate and key are re-read on change.',
  type: 'object',
  additionalProperties: false,
  properties: {
    certFile: { description: 'PEM certificate chain.', type: 'string', minLength: 1 },
    keyFile: { description: 'PEM private key.', type: 'string', minLength: 1 },
    clientCaFile: {
      description: 'PEM CA bundle; when set, clients must present a certificate it signed.',
      type: 'string',
      minLength: 1,
    },
  },
};

/** rateSchema is `limits.rate`. */
export const rateSchema: JsonSchema = {
  description: 'Per-client request rate (token bucket keyed by client address); 429 when exceeded.',
  type: 'object',
  additionalProperties: false,
  properties: {
    requestsPerSecond: {
      description: 'Sustained requests per second per client (0 = no limit).',
      type: 'integer',
      minimum: 0,
      default: 0,
    },
    burst: {
      description: 'Requests a client may make at once above the sustained rate.',
      type: 'integer',
      minimum: 1,
      default: 200,
    },
  },
};
