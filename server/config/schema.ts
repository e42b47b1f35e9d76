/**
 * configSchema is the JSON Schema (draft-07) of the `berth.yaml` file format. Every property is
 * optional in the file: `load.ts` validates the raw file (with `BERTH_*` environment overrides
 * merged in) against this schema and then fills the gaps from `defaults()`.
 *
 * The `default` keywords here are annotations for readers and tools; they must agree with
 * `defaults()` in `load.ts` (a unit test checks that). The environment variable names are derived
 * from the property paths (see `envBindings()` in `load.ts`), so renaming a property renames its
 * variable.
 *
 * `writeOnly: true` marks secrets: error messages never echo their values.
 */

import { authSchema, httpTlsSchema, rateSchema } from '../auth/schema.js';
import { gcSchema } from '../gc/schema.js';
import { globs } from '../util/glob.js';

/** JsonSchema is the subset of draft-07 this file uses. */
export interface JsonSchema {
  $schema?: string;
  $id?: string;
  title?: string;
  description?: string;
  type?: 'object' | 'string' | 'integer' | 'boolean' | 'array';
  properties?: Record<string, JsonSchema>;
  /** additionalProperties is a schema only for maps (objects without `properties`). */
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  maxItems?: number;
  required?: string[];
  enum?: string[];
  const?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  writeOnly?: boolean;
  if?: JsonSchema;
  then?: JsonSchema;
}

/** Port 0..65535 without leading zeros. */
const PORT =
  '(?:[0-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
/** A host name, an IPv4 address, or a bracketed IPv6 address. */
const HOST = '(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])';

/** ADDR_PATTERN matches `host:port`, e.g. `0.0.0.0:5000`, `localhost:5001`, `[::]:5000`. */
export const ADDR_PATTERN = `^${HOST}:${PORT}$`;
/** ENDPOINT_PATTERN matches an http(s) URL with no path, e.g. `http://minio:9000`. */
export const ENDPOINT_PATTERN = `^https?://${HOST}(?::${PORT})?/?$`;
/** BUCKET_PATTERN: lowercase letters, digits, dots and hyphens, alnum at both ends, no `..`. */
export const BUCKET_PATTERN = '^[a-z0-9](?:[a-z0-9-]|\\.(?!\\.))*[a-z0-9]$';
/** PREFIX_PATTERN: a key prefix without a leading or trailing slash. */
export const PREFIX_PATTERN = '^[^/](?:.*[^/])?$';

/** ENDPOINT_NAME_PATTERN: a webhook endpoint name, usable in storage keys and labels. */
export const ENDPOINT_NAME_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';
/** WEBHOOK_URL_PATTERN matches an http(s) URL. */
export const WEBHOOK_URL_PATTERN = '^https?://[^\\s/]+(?:/\\S*)?$';

const stringList = (description: string): JsonSchema => ({
  description,
  type: 'array',
  maxItems: 1000,
  items: { type: 'string', minLength: 1 },
});

/** endpointSchema is one entry of `notifications.endpoints` (file only, no env variables). */
const endpointSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'url'],
  properties: {
    name: { description: 'Endpoint name.', type: 'string', pattern: ENDPOINT_NAME_PATTERN },
    url: { description: 'Webhook URL.', type: 'string', pattern: WEBHOOK_URL_PATTERN },
    disabled: { description: 'Skip this endpoint.', type: 'boolean', default: false },
    format: {
      description: 'Wire format.',
      type: 'string',
      enum: ['distribution', 'cloudevents-structured', 'cloudevents-binary'],
      default: 'distribution',
    },
    headers: {
      description: 'Headers sent with every request.',
      type: 'object',
      additionalProperties: { type: 'string' },
    },
    secret: {
      description: 'HMAC-SHA256 key signing each request (Berth-Signature header).',
      type: 'string',
      minLength: 1,
      writeOnly: true,
    },
    timeoutSeconds: { description: 'Request timeout.', type: 'integer', minimum: 1, default: 1 },
    threshold: {
      description: 'Consecutive failures that open the circuit breaker.',
      type: 'integer',
      minimum: 1,
      default: 10,
    },
    backoffMillis: {
      description: 'First retry delay.',
      type: 'integer',
      minimum: 1,
      default: 1000,
    },
    maxBackoffMillis: {
      description: 'Largest retry delay.',
      type: 'integer',
      minimum: 1,
      default: 60000,
    },
    maxAttempts: {
      description: 'Attempts before an event is dead-lettered (0 = unlimited).',
      type: 'integer',
      minimum: 0,
      default: 0,
    },
    maxAgeSeconds: {
      description: 'Age after which a failing event is dead-lettered (0 = unlimited).',
      type: 'integer',
      minimum: 0,
      default: 86400,
    },
    ignore: {
      description: 'Events not sent to this endpoint (any match drops the event).',
      type: 'object',
      additionalProperties: false,
      properties: {
        mediaTypes: stringList('Target media types.'),
        actions: stringList('Actions: push, pull, mount, delete.'),
        repositories: globs(
          'Repository glob patterns (`*` within a path segment, `**` across, `?` one character).',
        ),
      },
    },
  },
};

