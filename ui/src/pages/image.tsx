import {
  access as accessOf,
  deleteManifest,
  getConfig,
  getManifest,
  referrers,
  type Access,
  type Descriptor,
  type Fetched,
  type ImageConfig,
} from '../api.js';
import { canDelete, ConfirmButton, CopyButton, Show } from '../components.js';
import { formatBytes, formatTime, href, shortDigest, useLoad } from '../util.js';

function PullCommands({
  repo,
  reference,
  digest,
}: {
  repo: string;
  reference: string;
  digest: string;
}) {
  const host = location.host;
  const byTag = reference.includes(':') ? undefined : `${host}/${repo}:${reference}`;
  const byDigest = `${host}/${repo}@${digest}`;
  const file = repo.split('/').pop() ?? 'image';
  const lines: [string, string][] = [];
  for (const [what, ref] of [
    ['tag', byTag],
    ['digest', byDigest],
  ] as const) {
    if (ref === undefined) continue;
    lines.push([`docker, by ${what}`, `docker pull ${ref}`]);
    lines.push([`podman, by ${what}`, `podman pull ${ref}`]);
    lines.push([`crane, by ${what}`, `crane pull ${ref} ${file}.tar`]);
  }
  return (
    <section aria-labelledby="pull-h">
      <h2 id="pull-h">Pull</h2>
      <ul class="commands">
        {lines.map(([label, cmd]) => (
          <li key={cmd}>
            <span class="muted">{label}</span>
            <code>{cmd}</code>
            <CopyButton text={cmd} label={`${label} command`} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function ConfigView({ repo, digest }: { repo: string; digest: string }) {
  const [c] = useLoad(() => getConfig(repo, digest), [repo, digest]);
  return (
    <section aria-labelledby="config-h">
      <h2 id="config-h">Config</h2>
      <Show data={c}>{(cfg: ImageConfig) => <ConfigBody cfg={cfg} />}</Show>
    </section>
  );
}

function ConfigBody({ cfg }: { cfg: ImageConfig }) {
  const labels = Object.entries(cfg.config?.Labels ?? {});
  return (
    <>
      <dl class="facts">
        <dt>Platform</dt>
        <dd>
          {cfg.os ?? '?'}/{cfg.architecture ?? '?'}
        </dd>
        <dt>Created</dt>
        <dd>{formatTime(cfg.created)}</dd>
        <dt>Entrypoint</dt>
        <dd class="mono">{cfg.config?.Entrypoint?.join(' ') ?? '—'}</dd>
        <dt>Command</dt>
        <dd class="mono">{cfg.config?.Cmd?.join(' ') ?? '—'}</dd>
        {cfg.config?.WorkingDir && (
          <>
            <dt>Working directory</dt>
            <dd class="mono">{cfg.config.WorkingDir}</dd>
          </>
        )}
        {cfg.config?.User && (
          <>
            <dt>User</dt>
            <dd class="mono">{cfg.config.User}</dd>
          </>
        )}
      </dl>
      <h3>Environment</h3>
      {(cfg.config?.Env ?? []).length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ul class="mono plain">
          {cfg.config!.Env!.map((e) => (
            <li key={e}>{e}</li>
          ))}
        </ul>
      )}
      <h3>Labels</h3>
      {labels.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <dl class="facts">
          {labels.map(([k, v]) => (
            <>
              <dt class="mono">{k}</dt>
              <dd>{v}</dd>
            </>
          ))}
        </dl>
      )}
      <h3>History</h3>
      {(cfg.history ?? []).length === 0 ? (
        <p class="muted">None recorded.</p>
      ) : (
        <ol class="history">
          {cfg.history!.map((h, i) => (
            <li key={i}>
              <span class="muted">{formatTime(h.created)}</span>{' '}
              <code>{h.created_by ?? h.comment ?? ''}</code>
              {h.empty_layer ? <span class="badge">no layer</span> : null}
            </li>
          ))}
        </ol>
      )}
    </>
  );
}

function Layers({ layers }: { layers: Descriptor[] }) {
  return (
    <section aria-labelledby="layers-h">
      <h2 id="layers-h">Layers</h2>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Digest</th>
              <th scope="col">Media type</th>
              <th scope="col">Size</th>
            </tr>
          </thead>
          <tbody>
            {layers.map((l, i) => (
              <tr key={`${i}-${l.digest}`}>
                <td>{i + 1}</td>
                <td class="mono" title={l.digest}>
                  {shortDigest(l.digest)}
                </td>
                <td>{l.mediaType}</td>
                <td class="num">{formatBytes(l.size)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

/** PlatformOf names a child of an index: its descriptor's platform, else its config's. */
function PlatformOf({ repo, d }: { repo: string; d: Descriptor }) {
  const p = d.platform;
  const [c] = useLoad(async () => {
    if (p) return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
    const m = await getManifest(repo, d.digest);
    const cfg = m.manifest.config;
    if (m.manifest.artifactType || !cfg || !cfg.mediaType.includes('config'))
      return m.manifest.artifactType ?? d.mediaType;
    const conf = await getConfig(repo, cfg.digest);
    return `${conf.os ?? '?'}/${conf.architecture ?? '?'}`;
  }, [repo, d.digest]);
  return <>{c.state === 'ok' ? c.value : shortDigest(d.digest)}</>;
}

function Platforms({ repo, manifests }: { repo: string; manifests: Descriptor[] }) {
  return (
    <section aria-labelledby="platforms-h">
      <h2 id="platforms-h">Platforms</h2>
      <ul class="list platforms">
        {manifests.map((d) => {
          return (
            <li key={d.digest}>
              <a href={href(['r', repo, 'm', d.digest])}>
                <PlatformOf repo={repo} d={d} />
              </a>{' '}
              <span class="mono muted">{shortDigest(d.digest)}</span>{' '}
              <span class="muted">{formatBytes(d.size)} manifest</span>
            </li>
          );
        })}
      </ul>
    </section>
  );
}

function ReferrerTree({ repo, digest, depth }: { repo: string; digest: string; depth: number }) {
  const [r] = useLoad(() => referrers(repo, digest), [repo, digest]);
  return (
    <Show data={r}>
      {(list) => {
        if (list.length === 0)
          return depth === 0 ? <p class="muted">Nothing is attached to this manifest.</p> : null;
        const byType = new Map<string, Descriptor[]>();
        for (const d of list) {
          const t = d.artifactType ?? 'unknown';
          byType.set(t, [...(byType.get(t) ?? []), d]);
        }
        return (
          <ul class="tree">
            {[...byType].map(([type, ds]) => (
              <li key={type}>
                <span class="badge">{type}</span>
                <ul>
                  {ds.map((d) => (
                    <li key={d.digest}>
                      <a href={href(['r', repo, 'm', d.digest])}>{shortDigest(d.digest)}</a>{' '}
                      <span class="muted">
                        {formatBytes(d.size)}
                        {d.annotations?.['org.opencontainers.image.created']
                          ? ` · ${formatTime(d.annotations['org.opencontainers.image.created'])}`
                          : ''}
                      </span>
                      {depth < 3 && (
                        <ReferrerTree repo={repo} digest={d.digest} depth={depth + 1} />
                      )}
                    </li>
                  ))}
                </ul>
              </li>
            ))}
          </ul>
        );
      }}
    </Show>
  );
}

function Summary({ f, repo }: { f: Fetched; repo: string }) {
  const m = f.manifest;
  const compressed = (m.layers ?? []).reduce((n, l) => n + l.size, 0);
  const total =
    f.size +
    (m.config?.size ?? 0) +
    compressed +
    (m.manifests ?? []).reduce((n, d) => n + d.size, 0);
  return (
    <dl class="facts">
      <dt>Digest</dt>
      <dd class="mono">
        {f.digest} <CopyButton text={f.digest} label="digest" />
      </dd>
      <dt>Media type</dt>
      <dd>{f.mediaType}</dd>
      {m.artifactType && (
        <>
          <dt>Artifact type</dt>
          <dd>{m.artifactType}</dd>
        </>
      )}
      {m.layers && (
        <>
          <dt>Compressed size (layers)</dt>
          <dd>{formatBytes(compressed)}</dd>
        </>
      )}
      <dt>Total size</dt>
      <dd>{formatBytes(total)}</dd>
      {m.subject && (
        <>
          <dt>Attached to</dt>
          <dd>
            <a href={href(['r', repo, 'm', m.subject.digest])}>{shortDigest(m.subject.digest)}</a>
          </dd>
        </>
      )}
    </dl>
  );
}

export function ImagePage({
  repo,
  reference,
  me,
}: {
  repo: string;
  reference: string;
  me: Access | undefined;
}) {
  const [data] = useLoad(() => getManifest(repo, reference), [repo, reference]);
  const [rights] = useLoad(() => accessOf(repo), [repo, me?.user]);
  const del = canDelete(
    rights.state === 'ok' ? rights.value.repository?.actions : undefined,
    rights.state === 'ok' ? rights.value.deletes : undefined,
  );
  const kind = (f: Fetched) =>
    f.manifest.manifests ? 'Index' : f.manifest.artifactType ? 'Artifact' : 'Image';
  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href([])}>Repositories</a> / <a href={href(['r', repo])}>{repo}</a> /{' '}
        <span aria-current="page">
          {reference.startsWith('sha256:') ? shortDigest(reference) : reference}
        </span>
      </nav>
      <Show data={data}>
        {(f) => (
          <>
            <h1>
              {kind(f)} {repo}
              {reference.includes(':') ? '@' : ':'}
              {reference}
            </h1>
            <div class="toolbar">
              <ConfirmButton
                label={`Delete manifest ${shortDigest(f.digest)}`}
                question={`Delete the manifest ${f.digest} from ${repo}, with every tag that points at it?`}
                disabled={!del.ok}
                why={del.why}
                onConfirm={async () => {
                  await deleteManifest(repo, f.digest);
                  location.hash = href(['r', repo]);
                }}
              />
            </div>
            <Summary f={f} repo={repo} />
            <PullCommands repo={repo} reference={reference} digest={f.digest} />
            {f.manifest.manifests && <Platforms repo={repo} manifests={f.manifest.manifests} />}
            {f.manifest.layers && <Layers layers={f.manifest.layers} />}
            {f.manifest.config &&
              !f.manifest.artifactType &&
              f.manifest.config.mediaType.includes('config') &&
              f.manifest.config.size < 1_000_000 && (
                <ConfigView repo={repo} digest={f.manifest.config.digest} />
              )}
            <section aria-labelledby="referrers-h">
              <h2 id="referrers-h">Referrers</h2>
              <ReferrerTree repo={repo} digest={f.digest} depth={0} />
            </section>
            <section aria-labelledby="raw-h">
              <h2 id="raw-h">
                Raw manifest <CopyButton text={f.raw} label="raw manifest" />
              </h2>
              <pre class="raw" tabIndex={0} aria-label="Raw manifest">
                {JSON.stringify(f.manifest, null, 2)}
              </pre>
            </section>
          </>
        )}
      </Show>
    </section>
  );
}
