import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { listV2Query, parseListV2 } from '../../../../server/storage/drivers/s3list.js';

/** queryEscape encodes as MinIO does for encoding-type=url: a space is `+`, a `+` is %2B. */
const queryEscape = (s: string) =>
  encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');

function document(opts: {
  keys: string[];
  prefixes?: string[];
  truncated?: boolean;
  token?: string;
}): string {
  const contents = opts.keys
    .map(
      (k) =>
        `<Contents><Key>${queryEscape(k)}</Key><LastModified>2026-12-03T10:00:00.000Z</LastModified><ETag>&#34;0123456789abcdef0123456789abcdef&#34;</ETag><Size>71</Size><Owner><ID>02d6176db174dc93cb1b899f7c6078f08654445fe8cf1b6ce98d8855f66bdbf4</ID><DisplayName>minio</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>`,
    )
    .join('');
  const prefixes = (opts.prefixes ?? [])
    .map((p) => `<CommonPrefixes><Prefix>${queryEscape(p)}</Prefix></CommonPrefixes>`)
    .join('');
  const token =
    opts.token === undefined ? '' : `<NextContinuationToken>${opts.token}</NextContinuationToken>`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><Prefix>repositories%2Fapp%2F</Prefix><StartAfter></StartAfter><KeyCount>${opts.keys.length}</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>%2F</Delimiter><IsTruncated>${opts.truncated ? 'true' : 'false'}</IsTruncated><EncodingType>url</EncodingType>${token}${contents}${prefixes}</ListBucketResult>`;
}

describe('ListObjectsV2 parsing', () => {
  it('GIVEN a page with keys, common prefixes and a continuation WHEN parsed THEN each is decoded, and the request prefix is not taken for a common prefix', () => {
    const keys = [
      'repositories/app/_tags/latest',
      'repositories/app/_tags/v1.0+build',
      'repositories/app/_tags/with space',
      'repositories/app/_tags/a&b<c>"d\'',
      'repositories/app/_tags/ünïcødé-🚢',
      'repositories/app/_tags/100%',
    ];
    const r = parseListV2(
      document({
        keys,
        prefixes: ['repositories/app/_layers/', 'repositories/app/a b/'],
        truncated: true,
        token: 'MTAwMA&amp;==',
      }),
    );
    expect(r).toEqual({
      keys,
      prefixes: ['repositories/app/_layers/', 'repositories/app/a b/'],
      isTruncated: true,
      nextContinuationToken: 'MTAwMA&==',
    });
  });

  it('GIVEN an empty last page WHEN parsed THEN nothing, not truncated', () => {
    expect(parseListV2(document({ keys: [] }))).toEqual({
      keys: [],
      prefixes: [],
      isTruncated: false,
      nextContinuationToken: '',
    });
  });

  it('GIVEN an error document or a cut-off body WHEN parsed THEN it throws instead of listing nothing', () => {
    expect(() =>
      parseListV2(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>',
      ),
    ).toThrow(/not a ListBucketResult/);
    const whole = document({ keys: ['a', 'b'] });
    expect(() => parseListV2(whole.slice(0, whole.length - 30))).toThrow(/not a ListBucketResult/);
  });

  it('GIVEN any keys and prefixes WHEN encoded as MinIO does and parsed THEN they come back exactly, in order', () => {
    const name = fc.string({ minLength: 1, maxLength: 40, unit: 'binary' });
    fc.assert(
      fc.property(
        fc.array(name, { maxLength: 30 }),
        fc.array(name, { maxLength: 5 }),
        fc.boolean(),
        (keys, dirs, truncated) => {
          const prefixes = dirs.map((d) => `x/${d}/`);
          const token = truncated ? 'abc' : undefined;
          expect(parseListV2(document({ keys, prefixes, truncated, token }))).toEqual({
            keys,
            prefixes,
            isTruncated: truncated,
            nextContinuationToken: token ?? '',
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('GIVEN a request WHEN its query is built THEN parameters are sorted and escaped as SigV4 signs them, max-keys within 1..1000', () => {
    expect(
      listV2Query({
        prefix: 'repositories/a b/',
        delimiter: '/',
        continuationToken: 'tok+en=',
        startAfter: "repositories/a b/x(1)'!*",
        maxKeys: 5000,
      }),
    ).toBe(
      'continuation-token=tok%2Ben%3D&delimiter=%2F&encoding-type=url&list-type=2&max-keys=1000&prefix=repositories%2Fa%20b%2F&start-after=repositories%2Fa%20b%2Fx%281%29%27%21%2A',
    );
    expect(
      listV2Query({ prefix: '', delimiter: '', continuationToken: '', startAfter: '', maxKeys: 0 }),
    ).toBe('delimiter=&encoding-type=url&list-type=2&max-keys=1&prefix=');
  });
});
