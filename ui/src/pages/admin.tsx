import { gcReport, type Access, type GcView } from '../api.js';
import { Show } from '../components.js';
import { formatBytes, formatTime, href, shortDigest, useLoad } from '../util.js';

function seconds(n: number): string {
  if (n % 86400 === 0) return `${n / 86400} d`;
  if (n % 3600 === 0) return `${n / 3600} h`;
  if (n % 60 === 0) return `${n / 60} min`;
  return `${n} s`;
}

function Schedule({ s }: { s: GcView['schedule'] }) {
  return (
    <section aria-labelledby="gc-schedule-h">
      <h2 id="gc-schedule-h">Schedule</h2>
      <dl class="facts">
        <dt>Scheduled runs</dt>
        <dd>
          {s.enabled
            ? `every ${seconds(s.intervalSeconds)}${s.dryRun ? ', dry runs only' : ''}`
            : 'off (runs only from the command line: berth gc)'}
        </dd>
        <dt>Grace window</dt>
        <dd>nothing written in the last {seconds(s.graceSeconds)} is deleted</dd>
      </dl>
    </section>
  );
}

function Policies({ policies }: { policies: GcView['policies'] }) {
  return (
    <section aria-labelledby="gc-policies-h">
      <h2 id="gc-policies-h">Retention policies in effect</h2>
      {policies.length === 0 ? (
        <p>No retention policy: garbage collection deletes only what nothing references.</p>
      ) : (
        <ol class="list" aria-label="Retention policies, first match applies">
          {policies.map((p, i) => (
            <li key={i}>
              <strong class="mono">{p.repositories.join(', ')}</strong>
              <ul>
                {(p.keepTags ?? []).map((k, j) => (
                  <li key={j}>
                    keep{' '}
                    {k.mostRecentlyPushed !== undefined
                      ? `the ${k.mostRecentlyPushed} most recently pushed`
                      : 'all'}{' '}
                    tags{k.patterns ? ` matching ${k.patterns.join(' or ')}` : ''}
                  </li>
                ))}
                {p.keepTags === undefined && <li>keep every tag</li>}
                {p.deleteUntaggedAfterSeconds !== undefined && (
                  <li>delete untagged manifests after {seconds(p.deleteUntaggedAfterSeconds)}</li>
                )}
                {p.deleteReferrers && <li>delete referrers whose subject is gone</li>}
              </ul>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function what(i: NonNullable<GcView['report']>['deleted'][number]): string {
  if (i.kind === 'tag') return `${i.repo}:${i.tag}`;
  if (i.repo !== undefined && i.digest !== undefined) return `${i.repo}@${shortDigest(i.digest)}`;
  if (i.digest !== undefined) return shortDigest(i.digest);
  return i.key;
}

function DryRun({ r }: { r: NonNullable<GcView['report']> }) {
  const counts = Object.entries(r.counts).filter(([, n]) => n > 0);
  return (
    <section aria-labelledby="gc-dry-h">
      <h2 id="gc-dry-h">Dry run</h2>
      <p data-testid="gc-summary">
        A run now would delete{' '}
        {counts.length === 0
          ? 'nothing'
          : counts.map(([k, n]) => `${n} ${k}${n === 1 ? '' : 's'}`).join(', ')}{' '}
        and free <strong>{formatBytes(r.bytesFreed)}</strong>.{' '}
        <span class="muted">
          Read {formatTime(r.finishedAt)}; only what was written before {formatTime(r.cutoff)} was
          considered.
        </span>
      </p>
      {r.deleted.length > 0 && (
        <div class="scroll">
          <table>
            <caption class="visually-hidden">What a run would delete</caption>
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">What</th>
                <th scope="col">Reason</th>
                <th scope="col">Size</th>
              </tr>
            </thead>
            <tbody>
              {r.deleted.map((i) => (
                <tr key={i.key}>
                  <td>{i.kind}</td>
                  <td class="mono">
                    {i.repo !== undefined && (i.tag ?? i.digest) !== undefined ? (
                      <a href={href(['r', i.repo, 'm', (i.tag ?? i.digest)!])}>{what(i)}</a>
                    ) : (
                      what(i)
                    )}
                  </td>
                  <td>{i.reason}</td>
                  <td class="num">{formatBytes(i.bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {r.truncated && <p class="muted">Only the first {r.deleted.length} are listed.</p>}
    </section>
  );
}

/**
 * AdminPage is for admins (`auth.admins`): garbage collection settings, the retention
 * policies in effect and a fresh dry run, all read-only (`GET /v2/_berth/gc`). The API
 * refuses anyone else, whatever this page shows.
 */
export function AdminPage({ me }: { me: Access | undefined }) {
  const [gc, again] = useLoad(() => gcReport(), [me?.user]);
  return (
    <section>
      <h1>Garbage collection</h1>
      <p class="muted">
        Read-only: this page deletes nothing. Runs are started by the schedule or{' '}
        <code>berth gc</code>.
      </p>
      <Show data={gc}>
        {(v) => (
          <>
            <Schedule s={v.schedule} />
            <Policies policies={v.policies} />
            {v.report ? <DryRun r={v.report} /> : <p>A run is under way; try again shortly.</p>}
            <button type="button" onClick={again}>
              Dry-run again
            </button>
          </>
        )}
      </Show>
    </section>
  );
}
