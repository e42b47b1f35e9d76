/**
 * configSchema is the JSON Schema (draft-07) of the `berth.yaml` file format, assembled from one
 * file per section. Every property is optional in the file: `load.ts` validates the raw file
 * (with `BERTH_*` environment overrides merged in) against this schema and then fills the gaps
 * from its `default`s (withDefaults), so the defaults are declared here and nowhere else, and
 * the config types in `types.ts` are derived from it.
 *
 * The environment variable names are derived from the property paths (see `envBindings()` in
 * `load.ts`), so renaming a property renames its variable.
 *
 * `writeOnly: true` marks secrets: error messages never echo their values.
 */

import { authSchema } from './auth.js';
import { cacheSchema } from './cache.js';
import { deleteSchema } from './delete.js';
import { gcSchema } from './gc.js';
import { httpSchema } from './http.js';
import type { JsonSchema } from './json-schema.js';
import { limitsSchema } from './limits.js';
import { logSchema } from './log.js';
import { metricsSchema } from './metrics.js';
import { mirrorsSchema } from './mirrors.js';
import { notificationsSchema } from './notifications.js';
import { storageSchema } from './storage.js';
import { uiSchema } from './ui.js';
import { uploadsSchema } from './uploads.js';
import { validationSchema } from './validation.js';

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://berth.dev/schemas/berth.yaml.json',
  title: 'berth.yaml',
  description: 'Configuration of `berth server`. Every property is optional.',
  type: 'object',
  additionalProperties: false,
  properties: {
    http: httpSchema,
    storage: storageSchema,
    delete: deleteSchema,
    readOnly: {
      description: 'Remove every write route (405 UNSUPPORTED).',
      type: 'boolean',
      default: false,
    },
    cache: cacheSchema,
    uploads: uploadsSchema,
    limits: limitsSchema,
    validation: validationSchema,
    log: logSchema,
    notifications: notificationsSchema,
    metrics: metricsSchema,
    auth: authSchema,
    gc: gcSchema,
    mirrors: mirrorsSchema,
    ui: uiSchema,
  },
} as const satisfies JsonSchema;
