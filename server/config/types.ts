/**
 * BerthConfig is the server's whole configuration: what `berth.yaml` holds after
 * defaults are applied and environment overrides merged. The operator renders this same
 * type into a ConfigMap, so it is the one contract between the two.
 */
export interface BerthConfig {
  http: HttpConfig;
  storage: StorageConfig;
  /** delete enables manifest, tag and blob deletes (405 UNSUPPORTED when off). */
  delete: { enabled: boolean };
  /** readOnly removes every write route (405 UNSUPPORTED). */
  readOnly: boolean;
  cache: CacheConfig;
  uploads: UploadsConfig;
  limits: LimitsConfig;
  validation: ValidationConfig;
  log: { level: LogLevel };
  auth: AuthConfig;
  notifications: NotificationsConfig;
  metrics: MetricsConfig;
  gc: GcConfig;
}

/**
 * GcConfig drives online garbage collection: mark and sweep with a grace window while pushes
 * continue, retention policies, and upload purging, one run at a time across replicas.
 */
export interface GcConfig {
  /** enabled runs garbage collection on a schedule inside the server. */
  enabled: boolean;
  /** intervalSeconds is the time between scheduled runs. */
  intervalSeconds: number;
  /** graceSeconds: nothing written more recently than this is ever deleted. */
  graceSeconds: number;
  /** dryRun makes scheduled runs only report what they would delete. */
  dryRun: boolean;
  /** leaseSeconds is how long the run lease lasts unrenewed. */
  leaseSeconds: number;
  /** settleMillis is the pause before re-checking for pushes that raced a deletion. */
  settleMillis: number;
  /** policies are retention policies; the first whose repositories match applies (file only). */
  policies: RetentionPolicy[];
}

/**
 * RetentionPolicy says what retention deletes in the repositories it matches. A repository no
 * policy matches loses nothing to retention (unreferenced blobs are still collected).
 */
export interface RetentionPolicy {
  /** repositories are glob patterns (`*` within a path segment, `**` across). */
  repositories: string[];
  /** keepTags: a tag kept by any rule stays; without keepTags every tag stays. */
  keepTags?: KeepTagsRule[];
  /** deleteUntaggedAfterSeconds deletes manifests no kept tag reaches, once this old. */
  deleteUntaggedAfterSeconds?: number;
  /** deleteReferrers deletes referrers whose subject manifest is gone. */
  deleteReferrers?: boolean;
}

/** KeepTagsRule keeps the tags matching `patterns` (all when absent), at most the N most recent. */
export interface KeepTagsRule {
  /** patterns are regular expressions, matched anywhere in the tag. */
  patterns?: string[];
  /** mostRecentlyPushed keeps only this many covered tags, by push time. */
  mostRecentlyPushed?: number;
}

/** NotificationsConfig drives the durable events outbox and its delivery to webhooks. */
export interface NotificationsConfig {
  /** includeReferences adds the descriptors a manifest references to its push events. */
  includeReferences: boolean;
  /** pullFlushMillis is how often buffered pull events are written to the outbox. */
  pullFlushMillis: number;
  /** settleMillis: outbox entries younger than this are not delivered yet (write skew). */
  settleMillis: number;
  /** pollMillis is how often an idle delivery loop looks for new outbox entries. */
  pollMillis: number;
  /** leaseSeconds is how long one replica holds an endpoint's delivery lease unrenewed. */
  leaseSeconds: number;
  /** retentionHours: older outbox entries that every endpoint has passed are deleted. */
  retentionHours: number;
  /** endpoints receive every event (file only: lists have no environment variable). */
  endpoints: EndpointConfig[];
}

/** EventFormat is the wire format of one endpoint. */
export type EventFormat = 'distribution' | 'cloudevents-structured' | 'cloudevents-binary';

