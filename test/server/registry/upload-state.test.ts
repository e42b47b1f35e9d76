import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseDigest } from '../../../server/registry/reference.js';
import { Registry } from '../../../server/registry/repository.js';
import {
  cancelled,
  claimed,
  decodeRecord,
  encodeRecord,
  saved,
  type SessionBytes,
} from '../../../server/registry/upload-state.js';
import { Uploads } from '../../../server/registry/uploads.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { directViews } from '../../../server/storage/views.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { ManualClock } from '../../support/clock.js';
import { sha256 } from '../../support/image.js';

const ID = '0b3c6f64-1f0e-4c1b-9a57-6a3f0d2f8e11';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** legacy is a record as versions with flag records wrote it (field order included). */
function legacy(flags: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: ID,
    repo: 'library/app',
    algorithm: 'sha256',
    offset: 3,
    segments: [{ key: `segments/${ID}/0-1a2b3c4d`, size: 3 }],
    startedAt: 1_000_000,
    hash: { offset: 3, state: 'c3RhdGU=' },
    ...flags,
  };
}

const bytes: SessionBytes = {
  id: ID,
  repo: 'library/app',
  algorithm: 'sha256',
  offset: 3,
  segments: [{ key: `segments/${ID}/0-1a2b3c4d`, size: 3 }],
  startedAt: 1_000_000,
  hash: { offset: 3, state: 'c3RhdGU=' },
};

describe('upload session records', () => {
  it('GIVEN a live record an older version wrote WHEN decoded THEN it is a saved session at the version read, and encodes back to the same fields', () => {
    const r = decodeRecord(JSON.stringify(legacy()), 'v1');

    expect(r).toEqual({ ...bytes, phase: 'saved', version: 'v1' });
    expect(JSON.parse(encodeRecord(r))).toEqual(legacy());
  });

  it('GIVEN a claimed record, with and without committedAt WHEN decoded THEN it is committed with its claim', () => {
    expect(decodeRecord(JSON.stringify(legacy({ committed: DIGEST, committedAt: 5 })))).toEqual({
      ...bytes,
      phase: 'committed',
      claim: { digest: DIGEST, at: 5 },
    });
    expect(decodeRecord(JSON.stringify(legacy({ committed: DIGEST })))).toEqual({
      ...bytes,
      phase: 'committed',
      claim: { digest: DIGEST },
    });
  });

  it('GIVEN tombstones, one keeping a claim WHEN decoded THEN they are cancelled, the claim kept', () => {
    expect(decodeRecord(JSON.stringify(legacy({ cancelled: true })))).toEqual({
      ...bytes,
      phase: 'cancelled',
    });
    const kept = legacy({ committed: DIGEST, committedAt: 5, cancelled: true });
    const r = decodeRecord(JSON.stringify(kept));
    expect(r).toEqual({ ...bytes, phase: 'cancelled', claim: { digest: DIGEST, at: 5 } });
    expect(JSON.parse(encodeRecord(r))).toEqual(kept);
  });

  it('GIVEN a record carrying flags only a process knew WHEN decoded THEN they are dropped', () => {
    const r = decodeRecord(JSON.stringify(legacy({ ephemeral: true, located: true })));

    expect(r).toEqual({ ...bytes, phase: 'saved' });
    expect(JSON.parse(encodeRecord(r))).toEqual(legacy());
  });

  it('GIVEN the transitions WHEN encoded THEN they write the flag records every version reads', () => {
    const claim = claimed(saved(bytes), DIGEST, 7);

    expect(JSON.parse(encodeRecord(saved(bytes)))).toEqual(legacy());
    expect(JSON.parse(encodeRecord(claim))).toEqual(legacy({ committed: DIGEST, committedAt: 7 }));
    expect(JSON.parse(encodeRecord(cancelled(saved(bytes))))).toEqual(legacy({ cancelled: true }));
    expect(JSON.parse(encodeRecord(cancelled(claim)))).toEqual(
      legacy({ committed: DIGEST, committedAt: 7, cancelled: true }),
    );
  });

  it('GIVEN a session an older version saved WHEN a chunk is added and it is completed THEN the blob reads back whole and the record goes', async () => {
    const driver = new InMemoryDriver();
    const uploads = new Uploads(directViews(driver), {
      ttlSeconds: 3600,
      clock: new ManualClock({ start: 1_000_000 }),
      log: silentLogger,
    });
    const registry = new Registry(directViews(driver), { allowSparse: false });
    const [first, last] = [randomBytes(700), randomBytes(500)];
    const key = Paths.segment(ID, 0, '1a2b3c4d');
    await driver.put(key, first);
    await driver.put(
      Paths.upload(ID),
      JSON.stringify({
        id: ID,
        repo: 'app',
        algorithm: 'sha256',
        offset: first.length,
        segments: [{ key, size: first.length }],
        startedAt: 999_000,
        native: { offset: first.length, hex: sha256(first).slice(7) },
      }),
    );
    const digest = parseDigest(sha256(Buffer.concat([first, last])));

    const s = await uploads.get('app', ID);
    await uploads.complete(s, digest, registry.repository('app').blobs, {
      body: Readable.from([last]),
      rangeStart: first.length,
      rangeEnd: first.length + last.length - 1,
      contentLength: last.length,
    });

    const repo = registry.repository('app');
    const chunks: Buffer[] = [];
    for await (const c of await repo.blobs.open(await repo.blobs.stat(digest)))
      chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(Buffer.concat([first, last]))).toBe(true);
    expect(Object.keys(driver.snapshot()).some((k) => k.startsWith('uploads/'))).toBe(false);
  });
});
