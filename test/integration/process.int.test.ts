import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../support/image.js';
import { freePort, spawnBerth } from '../support/process.js';
import { scratchDir } from '../support/scratch.js';

const cli = [
  '--import',
  'tsx',
  join(import.meta.dirname, '..', '..', 'server', 'cli.ts'),
  'server',
];

function runCli(
  env: Record<string, string>,
  args: string[] = [],
): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [...cli, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stderr: r.stderr };
}

describe('berth server process', () => {
  it('GIVEN a bad config WHEN the server starts THEN it exits 2 with one message naming the field', () => {
    const dir = scratchDir('berth-cfg-');
    const file = join(dir, 'berth.yaml');
    writeFileSync(
      file,
      'storage:\n  driver: s3\n  s3:\n    endpoint: http://127.0.0.1:9\n    bucket: Bad_Bucket\n    accessKey: a\n    secretKey: b\n    partSizeMiB: 2\n',
    );
    const r = runCli({}, ['--config', file]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/storage\.s3\.bucket/);
    expect(r.stderr).toMatch(/storage\.s3\.partSizeMiB: must be >= 5/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const env = runCli({ BERTH_HTTP_WORKERS: 'many' });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/BERTH_HTTP_WORKERS/);
    const missing = runCli({}, ['--config', join(dir, 'nope.yaml')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/nope\.yaml/);
  });

  it('GIVEN a running server WHEN probed THEN /healthz is alive and /readyz checks storage', async () => {
    const root = scratchDir('berth-probe-');
    const debugPort = await freePort();
    const p = await spawnBerth({
      BERTH_STORAGE_FILESYSTEM_ROOT: root,
      BERTH_HTTP_DEBUG_ADDR: `127.0.0.1:${debugPort}`,
    });
    try {
      expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${p.url}/readyz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${debugPort}/healthz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${debugPort}/readyz`)).status).toBe(200);
    } finally {
      await p.kill();
    }
    const dead = await spawnBerth(
      {
        BERTH_STORAGE_DRIVER: 's3',
        BERTH_STORAGE_S3_ENDPOINT: 'http://127.0.0.1:9',
        BERTH_STORAGE_S3_BUCKET: 'nothing',
        BERTH_STORAGE_S3_ACCESS_KEY: 'a',
        BERTH_STORAGE_S3_SECRET_KEY: 'b',
      },
      { ready: '/healthz' },
    );
    try {
      const r = await fetch(`${dead.url}/readyz`);
      expect(r.status).toBe(503);
      expect(((await r.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe(
        'UNAVAILABLE',
      );
    } finally {
      await dead.kill();
    }
  });

  it('GIVEN an upload in flight WHEN SIGTERM arrives THEN the request finishes before the process exits', async () => {
    const root = scratchDir('berth-term-');
    const p = await spawnBerth({ BERTH_STORAGE_FILESYSTEM_ROOT: root });
    const data = randomBytes(4 * 1024 * 1024);
    const status = new Promise<number>((resolve, reject) => {
      const req = request(`${p.url}/v2/term/blobs/uploads/?digest=${sha256(data)}`, {
        method: 'POST',
        headers: { 'content-length': String(data.length) },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(data.subarray(0, 1024 * 1024));
      setTimeout(() => {
        p.child.kill('SIGTERM');
        setTimeout(() => req.end(data.subarray(1024 * 1024)), 300);
      }, 200);
    });
    expect(await status).toBe(201);
    await p.kill();
    expect(p.child.exitCode).toBe(0);
  });

  it('GIVEN two worker processes WHEN an upload is chunked over many connections THEN every worker continues it', async () => {
    const root = scratchDir('berth-workers-');
    const p = await spawnBerth({
      BERTH_STORAGE_FILESYSTEM_ROOT: root,
      BERTH_HTTP_WORKERS: '2',
      BERTH_LOG_LEVEL: 'info',
    });
    try {
      // Ready means one worker answers; wait for both to listen, or the kernel can only
      // hand connections to the first.
      const listening = () =>
        new Set(
          p
            .output()
            .split('\n')
            .filter((l) => l.includes('"msg":"registry listening"'))
            .map((l) => (JSON.parse(l) as { pid: number }).pid),
        ).size;
      for (let i = 0; i < 300 && listening() < 2; i++) await new Promise((r) => setTimeout(r, 100));
      expect(listening()).toBe(2);
      const data = randomBytes(64 * 1024);
      let loc = (await fetch(`${p.url}/v2/w/blobs/uploads/`, { method: 'POST' })).headers.get(
        'location',
      )!;
      for (let off = 0; off < data.length; off += 4096) {
        // A fresh connection per chunk, so the kernel spreads them over the workers.
        const r = await new Promise<{ status: number; location: string }>((resolve, reject) => {
          const req = request(
            new URL(loc, p.url),
            { method: 'PATCH', agent: false, headers: { 'content-range': `${off}-${off + 4095}` } },
            (res) => {
              res.resume();
              resolve({ status: res.statusCode ?? 0, location: String(res.headers.location) });
            },
          );
          req.on('error', reject);
          req.end(data.subarray(off, off + 4096));
        });
        expect(r.status).toBe(202);
        loc = r.location;
      }
      expect(
        (await fetch(new URL(`${loc}&digest=${sha256(data)}`, p.url), { method: 'PUT' })).status,
      ).toBe(201);
      const pids = new Set(
        p
          .output()
          .split('\n')
          .filter((l) => l.includes('"route":"blob-upload-chunk"'))
          .map((l) => (JSON.parse(l) as { pid: number }).pid),
      );
      expect(pids.size).toBe(2);
    } finally {
      await p.kill();
    }
  });
});