/** EndpointConfig is one webhook receiving events. */
export interface EndpointConfig {
  /** name identifies the endpoint in storage keys, metrics and logs. */
  name: string;
  url: string;
  disabled?: boolean;
  format?: EventFormat;
  /** headers are sent with every request. */
  headers?: Record<string, string>;
  /** secret signs each request body (Berth-Signature header), if set. */
  secret?: string;
  /** timeoutSeconds bounds one delivery request. */
  timeoutSeconds?: number;
  /** threshold is the number of consecutive failures that opens the circuit breaker. */
  threshold?: number;
  /** backoffMillis is the first retry delay; it doubles per failure up to maxBackoffMillis. */
  backoffMillis?: number;
  maxBackoffMillis?: number;
  /** maxAttempts, when reached, dead-letters the event. */
  maxAttempts?: number;
  /** maxAgeSeconds, when an event is older, dead-letters it after its next failure. */
  maxAgeSeconds?: number;
  ignore?: { mediaTypes?: string[]; actions?: string[]; repositories?: string[] };
}

/** MetricsConfig controls the Prometheus endpoint on `http.debugAddr`. */
export interface MetricsConfig {
  enabled: boolean;
  /** path serves the exposition on the debug listener. */
  path: string;
  /** repositoryLimit bounds per-repository label values; later repositories count as `_other`. */
  repositoryLimit: number;
  /** repositories (glob patterns) always get their own label value (file only). */
  repositories: string[];
}

export interface ValidationConfig {
  /**
   * allowSparse accepts manifests whose layers or child manifests are not in the
   * repository (for mirrors of single platforms); off, they get MANIFEST_BLOB_UNKNOWN.
   */
  allowSparse: boolean;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface HttpConfig {
  /** addr is host:port to listen on, e.g. `0.0.0.0:5000`. */
  addr: string;
  /** secret signs upload state tokens; replicas sharing a bucket must share it. */
  secret?: string;
  /** workers is the number of server processes (0 = one per core). */
  workers: number;
  /** debugAddr serves /healthz, /readyz and /metrics on a separate port, if set. */
  debugAddr?: string;
  /** shutdownTimeoutSeconds bounds how long in-flight requests may finish on SIGTERM. */
  shutdownTimeoutSeconds: number;
  /** tls serves HTTPS with these files (both re-read on change); unset: plain HTTP. */
  tls?: TlsConfig;
}

/** TlsConfig is the listener's TLS; minimum version TLS 1.2. */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** clientCaFile, when set, requires client certificates signed by these CAs. */
  clientCaFile?: string;
}

export type StorageConfig =
  | { driver: 'filesystem'; filesystem: { root: string } }
  | { driver: 's3'; s3: S3Config }
  | { driver: 'inmemory' };

export interface S3Config {
  /** endpoint is the S3 URL, e.g. `http://minio:9000`. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
  /** pathStyle addresses the bucket in the path (MinIO) instead of the host name. */
  pathStyle: boolean;
  /** prefix is a key prefix inside the bucket (no leading or trailing slash). */
  prefix?: string;
  /** partSizeMiB is the multipart part size, at least 5. */
  partSizeMiB: number;
  /** bufferMiB is the part-buffer memory shared by a process's uploads (default 64). */
  bufferMiB?: number;
  /** redirect answers blob GETs with a 307 to a presigned URL. */
  redirect: boolean;
  /** tls: CA bundle file and verification for https endpoints. */
  tls?: { caFile?: string; insecureSkipVerify?: boolean };
}

/**
 * CacheConfig sizes the in-process cache of immutable metadata and list pages. Writes made
 * through this process take effect at once; other replicas' changes within the TTLs.
 */
export interface CacheConfig {
  /** ttlSeconds: how long a cached blob descriptor or manifest is trusted (0 = off). */
  ttlSeconds: number;
  /** tagTtlSeconds: how long a tag read is kept (0 = never: reads only share a call). */
  tagTtlSeconds: number;
  /** tagsWhenAlone keeps tag reads while this process is alone on the storage (ADR 0012). */
  tagsWhenAlone: boolean;
  /** listTtlSeconds: how stale a cached catalog or tag list page may be (0 = off). */
  listTtlSeconds: number;
  /** maxMiB bounds the cached objects' memory per process. */
  maxMiB: number;
  /** blobDir: a local folder for copies of blob bytes ('' = no blob cache; ADR 0011). */
  blobDir: string;
  /** blobMaxGiB bounds the files kept in blobDir. */
  blobMaxGiB: number;
}

