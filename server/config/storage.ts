import { HOST, OPTIONAL_PORT } from './http.js';
import type { Resolved, WithRequired } from './json-schema.js';

/** ENDPOINT_PATTERN matches an http(s) URL with no path, e.g. `http://minio:9000`. */
export const ENDPOINT_PATTERN = `^https?://${HOST}${OPTIONAL_PORT}/?$`;
/** BUCKET_PATTERN: lowercase letters, digits, dots and hyphens, alnum at both ends, no `..`. */
export const BUCKET_PATTERN = '^[a-z0-9](?:[a-z0-9-]|\\.(?!\\.))*[a-z0-9]$';
/** PREFIX_PATTERN: a key prefix without a leading or trailing slash. */
export const PREFIX_PATTERN = '^[^/](?:.*[^/])?$';

const filesystemSchema = {
  description: 'Settings of the filesystem driver.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    root: {
      description: 'Directory holding the registry data.',
      type: 'string',
      minLength: 1,
      default: './data',
    },
  },
} as const;

const s3Schema = {
  description: 'Settings of the s3 driver (MinIO or any S3-compatible store).',
  type: 'object',
  additionalProperties: false,
  properties: {
    endpoint: {
      description: 'S3 URL, e.g. http://minio:9000.',
      type: 'string',
      pattern: ENDPOINT_PATTERN,
    },
    bucket: {
      description: 'Bucket name (S3 naming rules).',
      type: 'string',
      minLength: 3,
      maxLength: 63,
      pattern: BUCKET_PATTERN,
    },
    region: {
      description: 'Region sent in request signatures.',
      type: 'string',
      minLength: 1,
      default: 'us-east-1',
    },
    accessKey: {
      description: 'Access key id.',
      type: 'string',
      minLength: 1,
      writeOnly: true,
    },
    secretKey: {
      description: 'Secret access key.',
      type: 'string',
      minLength: 1,
      writeOnly: true,
    },
    pathStyle: {
      description: 'Address the bucket in the path (MinIO) instead of the host name.',
      type: 'boolean',
      default: true,
    },
    prefix: {
      description: 'Key prefix inside the bucket (no leading or trailing slash).',
      type: 'string',
      pattern: PREFIX_PATTERN,
    },
    partSizeMiB: {
      description: 'Multipart upload part size in MiB.',
      type: 'integer',
      minimum: 5,
      maximum: 5120,
      default: 16,
    },
    bufferMiB: {
      description:
        'Memory for multipart part buffers, shared by all uploads of a process, in MiB. Uploads in parallel get smaller parts (never under 5 MiB).',
      type: 'integer',
      minimum: 16,
      maximum: 65536,
      default: 64,
    },
    redirect: {
      description: 'Answer blob GETs with a 307 to a presigned URL.',
      type: 'boolean',
      default: false,
    },
    tls: {
      description: 'TLS settings for https endpoints.',
      type: 'object',
      additionalProperties: false,
      properties: {
        caFile: {
          description: 'PEM CA bundle to trust for the endpoint.',
          type: 'string',
          minLength: 1,
        },
        insecureSkipVerify: {
          description: 'Skip certificate verification (testing only).',
          type: 'boolean',
        },
      },
    },
  },
} as const;

/** storageSchema is the `storage` section: the driver and the settings of each. */
export const storageSchema = {
  description: 'Where blobs and metadata live. Only the section of the selected driver is used.',
  type: 'object',
  additionalProperties: false,
  default: { driver: 'filesystem', filesystem: { root: './data' } },
  properties: {
    driver: {
      description: 'Storage backend.',
      type: 'string',
      enum: ['filesystem', 's3', 'inmemory'],
      default: 'filesystem',
    },
    filesystem: filesystemSchema,
    s3: s3Schema,
  },
  if: { type: 'object', properties: { driver: { const: 's3' } }, required: ['driver'] },
  then: {
    type: 'object',
    required: ['s3'],
    properties: {
      s3: { type: 'object', required: ['endpoint', 'bucket', 'accessKey', 'secretKey'] },
    },
  },
} as const;

/** S3Required are the s3 fields the schema requires when the driver is s3. */
type S3Required = (typeof storageSchema)['then']['properties']['s3']['required'][number];

/** S3Config is the s3 driver's settings (MinIO or any S3-compatible store). */
export type S3Config = WithRequired<Resolved<typeof s3Schema>, S3Required>;

/** FilesystemConfig is the filesystem driver's settings. */
export type FilesystemConfig = Resolved<typeof filesystemSchema>;

/** StorageConfig is the selected driver with its settings only. */
export type StorageConfig =
  | { driver: 'filesystem'; filesystem: FilesystemConfig }
  | { driver: 's3'; s3: S3Config }
  | { driver: 'inmemory' };

/**
 * selectDriver keeps the selected driver's settings and drops the others. `storage` must be
 * valid and resolved (so the s3 settings exist, with their required fields, when selected).
 */
export function selectDriver(storage: Resolved<typeof storageSchema>): StorageConfig {
  switch (storage.driver) {
    case 'filesystem':
      return { driver: 'filesystem', filesystem: storage.filesystem };
    case 's3':
      return { driver: 's3', s3: storage.s3 as S3Config };
    case 'inmemory':
      return { driver: 'inmemory' };
  }
}
