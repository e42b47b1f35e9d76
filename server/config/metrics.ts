import { globs } from './globs.js';
import type { Resolved } from './json-schema.js';

/** metricsSchema is the `metrics` section: the Prometheus endpoint on `http.debugAddr`. */
export const metricsSchema = {
  description: 'Prometheus metrics, served on http.debugAddr.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    enabled: {
      description: 'Serve metrics on the debug listener.',
      type: 'boolean',
      default: true,
    },
    path: {
      description: 'Path of the exposition on the debug listener.',
      type: 'string',
      pattern: '^/[A-Za-z0-9/_-]*$',
      default: '/metrics',
    },
    repositoryLimit: {
      description: 'Most repository label values; later repositories count as _other.',
      type: 'integer',
      minimum: 0,
      maximum: 10000,
      default: 100,
    },
    repositories: {
      ...globs('Repository glob patterns that always get their own label (file only).'),
      default: [],
    },
  },
} as const;

/** MetricsConfig controls the Prometheus endpoint on `http.debugAddr`. */
export type MetricsConfig = Resolved<typeof metricsSchema>;