export interface UploadsConfig {
  /** ttlSeconds expires upload sessions; keep it well under MinIO's 24 h multipart purge. */
  ttlSeconds: number;
  /** purgeIntervalSeconds is how often expired sessions are reclaimed (0 = never). */
  purgeIntervalSeconds: number;
}

export interface LimitsConfig {
  /** manifestBytes caps a manifest body (413 above it). */
  manifestBytes: number;
  /** maxListEntries bounds `n` for the catalog, tag and referrers lists. */
  maxListEntries: number;
  /** defaultListEntries is `n` when a list request gives none. */
  defaultListEntries: number;
  /** maxTagsPerPush bounds `?tag=` parameters on one manifest PUT. */
  maxTagsPerPush: number;
  /** headerBytes caps the request line plus headers (431 above it). */
  headerBytes: number;
  /** uploadSessionsPerClient bounds open upload sessions per client address (0 = no bound). */
  uploadSessionsPerClient: number;
  /** rate limits requests per client address with a token bucket (429 when empty). */
  rate: { requestsPerSecond: number; burst: number };
}

/** AuthMode selects how callers authenticate. */
export type AuthMode = 'none' | 'htpasswd' | 'token';

/** AccessAction is what a rule may grant in a repository. */
export type AccessAction = 'pull' | 'push' | 'delete';

/**
 * AuthConfig is authentication and access control. With mode `none` everything is allowed and
 * the other fields are ignored. Lists are file-only (no environment variable).
 */
export interface AuthConfig {
  mode: AuthMode;
  htpasswd: {
    /** path of the htpasswd file (bcrypt entries only); re-read when it changes. */
    path?: string;
    /** realm is named in the `Basic` challenge. */
    realm: string;
  };
  token: TokenAuthConfig;
  /** anonymousPull lists repository globs anyone may pull without credentials. */
  anonymousPull: string[];
  /** groups name sets of users for rules. */
  groups: { name: string; members: string[] }[];
  /** rules grant actions on repository globs to users, groups and robot accounts. */
  rules: AccessRule[];
  /** immutableTags: tags matching `tags` in `repositories` are never moved or deleted. */
  immutableTags: { repositories: string[]; tags: string[] }[];
  /**
   * eventsAccess is who reads the events API (`/v2/_berth/events`, `…/stream`): `pullable`
   * (default) shows each signed-in caller the events of repositories it may pull; `admins`
   * shows everything to `admins` and refuses everyone else (403).
   */
  eventsAccess: 'pullable' | 'admins';
  /** admins are the users and groups with the admin role. */
  admins: { users: string[]; groups: string[] };
}

/** AccessRule grants `actions` on `repositories` to the listed principals (`users: ['*']`: any). */
export interface AccessRule {
  repositories: string[];
  users?: string[];
  groups?: string[];
  /** robots are robot account names without the `robot$` prefix. */
  robots?: string[];
  actions: AccessAction[];
}

export interface TokenAuthConfig {
  /** realm is the token endpoint URL put in challenges; default: this server's /auth/token. */
  realm?: string;
  /** service is the token audience (`aud`) and the `service` challenge parameter. */
  service: string;
  /** issuer is the `iss` claim issued and required. */
  issuer: string;
  /** expiresSeconds is the lifetime of tokens Berth issues. */
  expiresSeconds: number;
  /** signingKeyFile is the PEM private key Berth signs tokens with (generated when unset). */
  signingKeyFile?: string;
  /** external: tokens come from another issuer; Berth serves no token endpoint. */
  external: boolean;
  /** jwksFile holds the external issuer's public keys (JWKS). */
  jwksFile?: string;
  /** rootCertBundle holds the external issuer's certificates (PEM). */
  rootCertBundle?: string;
  /** algorithms allowed in token headers. */
  algorithms: string[];
}
