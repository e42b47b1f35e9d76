import type { Digest } from '../registry/reference.js';

/**
 * Paths is the one pure mapper from registry concepts to storage keys. No key is
 * built anywhere else. The layout (see docs/storage-layout.md):
 *
 * ```
 * blobs/<alg>/<hh>/<hex>                      global blob descriptor (JSON: size, segments)
 * segments/<upload-id>/<offset>-<nonce>[-<alg>-<hex>]  raw bytes, written once by an upload
 *                                             request (a closing one names the digest it claims)
 * uploads/<upload-id>                         upload session state (JSON)
 * catalog/<name with '/' as ','>              repository marker (the catalog index)
 * repositories/<name>/_layers/<alg>/<hex>     blob linked into the repository (descriptor copy)
 * repositories/<name>/_manifests/<alg>/<hex>  manifest envelope: media type line + exact bytes
 * repositories/<name>/_tags/<tag>             tag → digest
 * repositories/<name>/_tagsof/<alg>-<hex>/<tag>   reverse index: tags of a manifest
 * repositories/<name>/_referrers/<alg>-<hex>/<alg>-<hex>  referrer descriptor (JSON)
 * repositories/<name>/_mirrored/<tag>        when a pulled-through tag was last checked upstream (JSON: digest, checkedAt)
 * repositories/<name>/_deleting/<alg>-<hex>  fence of a conditional manifest delete under way (JSON: at)
 * events/log/<ms13>-<instance>-<seq8>         events outbox: one batch of events (JSON), in key order
 * events/cursors/<endpoint>                   delivery cursor of one endpoint (JSON)
 * events/leases/<endpoint>/<epoch10>          delivery lease of one endpoint (JSON: holder, epoch, expiry)
 * events/dead/<endpoint>/<entry>.<index>      dead-letter record of one undeliverable event (JSON)
 * gc/state                                    garbage collection checkpoint, deferrals, last report (JSON)
 * gc/lease/<epoch10>                          garbage collection run lease (JSON: holder, expiry)
 * sync/<job>/run                              the sync job's current or last run (JSON: id, state, summary)
 * sync/<job>/lease/<epoch10>                  the sync job's run lease (JSON: holder, expiry)
 * peers/<instance>                            one live process on this storage (JSON: host, pid, beat, endpoint)
 * peers-epoch                                 changed when a writer could not reach a peer (ADR 0025)
 * search/<name with '/' as ','>               search document of a repository (JSON: tags, annotations)
 * search-stale/<name>                         repair mark after a missed search update
 * search-pending/<name>@<instance>            a process's queued search update, not yet stored
 * mirror-fetches/<alg>-<hex>                  a replica fetching the blob from an upstream (JSON: holder, token, expiresAt)
 * ```
 *
 * Repository names may contain `/`; their components start with `[a-z0-9]`, so they
 * never collide with the `_`-prefixed folders.
 */
