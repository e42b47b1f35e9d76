import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { Client, blob, image, index, sha256 } from '../../support/image.js';
import { startTestRegistry, type TestRegistry } from '../../support/server.js';

async function errorCode(r: Response): Promise<string> {
  const body = (await r.json()) as { errors: { code: string; message: string }[] };
  expect(body.errors[0]!.message.length).toBeGreaterThan(0);
  return body.errors[0]!.code;
}

describe('registry HTTP API', () => {
  let reg: TestRegistry;
  let driver: InMemoryDriver;
  /** registryState is the store without the events outbox, which buffered pulls may append to at any time. */
  const registryState = () =>
    Object.fromEntries(Object.entries(driver.snapshot()).filter(([k]) => !k.startsWith('events/')));
  let client: Client;
  beforeAll(async () => {
    driver = new InMemoryDriver();
    reg = await startTestRegistry({ driver });
    client = new Client((p, i) => reg.fetch(p, i));
  });
  afterAll(async () => {
    await reg.close();
  });

  describe('base', () => {
    it('GIVEN a registry WHEN GET /v2/ THEN 200 with the API version header', async () => {
      const r = await reg.fetch('/v2/');
      expect(r.status).toBe(200);
      expect(r.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
      expect(r.headers.get('x-request-id')).toBeTruthy();
    });

    it('GIVEN an unknown path WHEN requested THEN 404 with OCI error JSON', async () => {
      const r = await reg.fetch('/v2/repo/nothing-here');
      expect(r.status).toBe(404);
      expect(await errorCode(r)).toBe('NOT_FOUND');
    });
  });

  describe('blobs', () => {
    const b = blob(randomBytes(5000));
    beforeAll(async () => {
      expect((await client.pushBlob('blobs/one', b)).status).toBe(201);
    });

    it('GIVEN a pushed blob WHEN HEAD THEN size, digest and ETag headers and no body', async () => {
      const r = await reg.fetch(`/v2/blobs/one/blobs/${b.digest}`, { method: 'HEAD' });
      expect(r.status).toBe(200);
      expect(r.headers.get('content-length')).toBe('5000');
      expect(r.headers.get('docker-content-digest')).toBe(b.digest);
      expect(r.headers.get('etag')).toBe(`"${b.digest}"`);
    });

    it('GIVEN a pushed blob WHEN GET THEN the exact bytes, and 304 for a matching If-None-Match', async () => {
      const r = await reg.fetch(`/v2/blobs/one/blobs/${b.digest}`);
      expect(Buffer.from(await r.arrayBuffer()).equals(b.bytes)).toBe(true);
      const c = await reg.fetch(`/v2/blobs/one/blobs/${b.digest}`, {
        headers: { 'if-none-match': `"${b.digest}"` },
      });
      expect(c.status).toBe(304);
    });

    it('GIVEN a blob WHEN ranges are requested THEN 206 slices, and 416 for unsatisfiable ones', async () => {
      const r = await reg.fetch(`/v2/blobs/one/blobs/${b.digest}`, {
        headers: { range: 'bytes=100-199' },
      });
      expect(r.status).toBe(206);
      expect(r.headers.get('content-range')).toBe('bytes 100-199/5000');
      expect(Buffer.from(await r.arrayBuffer()).equals(b.bytes.subarray(100, 200))).toBe(true);
      const suffix = await reg.fetch(`/v2/blobs/one/blobs/${b.digest}`, {
        headers: { range: 'bytes=-10' },
      });
      expect(Buffer.from(await suffix.arrayBuffer()).equals(b.bytes.subarray(4990))).toBe(true);
      for (const range of ['bytes=6000-7000', 'bytes=20-10', 'bytes=-0']) {
        const bad = await reg.fetch(`/v2/blobs/one/blobs/${b.digest}`, { headers: { range } });
        expect(bad.status, range).toBe(416);
        expect(bad.headers.get('content-range')).toBe('bytes */5000');
        expect(await errorCode(bad)).toBe('RANGE_INVALID');
      }
    });

    it('GIVEN a blob in another repository WHEN fetched here THEN 404 BLOB_UNKNOWN', async () => {
      const r = await reg.fetch(`/v2/blobs/two/blobs/${b.digest}`);
      expect(r.status).toBe(404);
      expect(await errorCode(r)).toBe('BLOB_UNKNOWN');
    });

    it('GIVEN a blob WHEN mounted from its repository or anonymously THEN 201 and readable in the target', async () => {
      const r = await reg.fetch(`/v2/blobs/two/blobs/uploads/?mount=${b.digest}&from=blobs/one`, {
        method: 'POST',
      });
      expect(r.status).toBe(201);
      expect(r.headers.get('location')).toBe(`/v2/blobs/two/blobs/${b.digest}`);
      const anon = await reg.fetch(`/v2/blobs/three/blobs/uploads/?mount=${b.digest}`, {
        method: 'POST',
      });
      expect(anon.status).toBe(201);
      expect(
        (await reg.fetch(`/v2/blobs/three/blobs/${b.digest}`, { method: 'HEAD' })).status,
      ).toBe(200);
    });

    it('GIVEN a mount of an unknown blob WHEN posted THEN an upload session starts (202)', async () => {
      const r = await reg.fetch(
        `/v2/blobs/two/blobs/uploads/?mount=${sha256('nope')}&from=blobs/one`,
        { method: 'POST' },
      );
      expect(r.status).toBe(202);
      expect(r.headers.get('location')).toMatch(
        /\/v2\/blobs\/two\/blobs\/uploads\/[0-9a-f-]{36}\?_state=/,
      );
    });

    it('GIVEN a blob WHEN deleted THEN 202 and then 404', async () => {
      const x = blob(randomBytes(10));
      await client.pushBlob('blobs/del', x);
      expect(
        (await reg.fetch(`/v2/blobs/del/blobs/${x.digest}`, { method: 'DELETE' })).status,
      ).toBe(202);
      expect((await reg.fetch(`/v2/blobs/del/blobs/${x.digest}`, { method: 'HEAD' })).status).toBe(
        404,
      );
    });
  });

  describe('uploads', () => {
    async function start(repo: string, query = ''): Promise<string> {
      const r = await reg.fetch(`/v2/${repo}/blobs/uploads/${query}`, { method: 'POST' });
      expect(r.status).toBe(202);
      expect(r.headers.get('range')).toBe('0-0');
      expect(r.headers.get('oci-chunk-min-length')).toMatch(/^\d+$/);
      expect(r.headers.get('docker-upload-uuid')).toMatch(/^[0-9a-f-]{36}$/);
      return r.headers.get('location')!;
    }

    it('GIVEN a session WHEN chunks arrive in order and PUT closes it THEN the blob exists with its digest', async () => {
      const data = randomBytes(3000);
      let loc = await start('up/chunked');
      for (const [s, e] of [
        [0, 999],
        [1000, 1999],
      ] as const) {
        const r = await reg.fetch(loc, {
          method: 'PATCH',
          body: data.subarray(s, e + 1),
          headers: { 'content-range': `${s}-${e}`, 'content-type': 'application/octet-stream' },
        });
        expect(r.status).toBe(202);
        expect(r.headers.get('range')).toBe(`0-${e}`);
        loc = r.headers.get('location')!;
      }
      const status = await reg.fetch(loc);
      expect(status.status).toBe(204);
      expect(status.headers.get('range')).toBe('0-1999');
      const put = await reg.fetch(`${loc}&digest=${sha256(data)}`, {
        method: 'PUT',
        body: data.subarray(2000),
        headers: { 'content-range': '2000-2999' },
      });
      expect(put.status).toBe(201);
      expect(put.headers.get('docker-content-digest')).toBe(sha256(data));
      const back = await reg.fetch(`/v2/up/chunked/blobs/${sha256(data)}`);
      expect(Buffer.from(await back.arrayBuffer()).equals(data)).toBe(true);
    });

    it('GIVEN a session WHEN a chunk arrives out of order THEN 416 with the current Range and Location', async () => {
      const loc = await start('up/order');
      const r1 = await reg.fetch(loc, {
        method: 'PATCH',
        body: Buffer.alloc(10),
        headers: { 'content-range': '0-9' },
      });
      const loc2 = r1.headers.get('location')!;
      const bad = await reg.fetch(loc2, {
        method: 'PATCH',
        body: Buffer.alloc(10),
        headers: { 'content-range': '20-29' },
      });
      expect(bad.status).toBe(416);
      expect(bad.headers.get('range')).toBe('0-9');
      expect(bad.headers.get('location')).toContain('/v2/up/order/blobs/uploads/');
      expect(await errorCode(bad)).toBe('BLOB_UPLOAD_INVALID');
      const again = await reg.fetch(loc2, {
        method: 'PATCH',
        body: Buffer.alloc(10),
        headers: { 'content-range': '0-9' },
      });
      expect(again.status).toBe(416);
    });

    it('GIVEN a streamed first request WHEN more chunks follow THEN the digest is still exact', async () => {
      const data = randomBytes(4096);
      const loc = await start('up/stream');
      const r1 = await reg.fetch(loc, { method: 'PATCH', body: data.subarray(0, 1000) });
      expect(r1.status).toBe(202);
      const r2 = await reg.fetch(r1.headers.get('location')!, {
        method: 'PATCH',
        body: data.subarray(1000),
        headers: { 'content-range': `1000-${data.length - 1}` },
      });
      expect(r2.status).toBe(202);
      const put = await reg.fetch(`${r2.headers.get('location')!}&digest=${sha256(data)}`, {
        method: 'PUT',
      });
      expect(put.status).toBe(201);
    });

    it('GIVEN a streamed upload WHEN closed by a PUT without body THEN no stored byte is read again', async () => {
      const data = randomBytes(100_000);
      const loc = await start('up/noreread');
      const r1 = await reg.fetch(loc, { method: 'PATCH', body: data });
      let reads = 0;
      const read = driver.read.bind(driver);
      driver.read = (...args) => {
        reads++;
        return read(...args);
      };
      try {
        // An empty chunked body (what Node's http client sends for a bare PUT).
        const status = await new Promise<number>((resolve, reject) => {
          const req = request(
            new URL(`${r1.headers.get('location')!}&digest=${sha256(data)}`, reg.url),
            { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        });
        expect(status).toBe(201);
      } finally {
        driver.read = read;
      }
      expect(reads).toBe(0);
    });

    it('GIVEN a session with one chunk WHEN the closing PUT breaks off mid-body THEN the session stays at its offset, uncommitted, and the PUT can be retried', async () => {
      const data = randomBytes(3000);
      const loc = await start('up/closing-retry');
      const r1 = await reg.fetch(loc, {
        method: 'PATCH',
        body: data.subarray(0, 1000),
        headers: { 'content-range': '0-999', 'content-type': 'application/octet-stream' },
      });
      expect(r1.status).toBe(202);
      const next = r1.headers.get('location')!;
      const url = new URL(`${next}&digest=${sha256(data)}`, reg.url);
      // The closing PUT announces 2000 bytes, sends 700, and the connection drops.
      await new Promise<void>((resolve) => {
        const req = request(url, {
          method: 'PUT',
          headers: { 'content-length': '2000', 'content-type': 'application/octet-stream' },
        });
        req.on('error', () => resolve());
        req.on('response', (res) => {
          res.resume();
          resolve();
        });
        req.write(data.subarray(1000, 1700), () => setTimeout(() => req.destroy(), 50));
      });
      // The server notices the broken body on its own time: wait for the session to be usable.
      let status = 0;
      let range: string | null = null;
      for (let i = 0; i < 200 && status !== 204; i++) {
        const st = await reg.fetch(next);
        status = st.status;
        range = st.headers.get('range');
        if (status !== 204) await new Promise((r) => setTimeout(r, 25));
      }
      expect(status).toBe(204);
      expect(range).toBe('0-999');
      const put = await reg.fetch(url.pathname + url.search, {
        method: 'PUT',
        body: data.subarray(1000),
        headers: { 'content-range': '1000-2999', 'content-type': 'application/octet-stream' },
      });
      expect(put.status).toBe(201);
      const got = await reg.fetch(`/v2/up/closing-retry/blobs/${sha256(data)}`);
      expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
    });

    it('GIVEN a sha512 upload WHEN committed THEN the blob is addressable by its sha512 digest', async () => {
      const data = randomBytes(777);
      const d = 'sha512:' + createHash('sha512').update(data).digest('hex');
      const loc = await start('up/sha512', '?digest-algorithm=sha512');
      const put = await reg.fetch(`${loc}&digest=${d}`, { method: 'PUT', body: data });
      expect(put.status).toBe(201);
      expect(
        (await reg.fetch(`/v2/up/sha512/blobs/${d}`, { method: 'HEAD' })).headers.get(
          'content-length',
        ),
      ).toBe('777');
    });

    describe('a session whose POST wrote nothing', () => {
      const idOf = (loc: string) => loc.split('/').pop()!.split('?')[0]!;
      const bytesOf = async (repo: string, digest: string) =>
        Buffer.from(await (await reg.fetch(`/v2/${repo}/blobs/${digest}`)).arrayBuffer());

      it('GIVEN a POST WHEN it answers THEN storage holds nothing of the session, and its Location reports offset 0', async () => {
        const before = registryState();
        const loc = await start('lazy/post');
        expect(Object.keys(registryState()).filter((k) => !(k in before))).toEqual([]);
        const status = await reg.fetch(loc);
        expect(status.status).toBe(204);
        expect(status.headers.get('range')).toBe('0-0');
      });

      it('GIVEN a POST then a PUT with the whole blob WHEN done THEN 201, and its Location is unknown afterwards', async () => {
        const data = randomBytes(5000);
        const loc = await start('lazy/done');
        const put = await reg.fetch(`${loc}&digest=${sha256(data)}`, { method: 'PUT', body: data });
        expect(put.status).toBe(201);
        expect((await bytesOf('lazy/done', sha256(data))).equals(data)).toBe(true);
        for (const method of ['GET', 'DELETE']) {
          const r = await reg.fetch(loc, { method });
          expect(r.status, method).toBe(404);
          expect(await errorCode(r)).toBe('BLOB_UPLOAD_UNKNOWN');
        }
        expect(Object.keys(registryState()).filter((k) => k === `uploads/${idOf(loc)}`)).toEqual(
          [],
        );
      });

      it('GIVEN a POST WHEN cancelled THEN a PUT to its Location is refused and the purger later removes the tombstone', async () => {
        const loc = await start('lazy/cancel');
        expect((await reg.fetch(loc, { method: 'DELETE' })).status).toBe(204);
        const put = await reg.fetch(`${loc}&digest=${sha256('x')}`, { method: 'PUT', body: 'x' });
        expect(put.status).toBe(404);
        expect(await errorCode(put)).toBe('BLOB_UPLOAD_UNKNOWN');
        expect(registryState()).toHaveProperty([`uploads/${idOf(loc)}`]);
      });

      it('GIVEN a POST Location used again after its session took chunks WHEN a PUT sends bytes there THEN 416 with the session offset, and the session still completes', async () => {
        const data = randomBytes(4000);
        const loc = await start('lazy/stale');
        const patch = await reg.fetch(loc, {
          method: 'PATCH',
          body: data.subarray(0, 1000),
          headers: { 'content-range': '0-999' },
        });
        expect(patch.status).toBe(202);
        const stale = await reg.fetch(`${loc}&digest=${sha256(data)}`, {
          method: 'PUT',
          body: data,
        });
        expect(stale.status).toBe(416);
        expect(await errorCode(stale)).toBe('BLOB_UPLOAD_INVALID');
        expect(stale.headers.get('range')).toBe('0-999');
        const put = await reg.fetch(`${patch.headers.get('location')!}&digest=${sha256(data)}`, {
          method: 'PUT',
          body: data.subarray(1000),
        });
        expect(put.status).toBe(201);
        expect((await bytesOf('lazy/stale', sha256(data))).equals(data)).toBe(true);
      });

      it('GIVEN a completed POST Location reused for chunks and a cancel WHEN cancelled THEN the blob it completed keeps its bytes', async () => {
        const blob = randomBytes(3000);
        const loc = await start('lazy/reuse');
        expect(
          (await reg.fetch(`${loc}&digest=${sha256(blob)}`, { method: 'PUT', body: blob })).status,
        ).toBe(201);
        // A client that keeps the first Location: the session is found anew from it...
        const again = await reg.fetch(loc, {
          method: 'PATCH',
          body: Buffer.from('more'),
          headers: { 'content-range': '0-3' },
        });
        expect(again.status).toBe(202);
        // ...and cancelling it drops only what it wrote.
        expect((await reg.fetch(again.headers.get('location')!, { method: 'DELETE' })).status).toBe(
          204,
        );
        expect((await bytesOf('lazy/reuse', sha256(blob))).equals(blob)).toBe(true);
      });

      it('GIVEN a POST and a PUT of an empty blob WHEN done THEN the empty blob exists and the Location is unknown afterwards', async () => {
        const loc = await start('lazy/empty');
        const put = await reg.fetch(`${loc}&digest=${sha256('')}`, { method: 'PUT' });
        expect(put.status).toBe(201);
        expect((await reg.fetch(`/v2/lazy/empty/blobs/${sha256('')}`)).status).toBe(200);
        expect((await reg.fetch(loc)).status).toBe(404);
      });

      describe("a client that drops the Location query (zot's zb does)", () => {
        const bare = (loc: string) => loc.split('?')[0]!;

        it('GIVEN a POST WHEN the whole blob is PUT to the bare path THEN 201 and the bytes are exact', async () => {
          const data = randomBytes(5000);
          const loc = bare(await start('bare/put'));
          const put = await reg.fetch(`${loc}?digest=${sha256(data)}`, {
            method: 'PUT',
            body: data,
          });
          expect(put.status).toBe(201);
          expect((await bytesOf('bare/put', sha256(data))).equals(data)).toBe(true);
        });

        it('GIVEN a POST WHEN two chunks are PATCHed and the upload completed, all on the bare path THEN 201 with both chunks in order', async () => {
          const data = randomBytes(6000);
          const loc = bare(await start('bare/chunks'));
          const status = await reg.fetch(loc);
          expect(status.status).toBe(204);
          expect(status.headers.get('range')).toBe('0-0');
          const p1 = await reg.fetch(loc, {
            method: 'PATCH',
            body: data.subarray(0, 2500),
            headers: { 'content-range': '0-2499' },
          });
          expect(p1.status).toBe(202);
          const p2 = await reg.fetch(loc, { method: 'PATCH', body: data.subarray(2500, 4000) });
          expect(p2.status).toBe(202);
          expect(p2.headers.get('range')).toBe('0-3999');
          const put = await reg.fetch(`${loc}?digest=${sha256(data)}`, {
            method: 'PUT',
            body: data.subarray(4000),
          });
          expect(put.status).toBe(201);
          expect((await bytesOf('bare/chunks', sha256(data))).equals(data)).toBe(true);
        });

        it('GIVEN a sha512 POST WHEN completed on the bare path THEN the id alone carried the algorithm', async () => {
          const data = randomBytes(3000);
          const d = 'sha512:' + createHash('sha512').update(data).digest('hex');
          const loc = bare(await start('bare/sha512', '?digest-algorithm=sha512'));
          const put = await reg.fetch(`${loc}?digest=${d}`, { method: 'PUT', body: data });
          expect(put.status).toBe(201);
          expect(put.headers.get('docker-content-digest')).toBe(d);
        });

        it('GIVEN an upload id from another repository, or any UUID the registry did not mint, WHEN used bare THEN BLOB_UPLOAD_UNKNOWN and nothing is written', async () => {
          const other = bare(await start('bare/one'));
          const id = other.split('/').pop()!;
          const before = registryState();
          for (const path of [
            `/v2/bare/two/blobs/uploads/${id}`,
            `/v2/bare/one/blobs/uploads/${randomUUID()}`,
            // the same id with one bit of its MAC flipped
            `/v2/bare/one/blobs/uploads/${id.slice(0, -1)}${id.endsWith('0') ? '1' : '0'}`,
          ]) {
            for (const method of ['GET', 'PATCH', 'PUT']) {
              const r = await reg.fetch(method === 'PUT' ? `${path}?digest=${sha256('x')}` : path, {
                method,
                body: method === 'GET' ? undefined : 'x',
              });
              expect(r.status, `${method} ${path}`).toBe(404);
              expect(await errorCode(r)).toBe('BLOB_UPLOAD_UNKNOWN');
            }
          }
          expect(registryState()).toEqual(before);
        });
      });
    });

    it('GIVEN a session WHEN closed with the wrong digest THEN 400 DIGEST_INVALID, no blob, session gone', async () => {
      const before = registryState();
      const loc = await start('up/bad');
      const put = await reg.fetch(`${loc}&digest=${sha256('other')}`, {
        method: 'PUT',
        body: Buffer.from('content'),
      });
      expect(put.status).toBe(400);
      expect(await errorCode(put)).toBe('DIGEST_INVALID');
      expect((await reg.fetch(loc)).status).toBe(404);
      // Only the session's tombstone is left (the purger removes it after the TTL).
      const id = loc.split('/').pop()!.split('?')[0]!;
      const after = registryState();
      expect(Object.keys(after).filter((k) => !(k in before) && !k.startsWith('catalog/'))).toEqual(
        [`uploads/${id}`],
      );
      const record = JSON.parse((await driver.get(`uploads/${id}`)).toString()) as {
        cancelled?: boolean;
      };
      expect(record.cancelled).toBe(true);
    });

    it('GIVEN a session WHEN cancelled THEN 204 and the session is unknown afterwards', async () => {
      const loc = await start('up/cancel');
      await reg.fetch(loc, {
        method: 'PATCH',
        body: Buffer.alloc(100),
        headers: { 'content-range': '0-99' },
      });
      expect((await reg.fetch(loc, { method: 'DELETE' })).status).toBe(204);
      const r = await reg.fetch(loc);
      expect(r.status).toBe(404);
      expect(await errorCode(r)).toBe('BLOB_UPLOAD_UNKNOWN');
      expect(
        Object.keys(registryState()).filter((k) =>
          k.startsWith('segments/' + loc.split('/').pop()!.split('?')[0]),
        ),
      ).toEqual([]);
    });

    it('GIVEN a tampered state token WHEN used THEN 400 BLOB_UPLOAD_INVALID', async () => {
      const loc = await start('up/token');
      const r = await reg.fetch(loc.replace(/_state=.{5}/, '_state=AAAAA'), {
        method: 'PATCH',
        body: Buffer.alloc(1),
      });
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('BLOB_UPLOAD_INVALID');
    });

    it('GIVEN hostile Content-Range or PUT without digest WHEN sent THEN precise 4xx errors', async () => {
      const loc = await start('up/hostile');
      const r = await reg.fetch(loc, {
        method: 'PATCH',
        body: Buffer.alloc(3),
        headers: { 'content-range': 'abc' },
      });
      expect(r.status).toBe(416);
      const mismatch = await reg.fetch(loc, {
        method: 'PATCH',
        body: Buffer.alloc(3),
        headers: { 'content-range': '0-9' },
      });
      expect(mismatch.status).toBe(416);
      const nodigest = await reg.fetch(loc, { method: 'PUT' });
      expect(nodigest.status).toBe(400);
      expect(await errorCode(nodigest)).toBe('DIGEST_INVALID');
      const badid = await reg.fetch('/v2/up/hostile/blobs/uploads/../../x', { method: 'PATCH' });
      expect(badid.status).toBeGreaterThanOrEqual(400);
      expect(badid.status).toBeLessThan(500);
    });
  });

  describe('manifests', () => {
    it('GIVEN an image WHEN pushed by tag THEN GET by tag and digest return the exact bytes and type', async () => {
      const img = image().layer().layer(2048).build();
      const r = await client.push('m/img', 'v1', img);
      expect(r.status).toBe(201);
      expect(r.headers.get('docker-content-digest')).toBe(img.digest);
      expect(r.headers.get('location')).toBe(`/v2/m/img/manifests/${img.digest}`);
      for (const ref of ['v1', img.digest]) {
        const g = await reg.fetch(`/v2/m/img/manifests/${ref}`);
        expect(g.status).toBe(200);
        expect(g.headers.get('content-type')).toBe(img.mediaType);
        expect(g.headers.get('docker-content-digest')).toBe(img.digest);
        expect(Buffer.from(await g.arrayBuffer()).equals(img.body)).toBe(true);
        const h = await reg.fetch(`/v2/m/img/manifests/${ref}`, { method: 'HEAD' });
        expect(h.headers.get('content-length')).toBe(String(img.body.length));
      }
    });

    it('GIVEN a Docker schema 2 image and a multi-arch index WHEN pushed THEN both are served', async () => {
      const docker = image().docker().layer().build();
      expect((await client.push('m/docker', 'v1', docker)).status).toBe(201);
      const idx = index([image().layer().build(), image().arch('arm64').layer().build()]);
      expect((await client.push('m/index', 'multi', idx)).status).toBe(201);
      const g = await reg.fetch('/v2/m/index/manifests/multi');
      expect(g.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');
    });

    it('GIVEN a manifest whose layer is missing WHEN pushed THEN 400 MANIFEST_BLOB_UNKNOWN and nothing stored', async () => {
      const img = image().layer().build();
      await client.pushBlob('m/missing', img.blobs[0]!);
      const before = registryState();
      const r = await client.pushManifest('m/missing', 'v1', img);
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('MANIFEST_BLOB_UNKNOWN');
      expect(registryState()).toEqual(before);
    });

    it('GIVEN bad manifests WHEN pushed THEN clear 4xx errors and storage unchanged', async () => {
      const before = registryState();
      const cases: [Buffer | string, string, number, string][] = [
        ['not json', 'application/vnd.oci.image.manifest.v1+json', 400, 'MANIFEST_INVALID'],
        [
          JSON.stringify({ schemaVersion: 1, name: 'x', fsLayers: [] }),
          'application/vnd.docker.distribution.manifest.v1+prettyjws',
          400,
          'MANIFEST_INVALID',
        ],
        [
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'x', digest: 'sha256:zz', size: 1 },
            layers: [],
          }),
          'application/vnd.oci.image.manifest.v1+json',
          400,
          'MANIFEST_INVALID',
        ],
        [
          JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-unknown' }),
          'application/x-unknown',
          400,
          'MANIFEST_INVALID',
        ],
        [
          Buffer.alloc(4 * 1024 * 1024 + 1, 0x20),
          'application/vnd.oci.image.manifest.v1+json',
          413,
          'SIZE_INVALID',
        ],
      ];
      for (const [body, type, status, code] of cases) {
        const r = await reg.fetch('/v2/m/bad/manifests/v1', {
          method: 'PUT',
          body,
          headers: { 'content-type': type },
        });
        expect(r.status, String(body).slice(0, 60)).toBe(status);
        expect(await errorCode(r)).toBe(code);
      }
      const schema1 = await reg.fetch('/v2/m/bad/manifests/v1', {
        method: 'PUT',
        body: JSON.stringify({ schemaVersion: 1 }),
        headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+json' },
      });
      expect(
        ((await schema1.json()) as { errors: { message: string }[] }).errors[0]!.message,
      ).toMatch(/schema 1/);
      expect(registryState()).toEqual(before);
    });

    it('GIVEN a manifest PUT by digest WHEN the body does not match THEN 400 DIGEST_INVALID', async () => {
      const img = image().build();
      await client.push('m/bydigest', img.digest, img);
      const r = await client.pushManifest('m/bydigest', sha256('different'), img);
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('DIGEST_INVALID');
    });

    it('GIVEN a push by digest with tag parameters WHEN done THEN OCI-Tag lists them and each resolves', async () => {
      const img = image().layer().build();
      for (const b of img.blobs) await client.pushBlob('m/tags', b);
      const r = await reg.fetch(`/v2/m/tags/manifests/${img.digest}?tag=a&tag=b`, {
        method: 'PUT',
        body: img.body,
        headers: { 'content-type': img.mediaType },
      });
      expect(r.status).toBe(201);
      expect(r.headers.get('oci-tag')).toBe('a, b');
      for (const t of ['a', 'b'])
        expect((await reg.fetch(`/v2/m/tags/manifests/${t}`, { method: 'HEAD' })).status).toBe(200);
      const badTag = await reg.fetch(`/v2/m/tags/manifests/${img.digest}?tag=${'x'.repeat(200)}`, {
        method: 'PUT',
        body: img.body,
        headers: { 'content-type': img.mediaType },
      });
      expect(badTag.status).toBe(400);
      expect(await errorCode(badTag)).toBe('TAG_INVALID');
    });

    it('GIVEN a tagged manifest WHEN deleted by digest THEN its tags are gone too; a tag delete only untags', async () => {
      const img = image().layer().build();
      await client.push('m/del', 'one', img);
      await client.pushManifest('m/del', 'two', img);
      expect((await reg.fetch('/v2/m/del/manifests/one', { method: 'DELETE' })).status).toBe(202);
      expect((await reg.fetch('/v2/m/del/manifests/one')).status).toBe(404);
      expect((await reg.fetch(`/v2/m/del/manifests/${img.digest}`)).status).toBe(200);
      expect(
        (await reg.fetch(`/v2/m/del/manifests/${img.digest}`, { method: 'DELETE' })).status,
      ).toBe(202);
      const gone = await reg.fetch('/v2/m/del/manifests/two');
      expect(gone.status).toBe(404);
      expect(await errorCode(gone)).toBe('MANIFEST_UNKNOWN');
      const tags = (await (await reg.fetch('/v2/m/del/tags/list')).json()) as { tags: string[] };
      expect(tags.tags).toEqual([]);
    });
  });

  describe('referrers', () => {
    it('GIVEN artifacts with a subject WHEN listed THEN descriptors with artifactType, filter and pagination', async () => {
      const subject = image().layer().build();
      await client.push('r/app', 'v1', subject);
      const sbom = image()
        .artifact('application/vnd.example.sbom')
        .subject(subject)
        .annotate({ k: 'v' })
        .layer()
        .build();
      const sig = image().artifact('application/vnd.example.sig').subject(subject).layer().build();
      const put = await client.push('r/app', sbom.digest, sbom);
      expect(put.headers.get('oci-subject')).toBe(subject.digest);
      await client.push('r/app', sig.digest, sig);

      const all = await reg.fetch(`/v2/r/app/referrers/${subject.digest}`);
      expect(all.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');
      const body = (await all.json()) as {
        manifests: { digest: string; artifactType: string; annotations?: object }[];
      };
      expect(body.manifests.map((m) => m.digest).sort()).toEqual([sbom.digest, sig.digest].sort());
      expect(body.manifests.find((m) => m.digest === sbom.digest)!.annotations).toEqual({ k: 'v' });

      const filtered = await reg.fetch(
        `/v2/r/app/referrers/${subject.digest}?artifactType=application/vnd.example.sig`,
      );
      expect(filtered.headers.get('oci-filters-applied')).toBe('artifactType');
      expect(
        ((await filtered.json()) as { manifests: { digest: string }[] }).manifests.map(
          (m) => m.digest,
        ),
      ).toEqual([sig.digest]);

      const p1 = await reg.fetch(`/v2/r/app/referrers/${subject.digest}?n=1`);
      expect(((await p1.json()) as { manifests: unknown[] }).manifests).toHaveLength(1);
      const link = p1.headers.get('link')!;
      expect(link).toMatch(/rel="next"/);
      const p2 = await reg.fetch(link.slice(1, link.indexOf('>')));
      expect(((await p2.json()) as { manifests: unknown[] }).manifests).toHaveLength(1);
      expect(p2.headers.get('link')).toBeNull();
    });

    it('GIVEN no referrers or a bad digest WHEN listed THEN an empty index or 400', async () => {
      const none = await reg.fetch(`/v2/r/none/referrers/${sha256('x')}`);
      expect(none.status).toBe(200);
      expect(((await none.json()) as { manifests: unknown[] }).manifests).toEqual([]);
      const bad = await reg.fetch('/v2/r/none/referrers/sha256:nothex');
      expect(bad.status).toBe(400);
      expect(await errorCode(bad)).toBe('DIGEST_INVALID');
    });
  });

  describe('listing', () => {
    beforeAll(async () => {
      const img = image().build();
      await client.push('l/tags', 't0', img);
      for (const t of ['b', 'a', 'C', 'c', '1']) await client.pushManifest('l/tags', t, img);
    });

    it('GIVEN tags WHEN listed THEN sorted, paginated with n/last and Link', async () => {
      const all = (await (await reg.fetch('/v2/l/tags/tags/list')).json()) as {
        name: string;
        tags: string[];
      };
      expect(all).toEqual({ name: 'l/tags', tags: ['1', 'C', 'a', 'b', 'c', 't0'] });
      const p1 = await reg.fetch('/v2/l/tags/tags/list?n=2');
      expect(((await p1.json()) as { tags: string[] }).tags).toEqual(['1', 'C']);
      expect(p1.headers.get('link')).toBe('</v2/l/tags/tags/list?n=2&last=C>; rel="next"');
      const p2 = await reg.fetch('/v2/l/tags/tags/list?n=10&last=b');
      expect(((await p2.json()) as { tags: string[] }).tags).toEqual(['c', 't0']);
      expect(p2.headers.get('link')).toBeNull();
      const zero = await reg.fetch('/v2/l/tags/tags/list?n=0');
      expect(((await zero.json()) as { tags: string[] }).tags).toEqual([]);
      expect(zero.headers.get('link')).toBeNull();
    });

    it('GIVEN bad or huge n WHEN listing THEN 400 or a bounded page', async () => {
      for (const n of ['-1', 'abc', '1e3', '']) {
        const r = await reg.fetch(`/v2/l/tags/tags/list?n=${n}`);
        if (n === '') expect(r.status).toBe(200);
        else {
          expect(r.status, n).toBe(400);
          expect(await errorCode(r)).toBe('PAGINATION_NUMBER_INVALID');
        }
      }
      const huge = await reg.fetch('/v2/_catalog?n=999999999999');
      expect(huge.status).toBe(200);
    });

    it('GIVEN an unknown repository WHEN its tags are listed THEN 404 NAME_UNKNOWN', async () => {
      const r = await reg.fetch('/v2/l/never/tags/list');
      expect(r.status).toBe(404);
      expect(await errorCode(r)).toBe('NAME_UNKNOWN');
    });

    it('GIVEN repositories WHEN the catalog is paged THEN every name once, "/" sorting before other characters', async () => {
      const img = image().build();
      for (const n of ['cat/a-b', 'cat/a', 'cat/a/b', 'cat/a.b']) await client.push(n, 'x', img);
      const seen: string[] = [];
      let url: string | undefined = '/v2/_catalog?n=3';
      while (url) {
        const r: Response = await reg.fetch(url);
        seen.push(...((await r.json()) as { repositories: string[] }).repositories);
        const link = r.headers.get('link');
        url = link ? link.slice(1, link.indexOf('>')) : undefined;
      }
      const cat = seen.filter((n) => n.startsWith('cat/'));
      expect(cat).toEqual(['cat/a', 'cat/a/b', 'cat/a-b', 'cat/a.b']);
      expect(new Set(seen).size).toBe(seen.length);
    });
  });

  describe('hostile input', () => {
    it('GIVEN malformed names and digests WHEN used THEN 400 with the right code and no storage change', async () => {
      const before = registryState();
      const cases: [string, string, string][] = [
        ['POST', '/v2/UPPER/blobs/uploads/', 'NAME_INVALID'],
        ['POST', '/v2/a..b/blobs/uploads/', 'NAME_INVALID'],
        ['POST', '/v2/a//b/blobs/uploads/', 'NAME_INVALID'],
        ['POST', '/v2/a%2F..%2Fb/blobs/uploads/', 'NAME_INVALID'],
        ['POST', `/v2/${'a'.repeat(256)}/blobs/uploads/`, 'NAME_INVALID'],
        ['GET', '/v2/ok/blobs/sha256:123', 'DIGEST_INVALID'],
        ['GET', '/v2/ok/blobs/md5:d41d8cd98f00b204e9800998ecf8427e', 'DIGEST_INVALID'],
        ['GET', `/v2/ok/blobs/sha256:${'A'.repeat(64)}`, 'DIGEST_INVALID'],
        ['POST', '/v2/ok/blobs/uploads/?digest=sha256:bad', 'DIGEST_INVALID'],
        ['POST', '/v2/ok/blobs/uploads/?mount=sha256:bad&from=x', 'DIGEST_INVALID'],
        ['POST', `/v2/ok/blobs/uploads/?mount=${sha256('a')}&from=../x`, 'NAME_INVALID'],
        ['GET', '/v2/ok/manifests/-bad-tag', 'MANIFEST_INVALID'],
        ['GET', '/v2/%ZZ/manifests/x', 'NAME_INVALID'],
      ];
      for (const [method, path, code] of cases) {
        const r = await reg.fetch(path, { method });
        expect(r.status, `${method} ${path}`).toBe(400);
        expect(await errorCode(r), path).toBe(code);
      }
      expect(registryState()).toEqual(before);
    });

    it('GIVEN a monolithic push whose body does not match its digest WHEN posted THEN 400 and nothing kept', async () => {
      const before = registryState();
      const r = await reg.fetch(`/v2/ok/blobs/uploads/?digest=${sha256('a')}`, {
        method: 'POST',
        body: 'b',
      });
      expect(r.status).toBe(400);
      expect(await errorCode(r)).toBe('DIGEST_INVALID');
      const after = registryState();
      expect(Object.keys(after).filter((k) => !(k in before))).toEqual([]);
    });
  });
});

describe('registry modes', () => {
  it('GIVEN read-only mode WHEN writing THEN 405 UNSUPPORTED, while reads work', async () => {
    const reg = await startTestRegistry({ config: { readOnly: true } });
    try {
      for (const [method, path] of [
        ['POST', '/v2/a/blobs/uploads/'],
        ['PUT', '/v2/a/manifests/v1'],
        ['DELETE', `/v2/a/manifests/${sha256('x')}`],
        ['PATCH', '/v2/a/blobs/uploads/123'],
      ]) {
        const r = await reg.fetch(path!, { method });
        expect(r.status, `${method} ${path}`).toBe(405);
        expect(await errorCode(r)).toBe('UNSUPPORTED');
      }
      expect((await reg.fetch('/v2/_catalog')).status).toBe(200);
    } finally {
      await reg.close();
    }
  });

  it('GIVEN deletes disabled WHEN deleting THEN 405 UNSUPPORTED and the content stays', async () => {
    const reg = await startTestRegistry({ config: { delete: { enabled: false } } });
    try {
      const c = new Client((p, i) => reg.fetch(p, i));
      const img = image().layer().build();
      await c.push('d/x', 'v1', img);
      const r = await reg.fetch('/v2/d/x/manifests/v1', { method: 'DELETE' });
      expect(r.status).toBe(405);
      expect(await errorCode(r)).toBe('UNSUPPORTED');
      expect(
        (await reg.fetch(`/v2/d/x/blobs/${img.blobs[0]!.digest}`, { method: 'DELETE' })).status,
      ).toBe(405);
      expect((await reg.fetch('/v2/d/x/manifests/v1')).status).toBe(200);
    } finally {
      await reg.close();
    }
  });
});
