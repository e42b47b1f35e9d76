import type { BerthConfig } from '../config/types.js';
import type { Handler } from './context.js';
import * as access from './handlers/access.js';
import * as blobs from './handlers/blobs.js';
import * as events from './handlers/events.js';
import * as imports from './handlers/import.js';
import * as uploads from './handlers/blob-uploads.js';
import * as listing from './handlers/listing.js';
import * as manifests from './handlers/manifests.js';
import * as search from './handlers/search.js';
import * as sync from './handlers/sync.js';
import * as usage from './handlers/usage.js';

type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** Route is one path pattern with its handlers per method. */
export interface Route {
  name: string;
  pattern: RegExp;
  /** keys name the pattern's capture groups, in order. */
  keys: string[];
  methods: Partial<Record<Method, Handler>>;
}

const NAME = '(.+)';
const SEG = '([^/]+)';

/**
 * routes is the one route table. Read-only mode and disabled deletes remove routes
 * (their requests then get 405 UNSUPPORTED) instead of adding checks to handlers.
 */
export function routes(config: BerthConfig): Route[] {
  const write = !config.readOnly;
  const del = write && config.delete.enabled;
  return [
    ...registryRoutes(),
    ...syncRoutes(write),
    importRoute(write),
    ...repositoryRoutes(write, del),
  ];
}

/** registryRoutes are the routes outside any repository, all read-only. */
function registryRoutes(): Route[] {
  return [
    { name: 'base', pattern: /^\/v2\/?$/, keys: [], methods: { GET: listing.base } },
    { name: 'catalog', pattern: /^\/v2\/_catalog$/, keys: [], methods: { GET: listing.catalog } },
    {
      name: 'discover',
      pattern: /^\/v2\/_oci\/ext\/discover$/,
      keys: [],
      methods: { GET: listing.discover },
    },
    {
      name: 'events',
      pattern: /^\/v2\/_berth\/events$/,
      keys: [],
      methods: { GET: events.listEvents },
    },
    {
      name: 'events-stream',
      pattern: /^\/v2\/_berth\/events\/stream$/,
      keys: [],
      methods: { GET: events.streamEvents },
    },
    {
      name: 'access',
      pattern: /^\/v2\/_berth\/access$/,
      keys: [],
      methods: { GET: access.access },
    },
    {
      name: 'search',
      pattern: /^\/v2\/_berth\/search$/,
      keys: [],
      methods: { GET: search.search },
    },
    {
      name: 'storage',
      pattern: new RegExp(`^/v2/_berth/storage/${NAME}$`),
      keys: ['name'],
      methods: { GET: usage.storage },
    },
    { name: 'gc', pattern: /^\/v2\/_berth\/gc$/, keys: [], methods: { GET: usage.gcReport } },
  ];
}

/** syncRoutes are the sync jobs' status and, when `write`, their on-demand runs (ADR 0027). */
function syncRoutes(write: boolean): Route[] {
  return [
    { name: 'sync', pattern: /^\/v2\/_berth\/sync$/, keys: [], methods: { GET: sync.listSync } },
    {
      name: 'sync-job',
      pattern: new RegExp(`^/v2/_berth/sync/${SEG}$`),
      keys: ['job'],
      methods: { GET: sync.syncStatus, ...(write && { POST: sync.startSync }) },
    },
  ];
}

/** importRoute is the server-side import (docs/copy.md); `write` adds its POST. */
function importRoute(write: boolean): Route {
  return {
    name: 'import',
    pattern: /^\/v2\/_berth\/import$/,
    keys: [],
    methods: { ...(write && { POST: imports.importArchive }) },
  };
}

/**
 * repositoryRoutes are the routes under a repository name; `write` adds the push routes and
 * `del` the delete routes.
 */
function repositoryRoutes(write: boolean, del: boolean): Route[] {
  return [
    {
      name: 'tags',
      pattern: new RegExp(`^/v2/${NAME}/tags/list$`),
      keys: ['name'],
      methods: { GET: listing.listTags },
    },
    {
      name: 'manifest',
      pattern: new RegExp(`^/v2/${NAME}/manifests/${SEG}$`),
      keys: ['name', 'reference'],
      methods: {
        GET: manifests.getManifest,
        HEAD: manifests.headManifest,
        ...(write && { PUT: manifests.putManifest }),
        ...(del && { DELETE: manifests.deleteManifest }),
      },
    },
    {
      name: 'blob-upload',
      pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/?$`),
      keys: ['name'],
      methods: { ...(write && { POST: uploads.startUpload }) },
    },
    {
      name: 'blob-upload-chunk',
      pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/${SEG}$`),
      keys: ['name', 'id'],
      methods: {
        ...(write && {
          GET: uploads.uploadStatus,
          PATCH: uploads.patchUpload,
          PUT: uploads.completeUpload,
          DELETE: uploads.cancelUpload,
        }),
      },
    },
    {
      name: 'blob',
      pattern: new RegExp(`^/v2/${NAME}/blobs/${SEG}$`),
      keys: ['name', 'digest'],
      methods: {
        GET: blobs.getBlob,
        HEAD: blobs.headBlob,
        ...(del && { DELETE: blobs.deleteBlob }),
      },
    },
    {
      name: 'referrers',
      pattern: new RegExp(`^/v2/${NAME}/referrers/${SEG}$`),
      keys: ['name', 'digest'],
      methods: { GET: listing.listReferrers },
    },
  ];
}

export interface Match {
  route: Route;
  params: Record<string, string>;
}

/** match finds the first route whose pattern matches `path`. */
export function match(table: Route[], path: string): Match | undefined {
  for (const route of table) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    route.keys.forEach((k, i) => (params[k] = m[i + 1]!));
    return { route, params };
  }
  return undefined;
}