export const Paths = {
  blob: (d: Digest) => `blobs/${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`,
  segmentsOf: (uploadId: string) => `segments/${uploadId}/`,
  /**
   * segment names one run of an upload's bytes; `claim` (the digest a closing request
   * commits the upload as) is part of the name, so a purger can find a descriptor that
   * may name the upload's bytes without any other record.
   */
  segment: (uploadId: string, offset: number, nonce: string, claim?: Digest) =>
    `segments/${uploadId}/${offset}-${nonce}` + (claim ? `-${claim.algorithm}-${claim.hex}` : ''),
  /** segmentClaim reads back the claimed digest of a segment name, if it has one. */
  segmentClaim: (entry: string): string | undefined => {
    const m = /-(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})$/.exec(entry);
    return m ? `${m[1]}:${m[2]}` : undefined;
  },
  uploadsRoot: () => 'uploads/',
  upload: (uploadId: string) => `uploads/${uploadId}`,
  catalogRoot: () => 'catalog/',
  catalogEntry: (name: string) => `catalog/${name.replaceAll('/', ',')}`,
  catalogName: (entry: string) => entry.replaceAll(',', '/'),
  /** isCatalogEntry: a repository marker (`catalog/<name with '/' as ','>`). */
  isCatalogEntry: (key: string) => key.startsWith('catalog/') && key.length > 'catalog/'.length,
  repository: (name: string) => `repositories/${name}/`,
  layer: (name: string, d: Digest) => `repositories/${name}/_layers/${d.algorithm}/${d.hex}`,
  manifest: (name: string, d: Digest) => `repositories/${name}/_manifests/${d.algorithm}/${d.hex}`,
  tagsRoot: (name: string) => `repositories/${name}/_tags/`,
  tag: (name: string, tag: string) => `repositories/${name}/_tags/${tag}`,
  mirroredTag: (name: string, tag: string) => `repositories/${name}/_mirrored/${tag}`,
  /** mirrorFetch marks a blob one replica is fetching from an upstream (ADR 0024 addendum). */
  mirrorFetch: (d: Digest) => `mirror-fetches/${d.algorithm}-${d.hex}`,
  tagsOfRoot: (name: string, d: Digest) => `repositories/${name}/_tagsof/${d.algorithm}-${d.hex}/`,
  tagOf: (name: string, d: Digest, tag: string) =>
    `repositories/${name}/_tagsof/${d.algorithm}-${d.hex}/${tag}`,
  /**
   * deleteFence marks a conditional delete of a manifest under way (retention, immutable
   * tags): writers of the manifest or of a tag pointing at it wait for it (ADR 0016).
   */
  deleteFence: (name: string, d: Digest) =>
    `repositories/${name}/_deleting/${d.algorithm}-${d.hex}`,
  referrersRoot: (name: string, subject: Digest) =>
    `repositories/${name}/_referrers/${subject.algorithm}-${subject.hex}/`,
  referrer: (name: string, subject: Digest, d: Digest) =>
    `repositories/${name}/_referrers/${subject.algorithm}-${subject.hex}/${d.algorithm}-${d.hex}`,
  eventsLogRoot: () => 'events/log/',
  eventsLogEntry: (entry: string) => `events/log/${entry}`,
  eventsCursor: (endpoint: string) => `events/cursors/${endpoint}`,
  eventsLeasesRoot: (endpoint: string) => `events/leases/${endpoint}/`,
  eventsLease: (endpoint: string, epoch: number) =>
    `events/leases/${endpoint}/${String(epoch).padStart(10, '0')}`,
  eventsDeadRoot: (endpoint: string) => `events/dead/${endpoint}/`,
  eventsDead: (endpoint: string, position: string) => `events/dead/${endpoint}/${position}`,
  blobsRoot: () => 'blobs/',
  blobAlgorithmRoot: (alg: string) => `blobs/${alg}/`,
  blobShardRoot: (alg: string, hh: string) => `blobs/${alg}/${hh}/`,
  segmentsRoot: () => 'segments/',
  segmentEntry: (uploadId: string, entry: string) => `segments/${uploadId}/${entry}`,
  /** segmentUpload reads back the upload id of a `segments/<upload-id>/…` key. */
  segmentUpload: (key: string) => key.split('/')[1] ?? '',
  repositoriesRoot: () => 'repositories/',
  layersRoot: (name: string, alg: string) => `repositories/${name}/_layers/${alg}/`,
  manifestsRoot: (name: string, alg: string) => `repositories/${name}/_manifests/${alg}/`,
  gcState: () => 'gc/state',
  gcLeaseRoot: () => 'gc/lease/',
  gcLease: (epoch: number) => `gc/lease/${String(epoch).padStart(10, '0')}`,
  /** syncRun is a sync job's current or last run record (ADR 0027). */
  syncRun: (job: string) => `sync/${job}/run`,
  syncLeaseRoot: (job: string) => `sync/${job}/lease/`,
  syncLease: (job: string, epoch: number) => `sync/${job}/lease/${String(epoch).padStart(10, '0')}`,
  /** searchRoot is the search index: one document per repository, listed in name order. */
  searchRoot: () => 'search/',
  /** searchDoc is a repository's search document (ADR 0023); `/` is stored as `,`. */
  searchDoc: (name: string) => `search/${name.replaceAll('/', ',')}`,
  /** searchEntry is the list entry (below `searchRoot`) of a repository's search document. */
  searchEntry: (name: string) => name.replaceAll('/', ','),
  /** searchName reads back the repository name of a `search/` list entry. */
  searchName: (entry: string) => entry.replaceAll(',', '/'),
  /** searchStaleRoot holds marks of repositories whose search document missed a write. */
  searchStaleRoot: () => 'search-stale/',
  /** searchStale is a repository's mark: a random value while stale, empty once repaired. */
  searchStale: (name: string) => `search-stale/${name.replaceAll('/', ',')}`,
  /** searchPendingRoot holds marks of search updates a process queued but has not stored. */
  searchPendingRoot: () => 'search-pending/',
  /**
   * searchPending is process `instance`'s mark on a repository while an update it queued
   * is not stored yet (ADR 0023 addendum); `@` is in no repository name.
   */
  searchPending: (name: string, instance: string) =>
    `search-pending/${name.replaceAll('/', ',')}@${instance}`,
  /** searchPendingOf reads back the repository and instance of a `search-pending/` entry. */
  searchPendingOf: (entry: string): { repository: string; instance: string } | undefined => {
    const at = entry.lastIndexOf('@');
    if (at <= 0) return undefined;
    return { repository: entry.slice(0, at).replaceAll(',', '/'), instance: entry.slice(at + 1) };
  },
  peersRoot: () => 'peers/',
  /** peer: one process serving this storage (ADR 0012). */
  peer: (instance: string) => `peers/${instance}`,
  /** peersEpoch: changed by a writer that could not tell every peer of a tag move (ADR 0025). */
  peersEpoch: () => 'peers-epoch',
  /**
   * immutable: keys named by the digest of what they describe (blob descriptors, links,
   * manifests), whose content never changes while they exist; what may be cached.
   */
  immutable: (key: string) =>
    key.startsWith('blobs/') ||
    (key.startsWith('repositories/') &&
      (key.includes('/_layers/') || key.includes('/_manifests/'))),
  /**
   * isSegment: an upload's run of bytes (`segments/<upload-id>/<entry>`), written once and
   * never changed; what the blob disk cache may keep.
   */
  isSegment: (key: string) => key.startsWith('segments/') && key.split('/').length === 3,
  /** isTag: a tag object (`repositories/<name>/_tags/<tag>`), which moves in place. */
  isTag: (key: string) => key.startsWith('repositories/') && key.includes('/_tags/'),
  /** isTagsRoot: the folder of a repository's tags (`repositories/<name>/_tags/`). */
  isTagsRoot: (prefix: string) => prefix.startsWith('repositories/') && prefix.endsWith('/_tags/'),
  /** listCached: folders whose listing is served from memory (catalog, tags of a repository). */
  listCached: (prefix: string) => prefix === 'catalog/' || Paths.isTagsRoot(prefix),
  /** digestFromEntry reads back a `<alg>-<hex>` list entry. */
  entryDigest: (entry: string) => entry.replace('-', ':'),
} as const;
