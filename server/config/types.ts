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
  uploads: UploadsConfig;
  limits: LimitsConfig;
  validation: ValidationConfig;
  log: { level: LogLevel };
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
  /** debugAddr serves /healthz, /readyz (and later /metrics) on a separate port, if set. */
  debugAddr?: string;
  /** shutdownTimeoutSeconds bounds how long in-flight requests may finish on SIGTERM. */
  shutdownTimeoutSeconds: number;
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
  /** redirect answers blob GETs with a 307 to a presigned URL. */
  redirect: boolean;
  /** tls: CA bundle file and verification for https endpoints. */
  tls?: { caFile?: string; insecureSkipVerify?: boolean };
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
}
