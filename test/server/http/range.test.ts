import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseByteRange } from '../../../server/http/handlers/blobs.js';
import { Client, blob } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

let reg: TestRegistry;
const b = blob(randomBytes(3000));

beforeAll(async () => {
  reg = await startTestRegistry();
  expect((await new Client((p, i) => reg.fetch(p, i)).pushBlob('range/app', b)).status).toBe(201);
});

afterAll(async () => {
  await reg.close();
});

describe('blob GET with Range', () => {
  it.each([
    ['bytes=0-99999999999999999999', 'bytes=0-99999999999999999999', 0],
    ['bytes=0-<400 nines>', `bytes=0-${'9'.repeat(400)}`, 0],
    ['bytes=1000-2^64', 'bytes=1000-18446744073709551616', 1000],
    ['bytes=-<40 nines>', `bytes=-${'9'.repeat(40)}`, 0],
  ])(
    'GIVEN %s (a last position beyond the blob) WHEN the blob is read THEN 206 with every byte from the first position to the end',
    async (_label, range, from) => {
      const r = await reg.fetch(`/v2/range/app/blobs/${b.digest}`, { headers: { range } });

      expect(r.status).toBe(206);
      expect(r.headers.get('content-range')).toBe(`bytes ${from}-2999/3000`);
      expect(Buffer.from(await r.arrayBuffer()).equals(b.bytes.subarray(from))).toBe(true);
    },
  );

  it('GIVEN a first position at or beyond the end, however written WHEN parsed THEN unsatisfiable', () => {
    expect(parseByteRange('bytes=3000-', 3000)).toBe('unsatisfiable');
    expect(parseByteRange(`bytes=${'9'.repeat(30)}-`, 3000)).toBe('unsatisfiable');
    expect(parseByteRange('bytes=10-5', 3000)).toBe('unsatisfiable');
  });
});
