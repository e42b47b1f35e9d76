import { getJson, nextLink } from '../api.js';
import { Show } from '../components.js';
import { href, useLoad, useShownMark } from '../util.js';

/** PAGE is how many repositories one page of the list shows (one catalog request). */
export const PAGE = 100;

function lastOf(link: string | undefined): string | undefined {
  if (link === undefined) return undefined;
  return new URL(link, location.origin).searchParams.get('last') ?? undefined;
}

export function RepositoriesPage({ last }: { last: string | undefined }) {
  const [data] = useLoad(async () => {
    const q = new URLSearchParams({ n: String(PAGE) });
    if (last !== undefined) q.set('last', last);
    const { body, res } = await getJson<{ repositories: string[] }>(`/v2/_catalog?${q}`);
    return { repos: body.repositories ?? [], next: lastOf(nextLink(res)) };
  }, [last]);
  useShownMark('berth:repositories-shown', data.state === 'ok');
  return (
    <section>
      <h1>Repositories</h1>
      <Show data={data}>
        {({ repos, next }) => (
          <>
            {repos.length === 0 ? (
              <p>No repositories you may pull{last === undefined ? '' : ' on this page'}.</p>
            ) : (
              <ul class="list repos" aria-label="Repositories">
                {repos.map((r) => (
                  <li key={r}>
                    <a href={href(['r', r])}>{r}</a>
                  </li>
                ))}
              </ul>
            )}
            <nav class="pager" aria-label="Pages">
              {last !== undefined && <a href={href([])}>First page</a>}
              {next !== undefined && (
                <a href={href([], { last: next })} rel="next">
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
