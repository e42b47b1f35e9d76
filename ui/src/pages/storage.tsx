import { repositoryStorage } from '../api.js';
import { formatBytes, useLoad } from '../util.js';

/**
 * RepositoryStorage is one line on a repository's page: the bytes it stores, from
 * `GET /v2/_berth/storage/<name>` (pull, as the tag list). A blob shared with another
 * repository is stored once but counts in each.
 */
export function RepositoryStorage({ repo }: { repo: string }) {
  const [u] = useLoad(() => repositoryStorage(repo), [repo]);
  if (u.state !== 'ok') return null;
  const v = u.value;
  return (
    <p class="muted" data-testid="storage">
      Storage: <strong>{formatBytes(v.bytes)}</strong> in {v.blobs}{' '}
      {v.blobs === 1 ? 'blob' : 'blobs'} and {v.manifests}{' '}
      {v.manifests === 1 ? 'manifest' : 'manifests'} ({formatBytes(v.blobBytes)} of blobs,{' '}
      {formatBytes(v.manifestBytes)} of manifests; a blob shared with another repository counts in
      each)
    </p>
  );
}
