import { useEffect, useState } from 'preact/hooks';
import {
  access as accessOf,
  deleteManifest,
  getConfig,
  getManifest,
  listTags,
  type Access,
} from '../api.js';
import { canDelete, ConfirmButton, Show } from '../components.js';
import {
  formatBytes,
  formatTime,
  href,
  shortDigest,
  useLoad,
  useShownMark,
  type Loaded,
} from '../util.js';
import { RepositoryStorage } from './storage.js';

/** TAGS_PER_PAGE is how many tags one page shows; only those are looked up. */
export const TAGS_PER_PAGE = 50;

interface TagDetail {
  digest: string;
  kind: string;
  size: number;
  created?: string;
  platforms: string[];
}

/** tagDetail looks up what a tag points at: one manifest request, and its config for an image. */
async function tagDetail(repo: string, tag: string): Promise<TagDetail> {
  const m = await getManifest(repo, tag);
  const man = m.manifest;
  if (man.manifests !== undefined) {
    const platforms = man.manifests.flatMap((d) =>
      d.platform
        ? [
            `${d.platform.os}/${d.platform.architecture}${d.platform.variant ? `/${d.platform.variant}` : ''}`,
          ]
        : [],
    );
    const size = m.size + man.manifests.reduce((n, d) => n + d.size, 0);
    return { digest: m.digest, kind: 'index', size, platforms };
  }
  const size =
    m.size + (man.config?.size ?? 0) + (man.layers ?? []).reduce((n, l) => n + l.size, 0);
  const isImage =
    man.config?.mediaType?.includes('image.config') ||
    man.config?.mediaType?.includes('container.image');
  if (!isImage || man.config === undefined)
    return { digest: m.digest, kind: man.artifactType ?? 'artifact', size, platforms: [] };
  const c = await getConfig(repo, man.config.digest);
  const platforms =
    c.os !== undefined && c.architecture !== undefined ? [`${c.os}/${c.architecture}`] : [];
  return { digest: m.digest, kind: 'image', size, created: c.created, platforms };
}

function TagRow({
  repo,
  tag,
  del,
  onDeleted,
}: {
  repo: string;
  tag: string;
  del: { ok: boolean; why: string };
  onDeleted: () => void;
}) {
  const [d] = useLoad(() => tagDetail(repo, tag), [repo, tag]);
  const v = d.state === 'ok' ? d.value : undefined;
  return (
    <tr>
      <th scope="row">
        <a href={href(['r', repo, 'm', tag])}>{tag}</a>
      </th>
      <td class="mono">
        {v ? (
          <a href={href(['r', repo, 'm', v.digest])}>{shortDigest(v.digest)}</a>
        ) : d.state === 'error' ? (
          'error'
        ) : (
          '…'
        )}
      </td>
      <td>{v?.kind ?? ''}</td>
      <td>{v?.platforms.join(', ') ?? ''}</td>
      <td class="num">{v ? formatBytes(v.size) : ''}</td>
      <td>{v ? formatTime(v.created) : ''}</td>
      <td>
        <ConfirmButton
          label={`Delete tag ${tag}`}
          question={`Delete the tag ${repo}:${tag}? The manifest stays, reachable by its digest.`}
          disabled={!del.ok}
          why={del.why}
          onConfirm={async () => {
            await deleteManifest(repo, tag);
            onDeleted();
          }}
        />
      </td>
    </tr>
  );
}

/**
 * useTags lists a repository's tags, showing the first page as soon as it arrives: a first
 * request of two screens of names, then pages of 1,000 while the first screen is already usable.
 */
function useTags(repo: string): [Loaded<string[]>, boolean, () => void] {
  const [s, setS] = useState<Loaded<string[]>>({ state: 'loading' });
  const [complete, setComplete] = useState(false);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    const all: string[] = [];
    setS({ state: 'loading' });
    setComplete(false);
    listTags(
      repo,
      1000,
      (page) => {
        if (!live) return;
        all.push(...page);
        setS({ state: 'ok', value: [...all] });
      },
      TAGS_PER_PAGE * 2,
    ).then(
      () => live && setComplete(true),
      (error: Error) => live && setS({ state: 'error', error }),
    );
    return () => {
      live = false;
    };
  }, [repo, tick]);
  return [s, complete, () => setTick((t) => t + 1)];
}

export function TagsPage({
  repo,
  query,
  me,
}: {
  repo: string;
  query: URLSearchParams;
  me: Access | undefined;
}) {
  const [tags, complete, reload] = useTags(repo);
  useShownMark('berth:tags-shown', tags.state === 'ok');
  const [rights] = useLoad(() => accessOf(repo), [repo, me?.user]);
  const [filter, setFilter] = useState(query.get('filter') ?? '');
  const page = Math.max(1, Number(query.get('page') ?? '1') || 1);
  const actions = rights.state === 'ok' ? rights.value.repository?.actions : undefined;
  const del = canDelete(actions, rights.state === 'ok' ? rights.value.deletes : undefined);
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href([])}>Repositories</a> / <span aria-current="page">{repo}</span>
      </nav>
      <h1>{repo}</h1>
      {/* Asked once the names are listed: adding up a large repository takes the server a while. */}
      {complete && <RepositoryStorage repo={repo} />}
      <Show data={tags}>
        {(all) => {
          const f = filter.trim().toLowerCase();
          const shown = f === '' ? all : all.filter((t) => t.toLowerCase().includes(f));
          const pages = Math.max(1, Math.ceil(shown.length / TAGS_PER_PAGE));
          const p = Math.min(page, pages);
          const slice = shown.slice((p - 1) * TAGS_PER_PAGE, p * TAGS_PER_PAGE);
          return (
            <>
              <div class="toolbar">
                <label for="tag-filter">Filter tags</label>
                <input
                  id="tag-filter"
                  type="search"
                  value={filter}
                  onInput={(e) => {
                    setFilter((e.target as HTMLInputElement).value);
                    if (page !== 1) location.hash = href(['r', repo]);
                  }}
                />
                <span class="muted" role="status" data-testid="tag-count">
                  {shown.length} of {all.length} tags
                </span>
                {!complete && <span class="muted">(listing more…)</span>}
              </div>
              {slice.length === 0 ? (
                <p>No tags.</p>
              ) : (
                <div class="scroll">
                  <table class="tags">
                    <caption class="visually-hidden">
                      Tags of {repo}, page {p} of {pages}
                    </caption>
                    <thead>
                      <tr>
                        <th scope="col">Tag</th>
                        <th scope="col">Digest</th>
                        <th scope="col">Type</th>
                        <th scope="col">Platforms</th>
                        <th scope="col">Size</th>
                        <th scope="col">Created</th>
                        <th scope="col">
                          <span class="visually-hidden">Actions</span>
                        </th>
                      </tr>
                    </thead>
                    <tbody>
                      {slice.map((t) => (
                        <TagRow key={t} repo={repo} tag={t} del={del} onDeleted={reload} />
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
              <nav class="pager" aria-label="Pages">
                {p > 1 && (
                  <a href={href(['r', repo], { page: String(p - 1), filter })}>Previous page</a>
                )}
                <span>
                  Page {p} of {pages}
                </span>
                {p < pages && (
                  <a href={href(['r', repo], { page: String(p + 1), filter })} rel="next">
                    Next page
                  </a>
                )}
              </nav>
            </>
          );
        }}
      </Show>
    </section>
  );
}
