import { PassThrough } from 'node:stream';
import { Errors } from '../../errors.js';
import type { Event } from '../../events/event.js';
import { formatPosition, parsePosition, type Position } from '../../events/outbox.js';
import type { Ctx, Handler, Services } from '../context.js';
import { linkHeader, pageSize, query } from '../params.js';

/** EXTENSION is how the events API is advertised at /v2/_oci/ext/discover. */
export const EXTENSION = {
  name: '_berth',
  url: 'https://berth.dev/docs/events',
  description: 'Durable registry events: list from a cursor, or stream (Server-Sent Events).',
  endpoints: ['_berth/events', '_berth/events/stream'],
};

const HEARTBEAT_MS = 15_000;

/**
 * shownEvent is `event` as the caller may see it: nothing when it may not see the
 * repository, and without `fromRepository` (a mount's source) when it may not see that one.
 */
function shownEvent(event: Event, visible: (repo: string | undefined) => boolean): Event[] {
  if (!visible(event.target.repository)) return [];
  const from = event.target.fromRepository;
  if (from === undefined || visible(from)) return [event];
  const target = { ...event.target };
  delete target.fromRepository;
  return [{ ...event, target }];
}

function events(s: Services) {
  if (!s.events) throw Errors.notFound({ reason: 'events are not enabled' });
  return s.events;
}

function cursorFrom(ctx: Ctx, raw: string | undefined): Position | undefined {
  if (raw === undefined || raw === '') return undefined;
  const p = parsePosition(raw);
  if (!p) throw Errors.paginationInvalid({ last: raw.slice(0, 100) });
  return p;
}

/**
 * listEvents answers `GET /v2/_berth/events?last=<cursor>&n=<n>` with
 * `{"events":[…], "cursor": "<position of the last one>"}`; a `Link: rel="next"` header is
 * set when more events follow. Without `last`, the list starts at the oldest event kept.
 * Only events of repositories the caller may pull are shown (`auth.eventsAccess`), so a page
 * may hold fewer than `n`.
 */
export const listEvents: Handler = async (ctx, s) => {
  const ev = events(s);
  const visible = s.auth.eventsFilter(ctx.state.identity);
  const { defaultListEntries, maxListEntries } = s.config.limits;
  const n = Math.max(1, pageSize(ctx, defaultListEntries, maxListEntries));
  const { items, more } = await ev.read(cursorFrom(ctx, query(ctx, 'last')), n);
  // The cursor is the position of the last event read, shown or not: an opaque
  // time-and-sequence position that names no repository.
  const last = items[items.length - 1];
  const cursor = last ? formatPosition(last.position) : query(ctx, 'last');
  if (more && cursor !== undefined)
    ctx.set('Link', linkHeader('/v2/_berth/events', { n, last: cursor }));
  const shown = items.flatMap((i) => shownEvent(i.event, visible));
  ctx.body = { events: shown, ...(cursor !== undefined && { cursor }) };
};

/**
 * streamEvents answers `GET /v2/_berth/events/stream` with Server-Sent Events: each event
 * as `id: <cursor>`, `event: <action>`, `data: <event JSON>`, starting after `last` or the
 * `Last-Event-ID` header (default: only new events). A comment line is sent as heartbeat.
 */
export const streamEvents: Handler = async (ctx, s) => {
  const ev = events(s);
  const visible = s.auth.eventsFilter(ctx.state.identity);
  let cursor = cursorFrom(ctx, query(ctx, 'last') ?? (ctx.get('last-event-id') || undefined));
  if (cursor === undefined && query(ctx, 'from') !== 'start') {
    cursor = await ev.outbox.end(); // only what happens from now on
  }
  const out = new PassThrough();
  const gone = new AbortController();
  ctx.req.once('close', () => gone.abort());
  out.once('close', () => gone.abort());
  // The stream also ends when the server drains.
  const stop = { signal: AbortSignal.any([gone.signal, ev.streamsEnded]) };
  ctx.status = 200;
  ctx.type = 'text/event-stream';
  ctx.set('Cache-Control', 'no-cache');
  ctx.set('X-Accel-Buffering', 'no');
  ctx.body = out;
  out.write(': berth events\n\n');
  void (async () => {
    let idle = 0;
    while (!stop.signal.aborted) {
      const { items } = await ev.read(cursor, 100);
      for (const { position, event } of items) {
        cursor = position;
        const [shown] = shownEvent(event, visible);
        if (!shown) continue;
        out.write(
          `id: ${formatPosition(position)}\nevent: ${shown.action}\ndata: ${JSON.stringify(shown)}\n\n`,
        );
      }
      if (items.length > 0) continue;
      await ev.clock.sleep(ev.config.pollMillis, stop.signal);
      idle += ev.config.pollMillis;
      if (idle >= HEARTBEAT_MS) {
        idle = 0;
        out.write(': heartbeat\n\n');
      }
    }
  })()
    .catch((err: unknown) => ctx.state.log.warn({ err }, 'event stream failed'))
    .finally(() => out.end());
};
