import { globs } from './globs.js';
import { syncListSchema } from './sync.js';
import { withDefaults, type Resolved, type Written } from './json-schema.js';

/** UPSTREAM_URL_PATTERN matches an http(s) registry base URL (scheme, host, optional port). */
export const UPSTREAM_URL_PATTERN = '^https?://[^\\s/]+/?$';

/**
 * upstreamSchema is one entry of `mirrors.upstreams` (file only). Defaults are filled in by
 * resolveUpstream, not by parsing (list entries stay as written).
 */
const upstreamSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'url'],
  properties: {
    name: {
      description: 'Upstream name (logs, metrics).',
      type: 'string',
      pattern: '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$',
    },
    url: {
      description: 'Upstream registry base URL, e.g. https://registry-1.docker.io.',
      type: 'string',
      pattern: UPSTREAM_URL_PATTERN,
    },
    prefix: {
      description:
        'Local repositories under this prefix map to the upstream with the prefix removed (`docker.io` maps `docker.io/library/alpine` to `library/alpine`). Empty = names map unchanged.',
      type: 'string',
      pattern: '^(?:[a-z0-9._-]+(?:/[a-z0-9._-]+)*)?$',
      default: '',
    },
    ns: {
      description:
        'Hosts a containerd mirror request may name with `?ns=<host>` for this upstream (e.g. docker.io); such a request for `library/alpine` reads the local repository `<prefix>/library/alpine`.',
      type: 'array',
      maxItems: 100,
      default: [],
      items: { type: 'string', pattern: '^[A-Za-z0-9.-]+(?::[0-9]+)?$' },
    },
    repositories: globs(
      'Upstream repository globs that may be pulled through (`*` within a segment, `**` across). Default: all.',
    ),
    username: { description: 'User name for Basic or token auth.', type: 'string' },
    passwordFile: {
      description:
        'File holding the password or token (a mounted Kubernetes Secret key). Read at start.',
      type: 'string',
    },
    caFile: {
      description: 'PEM file of CA certificates trusted for the upstream (in addition to none).',
      type: 'string',
    },
    insecure: {
      description: 'Accept any TLS certificate from the upstream (tests only).',
      type: 'boolean',
      default: false,
    },
    tagTtlSeconds: {
      description:
        'How long a cached tag is served before it is checked upstream again with a HEAD; when the upstream fails, the cached tag is served (stale-if-error).',
      type: 'integer',
      minimum: 0,
      maximum: 604800,
      default: 300,
    },
    idleTimeoutSeconds: {
      description:
        'A request to the upstream whose connection stays silent this long (no answer, or a body that stopped) fails, so a pull or a sync run is not held forever; 0 = never.',
      type: 'integer',
      minimum: 0,
      maximum: 3600,
      default: 60,
    },
    maxRetries: {
      description: 'Retries of an upstream answer 429 or 503, after Retry-After or a backoff.',
      type: 'integer',
      minimum: 0,
      maximum: 10,
      default: 3,
    },
  },
} as const;

/** mirrorsSchema is the `mirrors` section: upstream registries pulled through (ADR 0024). */
export const mirrorsSchema = {
  description:
    'Pull-through cache: a pull of a missing manifest or blob in a repository mapped to an upstream fetches it there, serves it and stores it; scheduled sync copies chosen repositories ahead of pulls (docs/mirroring.md).',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    upstreams: {
      description: 'Upstream registries (file only); the first whose mapping matches wins.',
      type: 'array',
      maxItems: 100,
      default: [],
      items: upstreamSchema,
    },
    sync: syncListSchema,
  },
} as const;

/** UpstreamConfig is one upstream registry, as written in the file. */
export type UpstreamConfig = Written<typeof upstreamSchema>;

/** ResolvedUpstream is an upstream with every setting that has a default present. */
export type ResolvedUpstream = Resolved<typeof upstreamSchema>;

/** MirrorsConfig lists the upstream registries pulled through. */
export type MirrorsConfig = Resolved<typeof mirrorsSchema>;

/** resolveUpstream is a copy of `u` with the settings it leaves out taken from the schema. */
export function resolveUpstream(u: UpstreamConfig): ResolvedUpstream {
  return withDefaults(upstreamSchema, u);
}
