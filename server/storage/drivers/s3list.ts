/**
 * A ListObjectsV2 query and a parser for its answer, for the listings the S3 driver makes
 * (ADR 0010, addendum). minio-js parses the whole document into objects with a general XML parser,
 * 15–60 ms for a page of 1,000 keys on this project's machines; the driver needs only the
 * keys, the common prefixes and the continuation, which a scan of the text finds in about
 * 1 ms.
 */

export interface ListV2Request {
  prefix: string;
  delimiter: string;
  continuationToken: string;
  startAfter: string;
  maxKeys: number;
}

export interface ListV2Result {
  /** keys are the objects' full keys (decoded), in the order storage gave them. */
  keys: string[];
  /** prefixes are the common prefixes (decoded, ending with the delimiter). */
  prefixes: string[];
  isTruncated: boolean;
  nextContinuationToken: string;
}

/** uriEscape encodes a query value the way SigV4 canonicalizes it (RFC 3986 unreserved). */
export function uriEscape(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** listV2Query is the canonical (sorted) query string of one ListObjectsV2 request. */
export function listV2Query(r: ListV2Request): string {
  const q = [
    'list-type=2',
    'encoding-type=url',
    `prefix=${uriEscape(r.prefix)}`,
    `delimiter=${uriEscape(r.delimiter)}`,
    `max-keys=${Math.min(Math.max(1, Math.floor(r.maxKeys)), 1000)}`,
  ];
  if (r.continuationToken) q.push(`continuation-token=${uriEscape(r.continuationToken)}`);
  if (r.startAfter) q.push(`start-after=${uriEscape(r.startAfter)}`);
  return q.sort().join('&');
}

const ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
};

/** xmlText decodes the character and entity references of XML text. */
function xmlText(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, ref: string) => {
    if (ref[0] === '#') {
      const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return ENTITIES[ref] ?? m;
  });
}

/** urlText decodes a value sent with `encoding-type=url` (`+` is a space). */
function urlText(s: string): string {
  return decodeURIComponent(xmlText(s).replace(/\+/g, ' '));
}

/**
 * parseListV2 reads a ListBucketResult. It throws on anything else (an error document, a
 * truncated body), so a listing is never taken for empty.
 */
export function parseListV2(xml: string): ListV2Result {
  const start = xml.indexOf('<ListBucketResult');
  if (start < 0 || !xml.includes('</ListBucketResult>')) {
    throw new Error(`s3: not a ListBucketResult: ${xml.slice(0, 200)}`);
  }
  const keys: string[] = [];
  const prefixes: string[] = [];
  for (const m of xml.matchAll(/<Contents>[^]*?<Key>([^<]*)<\/Key>[^]*?<\/Contents>/g)) {
    keys.push(urlText(m[1]!));
  }
  for (const m of xml.matchAll(
    /<CommonPrefixes>\s*<Prefix>([^<]*)<\/Prefix>\s*<\/CommonPrefixes>/g,
  )) {
    prefixes.push(urlText(m[1]!));
  }
  const truncated = /<IsTruncated>\s*true\s*<\/IsTruncated>/.test(xml);
  const token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1];
  return {
    keys,
    prefixes,
    isTruncated: truncated,
    nextContinuationToken: token === undefined ? '' : xmlText(token),
  };
}
