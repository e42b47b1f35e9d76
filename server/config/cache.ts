import { ADDR_PATTERN } from './http.js';
import type { Resolved } from './json-schema.js';

/** cacheSchema is the `cache` section: the in-process metadata cache and the blob cache. */
export const cacheSchema = {
  description:
    'In-process cache of immutable metadata (blob descriptors, manifests by digest) and of catalog and tag list pages. Writes through this process take effect at once; changes made through another replica are seen within the TTLs.',
  type: 'object',
  additionalProperties: false,
  default: {},
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
    peerListen: {
      description:
        'host:port where this process hears tag invalidations from the other replicas (ADR 0025; port 0 = any free port, one per worker). Set on every replica, tags stay in memory with many replicas: a replica that moves a tag tells every other before answering, and one that cannot reach a peer within a second makes all of them drop their kept tags and waits 3 s. Empty = no listener: tags are kept only while alone (ADR 0012), and no other replica keeps tags while this one runs.',
      type: 'string',
      default: '',
      pattern: `^$|${ADDR_PATTERN}`,
    },
    peerAdvertise: {
      description:
        'host:port the other replicas reach peerListen at (port 0 or none = the bound port). Empty = the peerListen host, or, when it is 0.0.0.0, the first non-loopback IPv4 address (the pod IP).',
      type: 'string',
      default: '',
    },
    listTtlSeconds: {
      description:
        'How stale a cached catalog or tag list page may be when another replica wrote (0 = no list cache). While tags are kept on every replica (peerListen, ADR 0025) or while this process is alone, tag lists and the catalog are kept like tags instead: no TTL, and never stale.',
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
        "A local folder (a pod's emptyDir) for copies of blob bytes (ADR 0011): a pull that reads a blob from storage copies it there on the way (a blob of 64 MiB or more: from storage again once the pull is answered), and later pulls through this process are served from it. Empty = no blob cache. Files not named like its own are left alone.",
      type: 'string',
      default: '',
    },
    blobMaxGiB: {
      description: 'Disk space for the blob cache in GiB; the least recently read files go first.',
      type: 'integer',
      minimum: 1,
      maximum: 16384,
      default: 10,
    },
  },
} as const;

/**
 * CacheConfig sizes the in-process cache of immutable metadata and list pages. Writes made
 * through this process take effect at once; other replicas' changes within the TTLs.
 */
export type CacheConfig = Resolved<typeof cacheSchema>;
