import type { Resolved } from './json-schema.js';

/** validationSchema is the `validation` section: manifest validation. */
export const validationSchema = {
  description: 'Manifest validation.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    allowSparse: {
      description:
        'Accept manifests whose layers or child manifests are not in the repository (mirrors of single platforms); off, they get MANIFEST_BLOB_UNKNOWN.',
      type: 'boolean',
      default: false,
    },
  },
} as const;

/** ValidationConfig says how strictly pushed manifests are checked. */
export type ValidationConfig = Resolved<typeof validationSchema>;
