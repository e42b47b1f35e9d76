import { globs } from './globs.js';
import { withDefaults, type Resolved, type Written } from './json-schema.js';

/** ENDPOINT_NAME_PATTERN: a webhook endpoint name, usable in storage keys and labels. */
export const ENDPOINT_NAME_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';
/** WEBHOOK_URL_PATTERN matches an http(s) URL. */
export const WEBHOOK_URL_PATTERN = '^https?://[^\\s/]+(?:/\\S*)?$';

const stringList = <D extends string>(description: D) =>
  ({
    description,
    type: 'array',
    maxItems: 1000,
    items: { type: 'string', minLength: 1 },
  }) as const;

/**
 * endpointSchema is one entry of `notifications.endpoints` (file only, no env variables). Its
 * defaults are not filled in by parsing (list entries stay as written): resolveEndpoint does.
 */
const endpointSchema = {
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
} as const;

/** notificationsSchema is the `notifications` section: the events outbox and its webhooks. */
export const notificationsSchema = {
  description: 'Durable events: the outbox in storage and its delivery to webhooks.',
  type: 'object',
  additionalProperties: false,
  default: {},
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
      default: [],
      items: endpointSchema,
    },
  },
} as const;

/** EndpointConfig is one webhook receiving events, as written in the file. */
export type EndpointConfig = Written<typeof endpointSchema>;

/** EventFormat is the wire format of one endpoint. */
export type EventFormat = NonNullable<EndpointConfig['format']>;

/** NotificationsConfig drives the durable events outbox and its delivery to webhooks. */
export type NotificationsConfig = Resolved<typeof notificationsSchema>;

/** ResolvedEndpoint is an endpoint with every setting that has a default present. */
export type ResolvedEndpoint = Resolved<typeof endpointSchema>;

/** resolveEndpoint is a copy of `e` with the settings it leaves out taken from the schema. */
export function resolveEndpoint(e: EndpointConfig): ResolvedEndpoint {
  return withDefaults(endpointSchema, e);
}
