import type { Resolved, WithRequired } from './json-schema.js';

/** Port 0..65535 without leading zeros. */
const PORT =
  '(?:[0-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
/** HOST is a host name, an IPv4 address, or a bracketed IPv6 address. */
export const HOST = '(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\])';
/** OPTIONAL_PORT is `:port` or nothing. */
export const OPTIONAL_PORT = `(?::${PORT})?`;

/** ADDR_PATTERN matches `host:port`, e.g. `0.0.0.0:5000`, `localhost:5001`, `[::]:5000`. */
export const ADDR_PATTERN = `^${HOST}:${PORT}$`;

/** tlsSchema is `http.tls`. */
const tlsSchema = {
  description:
    'HTTPS for the listener (TLS 1.2 or later); certificate and key are re-read on change.',
  type: 'object',
  additionalProperties: false,
  properties: {
    certFile: { description: 'PEM certificate chain.', type: 'string', minLength: 1 },
    keyFile: { description: 'PEM private key.', type: 'string', minLength: 1 },
    clientCaFile: {
      description: 'PEM CA bundle; when set, clients must present a certificate it signed.',
      type: 'string',
      minLength: 1,
    },
  },
} as const;

/** httpSchema is the `http` section: the listener. */
export const httpSchema = {
  description: 'The HTTP listener.',
  type: 'object',
  additionalProperties: false,
  default: {},
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
      description: 'host:port serving /healthz, /readyz and /metrics on a separate port, if set.',
      type: 'string',
      pattern: ADDR_PATTERN,
    },
    shutdownTimeoutSeconds: {
      description: 'How long in-flight requests may finish after SIGTERM.',
      type: 'integer',
      minimum: 0,
      default: 30,
    },
    tls: tlsSchema,
  },
} as const;

/**
 * TlsConfig is the listener's TLS; minimum version TLS 1.2. certFile and keyFile are both
 * present (httpProblems), though the schema cannot say so without changing its messages.
 */
export type TlsConfig = WithRequired<Resolved<typeof tlsSchema>, 'certFile' | 'keyFile'>;

/** HttpConfig is the listener: addresses, workers, shutdown and TLS. */
export type HttpConfig = Omit<Resolved<typeof httpSchema>, 'tls'> & { tls?: TlsConfig };

/** httpProblems finds what the schema cannot say about `http`: a half-configured TLS. */
export function httpProblems(http: Resolved<typeof httpSchema>): string[] {
  const tls = http.tls;
  if (tls && (tls.certFile === undefined || tls.keyFile === undefined))
    return ['http.tls: certFile and keyFile are both required to serve HTTPS'];
  return [];
}
