import { describe, expect, it } from 'vitest';
import { barProgress, logProgress } from '../../../server/copy/progress.js';

const d = { digest: `sha256:${'b'.repeat(64)}`, size: 2048 };

describe('copy progress', () => {
  it('GIVEN a terminal WHEN blobs pass THEN one line is redrawn with \\r: bytes of the total and blobs done of the total', () => {
    const out: string[] = [];
    let t = 0;
    const p = barProgress(
      (s) => out.push(s),
      () => (t += 200),
    );
    p.start(4096, 2);
    p.bytes(2048);
    p.blob(d, true);
    p.bytes(2048);
    p.blob(d, false);
    p.end();
    expect(out.every((s) => s.startsWith('\r') || s === '\n')).toBe(true);
    expect(out.at(-2)).toContain('4.0 KiB / 4.0 KiB  2/2 blobs');
    expect(out.at(-2)).toContain(`[${'#'.repeat(30)}]`);
    expect(out.at(-1)).toBe('\n');
  });

  it('GIVEN no terminal WHEN a blob is done THEN one JSON info line says whether it was copied or skipped', () => {
    const out: string[] = [];
    const p = logProgress((s) => out.push(s));
    p.start(2048, 1);
    p.bytes(2048);
    p.blob(d, false);
    p.end();
    expect(out).toHaveLength(1);
    expect(JSON.parse(out[0]!)).toMatchObject({ level: 'info', msg: 'blob skipped', ...d });
  });
});
