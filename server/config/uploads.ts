import type { Resolved } from './json-schema.js';

/** uploadsSchema is the `uploads` section: blob upload sessions. */
export const uploadsSchema = {
  description: 'Blob upload sessions.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    ttlSeconds: {
      description:
        "Upload session lifetime; must stay under MinIO's 24 h purge of unfinished multipart uploads.",
      type: 'integer',
      minimum: 60,
      maximum: 86399,
      default: 43200,
    },
    purgeIntervalSeconds: {
      description: 'How often expired sessions are reclaimed (0 = never).',
      type: 'integer',
      minimum: 0,
      default: 600,
    },
  },
} as const;

/** UploadsConfig is the lifetime of upload sessions and how often expired ones are reclaimed. */
export type UploadsConfig = Resolved<typeof uploadsSchema>;
