import { request } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Driver } from '../../server/storage/drivers/s3.js';
import { berthS3Env, bucketKeys, startMinio, type MinioServer } from '../support/minio.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

describe('two replicas on one bucket, and crashes', () => {
  let minio: MinioServer;
  let a: BerthProcess;
  let b: BerthProcess;
  let env: Record<string, string>;
  const bucket = 'replicas';

  beforeAll(async () => {
    minio = await startMinio();
    const cfg = minio.config(bucket);
    await S3Driver.ensureBucket(cfg);
    env = {
      ...berthS3Env(cfg),
      BERTH_STORAGE_S3_PART_SIZE_MIB: '5',
      BERTH_HTTP_SECRET: 'shared-between-replicas',
    };
    [a, b] = await Promise.all([spawnBerth(env), spawnBerth(env)]);
  });
  afterAll(async () => {
    await a?.kill('SIGKILL');
    await b?.kill('SIGKILL');
    await minio?.stop();
  });

  it('GIVEN an upload WHEN its chunks alternate between two replicas THEN it completes byte-exact', async () => {
    const data = randomBytes(12 * 1024 * 1024 + 17);
    const chunk = 3 * 1024 * 1024;
    let loc = (await fetch(`${a.url}/v2/rep/alt/blobs/uploads/`, { method: 'POST' })).headers.get(
      'location',
    )!;
    let i = 0;
    for (let off = 0; off < data.length; off += chunk, i++) {
      const end = Math.min(off + chunk, data.length) - 1;
      const via = i % 2 === 0 ? b : a;
      const r = await fetch(new URL(loc, via.url), {
        method: 'PATCH',
        body: data.subarray(off, end + 1),
        headers: { 'content-range': `${off}-${end}`, 'content-type': 'application/octet-stream' },
      });
      expect(r.status, await r.clone().text()).toBe(202);
      expect(r.headers.get('range')).toBe(`0-${end}`);
      loc = r.headers.get('location')!;
    }
    const put = await fetch(new URL(`${loc}&digest=${sha(data)}`, a.url), { method: 'PUT' });
    expect(put.status).toBe(201);
    const back = Buffer.from(
      await (await fetch(`${b.url}/v2/rep/alt/blobs/${sha(data)}`)).arrayBuffer(),
    );
    expect(back.equals(data)).toBe(true);
  });

  it('GIVEN a replica killed with SIGKILL mid-chunk WHEN the client asks another replica THEN it resumes and finishes', async () => {
    const data = randomBytes(40 * 1024 * 1024);
    const first = 8 * 1024 * 1024;
    const post = await fetch(`${a.url}/v2/rep/crash/blobs/uploads/`, { method: 'POST' });
    const r1 = await fetch(new URL(post.headers.get('location')!, a.url), {
      method: 'PATCH',
      body: data.subarray(0, first),
      headers: { 'content-range': `0-${first - 1}` },
    });
    expect(r1.status).toBe(202);
    const loc = r1.headers.get('location')!;

    // Stream the rest to A slowly and kill A with SIGKILL once 20 MiB are on the wire.
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= data.length - first) return this.push(null);
        const n = Math.min(1024 * 1024, data.length - first - sent);
        const piece = data.subarray(first + sent, first + sent + n);
        sent += n;
        setTimeout(() => this.push(piece), 20);
      },
    });
    const u = new URL(loc, a.url);
    const failed = new Promise<string>((resolve) => {
      const req = request(u, {
        method: 'PATCH',
        headers: {
          'content-range': `${first}-${data.length - 1}`,
          'content-length': String(data.length - first),
        },
      });
      req.on('error', (e) => resolve(e.message));
      req.on('response', (res) => resolve(`unexpected response ${res.statusCode}`));
      body.pipe(req);
    });
    while (sent < 20 * 1024 * 1024) await new Promise((r) => setTimeout(r, 10));
    await a.kill('SIGKILL');
    expect(await failed).not.toMatch(/unexpected response/);

    // Nothing of the blob is visible, and the session is where the last whole chunk left it.
    expect(
      (await fetch(`${b.url}/v2/rep/crash/blobs/${sha(data)}`, { method: 'HEAD' })).status,
    ).toBe(404);
    const status = await fetch(new URL(loc, b.url));
    expect(status.status).toBe(204);
    expect(status.headers.get('range')).toBe(`0-${first - 1}`);
    expect(
      (await bucketKeys(minio, bucket)).filter(
        (k) => k.startsWith('blobs/') && k.endsWith(sha(data).slice(7)),
      ),
    ).toEqual([]);

    // The client resumes on B from the reported offset and completes.
    const resume = await fetch(new URL(status.headers.get('location')!, b.url), {
      method: 'PATCH',
      body: data.subarray(first),
      headers: { 'content-range': `${first}-${data.length - 1}` },
    });
    expect(resume.status).toBe(202);
    const put = await fetch(
      new URL(`${resume.headers.get('location')!}&digest=${sha(data)}`, b.url),
      { method: 'PUT' },
    );
    expect(put.status).toBe(201);
    a = await spawnBerth(env);
    const back = Buffer.from(
      await (await fetch(`${a.url}/v2/rep/crash/blobs/${sha(data)}`)).arrayBuffer(),
    );
    expect(back.equals(data)).toBe(true);
  });

  it('GIVEN a replica killed mid single-request push WHEN the push is restarted on another THEN it succeeds', async () => {
    const data = randomBytes(24 * 1024 * 1024);
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= data.length) return this.push(null);
        const piece = data.subarray(sent, sent + 1024 * 1024);
        sent += piece.length;
        setTimeout(() => this.push(piece), 20);
      },
    });
    const failed = new Promise<string>((resolve) => {
      const req = request(new URL(`/v2/rep/mono/blobs/uploads/?digest=${sha(data)}`, a.url), {
        method: 'POST',
        headers: { 'content-length': String(data.length) },
      });
      req.on('error', (e) => resolve(e.message));
      req.on('response', (res) => resolve(`unexpected response ${res.statusCode}`));
      body.pipe(req);
    });
    while (sent < 12 * 1024 * 1024) await new Promise((r) => setTimeout(r, 10));
    await a.kill('SIGKILL');
    expect(await failed).not.toMatch(/unexpected response/);
    expect(
      (await fetch(`${b.url}/v2/rep/mono/blobs/${sha(data)}`, { method: 'HEAD' })).status,
    ).toBe(404);
    const again = await fetch(`${b.url}/v2/rep/mono/blobs/uploads/?digest=${sha(data)}`, {
      method: 'POST',
      body: data,
    });
    expect(again.status).toBe(201);
    a = await spawnBerth(env);
    expect(
      (await fetch(`${a.url}/v2/rep/mono/blobs/${sha(data)}`, { method: 'HEAD' })).headers.get(
        'content-length',
      ),
    ).toBe(String(data.length));
  });

  it('GIVEN MinIO restarts WHEN clients keep pushing THEN the registry recovers without a restart of its own', async () => {
    await minio.restart();
    const data = randomBytes(1000);
    const r = await fetch(`${b.url}/v2/rep/after/blobs/uploads/?digest=${sha(data)}`, {
      method: 'POST',
      body: data,
    });
    expect(r.status).toBe(201);
    expect((await fetch(`${a.url}/readyz`)).status).toBe(200);
  });
});
