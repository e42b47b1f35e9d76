import { describe, expect, it } from 'vitest';
import { PartBudget } from '../../../../server/storage/drivers/parts.js';
import {
  PartWriter,
  type MultipartOps,
  type MultipartUpload,
  type UploadedPart,
} from '../../../../server/storage/drivers/partwriter.js';

const MiB = 1024 * 1024;

/** RecordingOps is a store that keeps what a PartWriter sends it. */
class RecordingOps implements MultipartOps {
  started = 0;
  parts: { part: number; bytes: Buffer }[] = [];
  completed: UploadedPart[] | undefined;
  aborted = false;
  whole: Buffer | undefined;
  failPart: number | undefined;

  start(): Promise<MultipartUpload> {
    this.started++;
    return Promise.resolve({ id: 'u1', journal: 'j1' });
  }
  uploadPart(_u: MultipartUpload, part: number, body: Buffer): Promise<string> {
    if (part === this.failPart) return Promise.reject(new Error(`part ${part} refused`));
    this.parts.push({ part, bytes: Buffer.from(body) });
    return Promise.resolve(`etag-${part}`);
  }
  complete(_u: MultipartUpload, parts: UploadedPart[]): Promise<void> {
    this.completed = [...parts];
    return Promise.resolve();
  }
  abort(): Promise<void> {
    this.aborted = true;
    return Promise.resolve();
  }
  putWhole(body: Buffer): Promise<void> {
    this.whole = Buffer.from(body);
    return Promise.resolve();
  }
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4096) b[i] = (seed + i / 4096) & 0xff;
  return b;
}

describe('PartWriter', () => {
  it('GIVEN less than one part WHEN finished THEN the object is put whole and no upload starts', async () => {
    const ops = new RecordingOps();
    const w = new PartWriter(ops, new PartBudget(64 * MiB, 5 * MiB), 0, 'k');
    const data = bytes(MiB, 1);
    await w.write(data);
    await w.finish();
    w.release();
    expect(ops.started).toBe(0);
    expect(ops.whole?.equals(data)).toBe(true);
  });

  it('GIVEN 12 MiB in uneven chunks WHEN finished THEN parts of 5, 5 and 2 MiB complete in order', async () => {
    const ops = new RecordingOps();
    const w = new PartWriter(ops, new PartBudget(64 * MiB, 5 * MiB), 0, 'k');
    const data = bytes(12 * MiB, 2);
    for (let at = 0; at < data.length; at += 3 * MiB + 1)
      await w.write(data.subarray(at, at + 3 * MiB + 1));
    await w.finish();
    w.release();
    expect(ops.started).toBe(1);
    expect(ops.parts.map((p) => p.bytes.length)).toEqual([5 * MiB, 5 * MiB, 2 * MiB]);
    expect(Buffer.concat(ops.parts.map((p) => p.bytes)).equals(data)).toBe(true);
    expect(ops.completed).toEqual([
      { part: 1, etag: 'etag-1' },
      { part: 2, etag: 'etag-2' },
      { part: 3, etag: 'etag-3' },
    ]);
  });

  it('GIVEN a part upload that fails WHEN the stream goes on THEN finishing throws and abort aborts the upload', async () => {
    const ops = new RecordingOps();
    ops.failPart = 1;
    const w = new PartWriter(ops, new PartBudget(64 * MiB, 5 * MiB), 0, 'k');
    const run = async () => {
      for (let i = 0; i < 3; i++) await w.write(bytes(5 * MiB, i));
      await w.finish();
    };
    await expect(run()).rejects.toThrow('part 1 refused');
    await w.abort();
    w.release();
    expect(ops.aborted).toBe(true);
    expect(ops.completed).toBeUndefined();
  });
});
