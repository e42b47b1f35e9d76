import type { Resolved } from './json-schema.js';
import type { HttpConfig } from './http.js';
import type { configSchema } from './schema.js';
import type { StorageConfig } from './storage.js';

export type { AccessAction, AccessRule, AuthConfig, AuthMode, TokenAuthConfig } from './auth.js';
export type { CacheConfig } from './cache.js';
export type { GcConfig, KeepTagsRule, RetentionPolicy } from './gc.js';
export type { HttpConfig, TlsConfig } from './http.js';
export type { LimitsConfig } from './limits.js';
export type { EndpointConfig, EventFormat, NotificationsConfig } from './notifications.js';
export type { MetricsConfig } from './metrics.js';
export type { MirrorsConfig, ResolvedUpstream, UpstreamConfig } from './mirrors.js';
export type { ResolvedSyncJob, SyncJobConfig } from './sync.js';
export type { S3Config, StorageConfig } from './storage.js';
export type { UiConfig } from './ui.js';
export type { UploadsConfig } from './uploads.js';
export type { ValidationConfig } from './validation.js';
export type { LogLevel } from '../util/log.js';

/**
 * BerthConfig is the server's whole configuration: what `berth.yaml` holds after defaults are
 * applied and environment overrides merged, as `configSchema` describes it (with the storage
 * section narrowed to the selected driver). The operator renders this same type into a
 * ConfigMap, so it is the one contract between the two.
 */
export type BerthConfig = Omit<Resolved<typeof configSchema>, 'http' | 'storage'> & {
  http: HttpConfig;
  storage: StorageConfig;
};
