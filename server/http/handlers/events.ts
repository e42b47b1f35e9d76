import { PassThrough } from 'node:stream';
import { Errors } from '../../errors.js';
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
 */
export const listEvents: Handler = async (ctx, s) => {
  const ev = events(s);
  const { defaultListEntries, maxListEntries } = s.config.limits;
  const n = Math.max(1, pageSize(ctx, defaultListEntries, maxListEntries));
  const { items, more } = await ev.read(cursorFrom(ctx, query(ctx, 'last')), n);
  const last = items[items.length - 1];
  const cursor = last ? formatPosition(last.position) : query(ctx, 'last');
  if (more && cursor !== undefined)
    ctx.set('Link', linkHeader('/v2/_berth/events', { n, last: cursor }));
  ctx.body = { events: items.map((i) => i.event), ...(cursor !== undefined && { cursor }) };
};

/**
 * streamEvents answers `GET /v2/_berth/events/stream` with Server-Sent Events: each event
 * as `id: <cursor>`, `event: <action>`, `data: <event JSON>`, starting after `last` or the
 * `Last-Event-ID` header (default: only new events). A comment line is sent as heartbeat.
 */
export const streamEvents: Handler = async (ctx, s) => {
  const ev = events(s);
  let cursor = cursorFrom(ctx, query(ctx, 'last') ?? (ctx.get('last-event-id') || undefined));
  if (cursor === undefined && query(ctx, 'from') !== 'start') {
    cursor = await ev.outbox.end(); // only what happens from now on
  }
  const out = new PassThrough();
  const stop = new AbortController();
  ctx.req.once('close', () => stop.abort());
  out.once('close', () => stop.abort());
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
        out.write(
          `id: ${formatPosition(position)}\nevent: ${event.action}\ndata: ${JSON.stringify(event)}\n\n`,
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
