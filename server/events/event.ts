import { createHmac, timingSafeEqual } from 'node:crypto';
import type { EventFormat } from '../config/types.js';

/** Action is distribution's event action set. */
export type Action = 'push' | 'pull' | 'mount' | 'delete';

/**
 * Target is what an event is about: distribution's target (descriptor fields plus
 * `length`, `repository`, `fromRepository`, `url`, `tag`, `references`). A manifest delete
 * carries only `digest` and `repository`; a tag delete `repository` and `tag`; a
 * repository delete only `repository`.
 */
export interface Target {
  mediaType?: string;
  digest?: string;
  size?: number;
  /** length duplicates size (distribution's legacy field). */
  length?: number;
  repository: string;
  fromRepository?: string;
  url?: string;
  tag?: string;
  references?: { mediaType: string; digest: string; size: number }[];
}

/** Event has exactly distribution's fields, so existing listeners work unchanged. */
export interface Event {
  id: string;
  /** timestamp is RFC 3339 in UTC. */
  timestamp: string;
  action: Action;
  target: Target;
  request: { id: string; addr: string; host: string; method: string; useragent: string };
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

/** DISTRIBUTION_MEDIA_TYPE is the envelope media type sent by default. */
export const DISTRIBUTION_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';
export const CLOUDEVENTS_MEDIA_TYPE = 'application/cloudevents+json';
/** SIGNATURE_HEADER carries `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = 'Berth-Signature';

/** kind names what the event is about, for CloudEvents types. */
export function kind(e: Event): 'manifest' | 'blob' | 'tag' | 'repository' {
  if (e.target.digest === undefined) return e.target.tag !== undefined ? 'tag' : 'repository';
  if (e.action === 'delete' && e.target.mediaType === undefined) return 'manifest';
  const mt = e.target.mediaType ?? '';
  return /manifest|index|list/.test(mt) ? 'manifest' : 'blob';
}

/** cloudEventType is `dev.berth.<kind>.<action>`, e.g. `dev.berth.manifest.push`. */
export function cloudEventType(e: Event): string {
  return `dev.berth.${kind(e)}.${e.action}`;
}

function subject(e: Event): string {
  const t = e.target;
  if (t.tag !== undefined) return `${t.repository}:${t.tag}`;
  if (t.digest !== undefined) return `${t.repository}@${t.digest}`;
  return t.repository;
}

/** Encoded is one HTTP request's body and the headers that describe it. */
export interface Encoded {
  body: Buffer;
  headers: Record<string, string>;
}

/**
 * encode renders one event in an endpoint's format:
 * - `distribution`: `{"events":[event]}` (3-space indent, as distribution sends), media
 *   type {@link DISTRIBUTION_MEDIA_TYPE};
 * - `cloudevents-structured`: a CloudEvents 1.0 JSON object with the event as `data`;
 * - `cloudevents-binary`: the event as the body, its attributes as `ce-*` headers.
 */
export function encode(e: Event, format: EventFormat): Encoded {
  const source = `//${e.source.addr}/berth`;
  switch (format) {
    case 'distribution':
      return {
        body: Buffer.from(JSON.stringify({ events: [e] }, null, 3)),
        headers: { 'content-type': DISTRIBUTION_MEDIA_TYPE },
      };
    case 'cloudevents-structured':
      return {
        body: Buffer.from(
          JSON.stringify({
            specversion: '1.0',
            id: e.id,
            source,
            type: cloudEventType(e),
            subject: subject(e),
            time: e.timestamp,
            datacontenttype: 'application/json',
            data: e,
          }),
        ),
        headers: { 'content-type': `${CLOUDEVENTS_MEDIA_TYPE}; charset=utf-8` },
      };
    case 'cloudevents-binary':
      return {
        body: Buffer.from(JSON.stringify(e)),
        headers: {
          'content-type': 'application/json',
          'ce-specversion': '1.0',
          'ce-id': e.id,
          'ce-source': source,
          'ce-type': cloudEventType(e),
          'ce-subject': subject(e),
          'ce-time': e.timestamp,
        },
      };
  }
}

/** sign returns the {@link SIGNATURE_HEADER} value for `body` at `unixSeconds`. */
export function sign(secret: string, unixSeconds: number, body: Buffer): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.`).update(body).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * verifySignature checks a {@link SIGNATURE_HEADER} value: the MAC must match and the
 * timestamp be within `toleranceSeconds` of `nowSeconds` (replay protection for receivers).
 */
export function verifySignature(
  secret: string,
  header: string,
  body: Buffer,
  nowSeconds: number,
  toleranceSeconds = 300,
): boolean {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return false;
  const t = Number(m[1]);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const want = Buffer.from(sign(secret, t, body).split('v1=')[1]!, 'hex');
  return timingSafeEqual(want, Buffer.from(m[2]!, 'hex'));
}
