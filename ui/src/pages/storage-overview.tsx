import { getJson, nextLink, repositoryStorage } from '../api.js';
import { Show } from '../components.js';
import { formatBytes, href, useLoad } from '../util.js';

/** STORAGE_PAGE is how many repositories one page of the storage overview measures. */
export const STORAGE_PAGE = 25;

function lastOf(link: string | undefined): string | undefined {
  if (link === undefined) return undefined;
  return new URL(link, location.origin).searchParams.get('last') ?? undefined;
}

function StorageRow({ repo }: { repo: string }) {
  const [u] = useLoad(() => repositoryStorage(repo), [repo]);
  const v = u.state === 'ok' ? u.value : undefined;
  const cell = (n: number | undefined, bytes = false) =>
    v ? (bytes ? formatBytes(n) : String(n)) : u.state === 'error' ? 'error' : '…';
  return (
    <tr>
      <th scope="row">
        <a href={href(['r', repo])}>{repo}</a>
      </th>
      <td class="num">{cell(v?.tags)}</td>
      <td class="num">{cell(v?.manifests)}</td>
      <td class="num">{cell(v?.blobs)}</td>
      <td class="num">{cell(v?.bytes, true)}</td>
    </tr>
  );
}

/**
 * StorageOverviewPage lists the repositories the caller may pull, a catalog page at a time,
 * with the storage each uses (`GET /v2/_berth/storage/<name>`, one request per shown row).
 */
export function StorageOverviewPage({ last }: { last: string | undefined }) {
  const [data] = useLoad(async () => {
    const q = new URLSearchParams({ n: String(STORAGE_PAGE) });
    if (last !== undefined) q.set('last', last);
    const { body, res } = await getJson<{ repositories: string[] }>(`/v2/_catalog?${q.toString()}`);
    return { repos: body.repositories ?? [], next: lastOf(nextLink(res)) };
  }, [last]);
  return (
    <section>
      <h1>Storage</h1>
      <p class="muted">
        What each repository stores: its manifests and the blobs it links. A blob shared by several
        repositories is stored once but counts in each.
      </p>
      <Show data={data}>
        {({ repos, next }) => (
          <>
            {repos.length === 0 ? (
              <p>No repositories you may pull.</p>
            ) : (
              <div class="scroll">
                <table>
                  <caption class="visually-hidden">Storage per repository</caption>
                  <thead>
                    <tr>
                      <th scope="col">Repository</th>
                      <th scope="col">Tags</th>
                      <th scope="col">Manifests</th>
                      <th scope="col">Blobs</th>
                      <th scope="col">Stored</th>
                    </tr>
                  </thead>
                  <tbody>
                    {repos.map((r) => (
                      <StorageRow key={r} repo={r} />
                    ))}
                  </tbody>
                </table>
              </div>
            )}
            <nav class="pager" aria-label="Pages">
              {last !== undefined && <a href={href(['storage'])}>First page</a>}
              {next !== undefined && (
                <a href={href(['storage'], { last: next })} rel="next">
                  Next page
                </a>
              )}
            </nav>
          </>
        )}
      </Show>
    </section>
  );
}
