import type { Descriptor } from './spec.js';
import type { ProgressSink } from './copy.js';

/**
 * barProgress draws one line on a terminal, redrawn with `\r` at most every 100 ms:
 * a bar, bytes done of the total and blobs done of the total.
 */
export function barProgress(
  write: (s: string) => void,
  now: () => number = Date.now,
): ProgressSink {
  let total = 0;
  let blobs = 0;
  let done = 0;
  let blobsDone = 0;
  let last = 0;
  const draw = (force: boolean) => {
    if (!force && now() - last < 100) return;
    last = now();
    const frac = total === 0 ? 1 : Math.min(1, done / total);
    const bar = '#'.repeat(Math.round(frac * 30)).padEnd(30, ' ');
    write(`\r[${bar}] ${size(done)} / ${size(total)}  ${blobsDone}/${blobs} blobs `);
  };
  return {
    start: (bytes, count) => {
      total = bytes;
      blobs = count;
      draw(true);
    },
    bytes: (n) => {
      done += n;
      draw(false);
    },
    blob: () => {
      blobsDone++;
      draw(blobsDone === blobs);
    },
    end: () => write('\n'),
  };
}

/** logProgress writes one JSON log line per blob (info level), nothing else. */
export function logProgress(write: (s: string) => void): ProgressSink {
  return {
    start: () => {},
    bytes: () => {},
    blob: (d: Descriptor, copied: boolean) =>
      write(
        JSON.stringify({
          time: new Date().toISOString(),
          level: 'info',
          msg: copied ? 'blob copied' : 'blob skipped',
          digest: d.digest,
          size: d.size,
        }) + '\n',
      ),
    end: () => {},
  };
}

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
