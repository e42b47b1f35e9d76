import { readFileSync, writeFileSync } from 'node:fs';

/**
 * resetPeak clears the peak RSS (VmHWM) of each process by writing 5 to
 * /proc/<pid>/clear_refs (Linux ≥ 4.0; needs the right to write there), so that the next
 * peakRss reads the peak of one workload. Returns false when it could not.
 */
export function resetPeak(pids: number[]): boolean {
  let ok = true;
  for (const p of pids) {
    try {
      writeFileSync(`/proc/${p}/clear_refs`, '5');
    } catch {
      ok = false;
    }
  }
  return ok;
}

/** peakRss sums VmHWM (bytes) over `pids`: an upper bound of the tree's peak. */
export function peakRss(pids: number[]): number {
  let sum = 0;
  for (const p of pids) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) sum += Number(m[1]) * 1024;
    } catch {
      // gone
    }
  }
  return sum;
}

/** cpuSeconds sums user+system CPU time (s) over `pids` from /proc/<pid>/stat. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
}
