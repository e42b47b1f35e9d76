import { LOG_LEVELS } from '../util/log.js';
import type { Resolved } from './json-schema.js';

/** logSchema is the `log` section. */
export const logSchema = {
  description: 'Logging.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    level: {
      description: 'Least severe level written.',
      type: 'string',
      enum: LOG_LEVELS,
      default: 'info',
    },
  },
} as const;

/** LogConfig is the least severe level written. */
export type LogConfig = Resolved<typeof logSchema>;