export const configSchema: JsonSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://berth.dev/schemas/berth.yaml.json',
  title: 'berth.yaml',
  description: 'Configuration of `berth server`. Every property is optional.',
  type: 'object',
  additionalProperties: false,
  properties: {
    http: {
      description: 'The HTTP listener.',
      type: 'object',
      additionalProperties: false,
      properties: {
        addr: {
          description: 'host:port to listen on.',
          type: 'string',
          pattern: ADDR_PATTERN,
          default: '0.0.0.0:5000',
        },
        secret: {
          description: 'Signs upload state tokens; replicas sharing a bucket must share it.',
          type: 'string',
          minLength: 1,
          writeOnly: true,
        },
        workers: {
          description: 'Number of server processes (0 = one per core).',
          type: 'integer',
          minimum: 0,
          maximum: 256,
          default: 1,
        },
        debugAddr: {
          description:
            'host:port serving /healthz, /readyz and /metrics on a separate port, if set.',
          type: 'string',
          pattern: ADDR_PATTERN,
        },
        shutdownTimeoutSeconds: {
          description: 'How long in-flight requests may finish after SIGTERM.',
          type: 'integer',
          minimum: 0,
          default: 30,
        },
        tls: httpTlsSchema,
      },
    },
    storage: {
      description:
        'Where blobs and metadata live. Only the section of the selected driver is used.',
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
        filesystem: {
          description: 'Settings of the filesystem driver.',
          type: 'object',
          additionalProperties: false,
          properties: {
            root: {
              description: 'Directory holding the registry data.',
              type: 'string',
              minLength: 1,
              default: './data',
            },
          },
        },
        s3: {
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
        },
      },
      if: { type: 'object', properties: { driver: { const: 's3' } }, required: ['driver'] },
      then: {
        type: 'object',
        required: ['s3'],
        properties: {
          s3: { type: 'object', required: ['endpoint', 'bucket', 'accessKey', 'secretKey'] },
        },
      },
    },
    delete: {
      description: 'Deletes of manifests, tags and blobs.',
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: {
          description: 'Allow deletes (405 UNSUPPORTED when off).',
          type: 'boolean',
          default: true,
        },
      },
    },
    readOnly: {
      description: 'Remove every write route (405 UNSUPPORTED).',
      type: 'boolean',
      default: false,
    },
    cache: {
      description:
        'In-process cache of immutable metadata (blob descriptors, manifests by digest) and of catalog and tag list pages. Writes through this process take effect at once; changes made through another replica are seen within the TTLs.',
      type: 'object',
      additionalProperties: false,
      properties: {
        ttlSeconds: {
          description:
            'How long a cached blob descriptor or manifest is trusted (0 = no cache). Keep it well under gc.graceSeconds.',
          type: 'integer',
          minimum: 0,
          maximum: 3600,
          default: 60,
        },
        tagTtlSeconds: {
          description:
            'How long a tag read is kept (0 = never: concurrent reads of one tag share one storage call, and a pull right after a push through another replica gets the new manifest). Above 0, a tag moved through another replica can resolve to its old manifest for this long.',
          type: 'integer',
          minimum: 0,
          maximum: 60,
          default: 0,
        },
        tagsWhenAlone: {
          description:
            'Keep tag reads in memory while this process is the only one on the storage (ADR 0012): processes sharing a storage list each other every second under peers/, a newcomer moves no tag until every process keeping tags has seen it, and a process that finds another stops keeping tags at once. false = tags follow tagTtlSeconds only.',
          type: 'boolean',
          default: true,
        },
        listTtlSeconds: {
          description:
            'How stale a cached catalog or tag list page may be when another replica wrote (0 = no list cache).',
          type: 'integer',
          minimum: 0,
          maximum: 300,
          default: 5,
        },
        maxMiB: {
          description: 'Memory for cached objects per process, in MiB.',
          type: 'integer',
          minimum: 1,
          maximum: 4096,
          default: 32,
        },
        blobDir: {
          description:
            "A local folder (a pod's emptyDir) for copies of blob bytes (ADR 0011): a pull that reads a blob from storage copies it there on the way, and later pulls through this process are served from it. Empty = no blob cache. Files not named like its own are left alone.",
          type: 'string',
          default: '',
        },
        blobMaxGiB: {
          description:
            'Disk space for the blob cache in GiB; the least recently read files go first.',
          type: 'integer',
          minimum: 1,
          maximum: 16384,
          default: 10,
        },
      },
    },
    uploads: {
      description: 'Blob upload sessions.',
      type: 'object',
      additionalProperties: false,
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
    },
    limits: {
      description: 'Request limits.',
      type: 'object',
      additionalProperties: false,
      properties: {
        manifestBytes: {
          description: 'Largest accepted manifest body (413 above it).',
          type: 'integer',
          minimum: 1,
          maximum: 33554432,
          default: 4194304,
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
        rate: rateSchema,
      },
    },
    validation: {
      description: 'Manifest validation.',
      type: 'object',
      additionalProperties: false,
      properties: {
        allowSparse: {
          description:
            'Accept manifests whose layers or child manifests are not in the repository (mirrors of single platforms); off, they get MANIFEST_BLOB_UNKNOWN.',
          type: 'boolean',
          default: false,
        },
      },
    },
    log: {
      description: 'Logging.',
      type: 'object',
      additionalProperties: false,
      properties: {
        level: {
          description: 'Least severe level written.',
          type: 'string',
          enum: ['debug', 'info', 'warn', 'error'],
          default: 'info',
        },
      },
    },
    notifications: {
      description: 'Durable events: the outbox in storage and its delivery to webhooks.',
      type: 'object',
      additionalProperties: false,
      properties: {
        includeReferences: {
          description: 'Add the descriptors a manifest references to its push events.',
          type: 'boolean',
          default: false,
        },
        pullFlushMillis: {
          description: 'How often buffered pull events are written to the outbox.',
          type: 'integer',
          minimum: 10,
          default: 1000,
        },
        settleMillis: {
          description: 'Outbox entries younger than this are not delivered yet.',
          type: 'integer',
          minimum: 0,
          default: 1000,
        },
        pollMillis: {
          description: 'How often an idle delivery loop looks for new outbox entries.',
          type: 'integer',
          minimum: 10,
          default: 500,
        },
        leaseSeconds: {
          description: "How long one replica holds an endpoint's delivery lease unrenewed.",
          type: 'integer',
          minimum: 1,
          default: 15,
        },
        retentionHours: {
          description: 'Outbox entries older than this, delivered to every endpoint, are deleted.',
          type: 'integer',
          minimum: 1,
          default: 168,
        },
        endpoints: {
          description: 'Webhooks receiving every event (file only).',
          type: 'array',
          maxItems: 100,
          items: endpointSchema,
        },
      },
    },
    metrics: {
      description: 'Prometheus metrics, served on http.debugAddr.',
      type: 'object',
      additionalProperties: false,
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
        repositories: globs(
          'Repository glob patterns that always get their own label (file only).',
        ),
      },
    },
    auth: authSchema,
    gc: gcSchema,
  },
};
