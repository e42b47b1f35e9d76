import { useEffect, useState } from 'preact/hooks';
import { streamEvents, type RegistryEvent } from '../api.js';
import { ErrorView } from '../components.js';
import { formatTime, href, shortDigest } from '../util.js';

/** KEEP is how many events the live view holds (newest first). */
const KEEP = 200;

export function ActivityPage() {
  const [events, setEvents] = useState<RegistryEvent[]>([]);
  const [state, setState] = useState<'connecting' | 'live' | 'closed'>('connecting');
  const [error, setError] = useState<Error | undefined>();
  useEffect(() => {
    const stop = new AbortController();
    setState('live');
    streamEvents((e) => setEvents((old) => [e, ...old].slice(0, KEEP)), stop.signal).then(
      () => setState('closed'),
      (e: Error) => {
        if (stop.signal.aborted) return;
        setState('closed');
        setError(e);
      },
    );
    return () => stop.abort();
  }, []);
  return (
    <section>
      <h1>Activity</h1>
      <p class="muted" role="status">
        {state === 'live'
          ? 'Live: new pushes and deletes appear here as they happen.'
          : state === 'closed'
            ? 'The stream ended; reload to reconnect.'
            : 'Connecting…'}
      </p>
      {error && <ErrorView error={error} />}
      <ol class="list events" aria-label="Events, newest first" aria-live="polite">
        {events.map((e) => (
          <li key={e.id}>
            <span class={`badge action-${e.action}`}>{e.action}</span>{' '}
            {e.target.repository !== undefined ? (
              <a
                href={href(['r', e.target.repository, 'm', e.target.tag ?? e.target.digest ?? ''])}
              >
                {e.target.repository}
                {e.target.tag !== undefined
                  ? `:${e.target.tag}`
                  : e.target.digest
                    ? `@${shortDigest(e.target.digest)}`
                    : ''}
              </a>
            ) : null}{' '}
            <span class="muted">
              {e.actor?.name ? `by ${e.actor.name} · ` : ''}
              {formatTime(e.timestamp)}
            </span>
          </li>
        ))}
      </ol>
    </section>
  );
}
