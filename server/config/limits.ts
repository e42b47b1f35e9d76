import type { Resolved } from './json-schema.js';

/** limitsSchema is the `limits` section: request limits. */
export const limitsSchema = {
  description: 'Request limits.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    manifestBytes: {
      description: 'Largest accepted manifest body (413 above it).',
      type: 'integer',
      minimum: 1,
      maximum: 33554432,
      default: 4194304,
    },
    importBytes: {
      description:
        'Largest body of one POST /v2/_berth/import (the archive, and the tar inside a gzip); 413 above it.',
      type: 'integer',
      minimum: 1,
      default: 17179869184,
    },
    maxListEntries: {
      description: 'Upper bound of `n` for the catalog, tag and referrers lists.',
      type: 'integer',
      minimum: 1,
      maximum: 10000,
      default: 1000,
    },
    defaultListEntries: {
      description: '`n` when a list request gives none; at most maxListEntries.',
      type: 'integer',
      minimum: 1,
      maximum: 10000,
      default: 100,
    },
    maxTagsPerPush: {
      description: 'Most `?tag=` parameters on one manifest PUT.',
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 32,
    },
    headerBytes: {
      description: 'Largest request line plus headers in bytes (431 above it).',
      type: 'integer',
      minimum: 1024,
      maximum: 1048576,
      default: 16384,
    },
    uploadSessionsPerClient: {
      description: 'Most open upload sessions per client address (0 = no bound).',
      type: 'integer',
      minimum: 0,
      default: 1000,
    },
    rate: {
      description:
        'Per-client request rate (token bucket keyed by client address); 429 when exceeded.',
      type: 'object',
      additionalProperties: false,
      default: {},
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
    },
  },
} as const;

/** LimitsConfig bounds request sizes, list pages, tags per push, sessions and request rate. */
export type LimitsConfig = Resolved<typeof limitsSchema>;

/**
 * limitsProblems finds what the schema cannot say about `limits`: a default list size above
 * the maximum. `from` names the environment variable a field came from, if any.
 */
export function limitsProblems(limits: LimitsConfig, from: (field: string) => string): string[] {
  if (limits.defaultListEntries <= limits.maxListEntries) return [];
  return [
    `limits.defaultListEntries: must be <= limits.maxListEntries (got ${limits.defaultListEntries} > ${limits.maxListEntries})${from('limits.defaultListEntries')}`,
  ];
}
