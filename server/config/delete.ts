import type { Resolved } from './json-schema.js';

/** deleteSchema is the `delete` section: whether manifests, tags and blobs may be deleted. */
export const deleteSchema = {
  description: 'Deletes of manifests, tags and blobs.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    enabled: {
      description: 'Allow deletes (405 UNSUPPORTED when off).',
      type: 'boolean',
      default: true,
    },
  },
} as const;

/** DeleteConfig: `enabled` allows manifest, tag and blob deletes (405 UNSUPPORTED when off). */
export type DeleteConfig = Resolved<typeof deleteSchema>;
