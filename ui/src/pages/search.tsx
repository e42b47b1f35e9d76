import { getJson, nextLink, type SearchResult } from '../api.js';
import { Show } from '../components.js';
import { href, useLoad } from '../util.js';

export function SearchPage({ q, last }: { q: string; last: string | undefined }) {
  const [data] = useLoad(async () => {
    if (q === '') return { results: [] as SearchResult[], next: undefined };
    const p = new URLSearchParams({ q, n: '50' });
    if (last !== undefined) p.set('last', last);
    const { body, res } = await getJson<{ results: SearchResult[] }>(`/v2/_berth/search?${p}`);
    const link = nextLink(res);
    const next =
      link === undefined
        ? undefined
        : (new URL(link, location.origin).searchParams.get('last') ?? undefined);
    return { results: body.results, next };
  }, [q, last]);
  return (
    <section>
      <h1>Search: “{q}”</h1>
      <Show data={data}>
        {({ results, next }) => (
          <>
            {results.length === 0 ? (
              <p>Nothing you may pull matches.</p>
            ) : (
              <ul class="list results" aria-label="Search results">
                {results.map((r) => (
                  <li key={r.repository}>
                    <a href={href(['r', r.repository])} class="name">
                      {r.repository}
                    </a>{' '}
                    <span class="badge">matched {r.matched.join(', ')}</span>
                    {r.title !== undefined && <div class="title">{r.title}</div>}
                    {r.description !== undefined && <div class="muted">{r.description}</div>}
                    {r.tags.length > 0 && (
                      <div class="tags">
                        {r.tags.slice(0, 20).map((t) => (
                          <a key={t} class="tag" href={href(['r', r.repository, 'm', t])}>
                            {t}
                          </a>
                        ))}
                      </div>
                    )}
                  </li>
                ))}
              </ul>
            )}
            {next !== undefined && (
              <nav class="pager" aria-label="Pages">
                <a href={href(['search'], { q, last: next })}>Next page</a>
              </nav>
            )}
          </>
        )}
      </Show>
    </section>
  );
}
