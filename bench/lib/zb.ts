import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { scratchDir } from '../../test/support/scratch.js';

export interface ZbResult {
  test: string;
  rps: number;
  complete: number;
  failed: number;
  errors: string[];
  p50: number;
  p99: number;
  wallMs: number;
}

/** parseGoDuration turns Go's time.Duration text ("1.2ms", "855µs", "1m2.5s") into ms. */
export function parseGoDuration(s: string): number {
  const units: Record<string, number> = {
    h: 3_600_000,
    m: 60_000,
    s: 1000,
    ms: 1,
    us: 0.001,
    µs: 0.001,
    μs: 0.001,
    ns: 0.000001,
  };
  let ms = 0;
  let matched = false;
  for (const m of s.trim().matchAll(/([\d.]+)(h|ms|m|s|us|µs|μs|ns)/g)) {
    ms += Number(m[1]) * units[m[2]!]!;
    matched = true;
  }
  return matched ? ms : NaN;
}

/** parseZb reads zb's text report (one block per test, "Test name:" first). */
export function parseZb(out: string): ZbResult[] {
  const res: ZbResult[] = [];
  for (const block of out.split(/^Test name:\s*/m).slice(1)) {
    const line = (k: string) => new RegExp(`^${k}:?\\s+(.+)$`, 'm').exec(block)?.[1]?.trim();
    const errors = [...block.matchAll(/^Error\s+(.+?)\s+count:\s+(\d+)/gm)].map(
      (m) => `${m[1]} ×${m[2]}`,
    );
    res.push({
      test: block.split('\n')[0]!.trim(),
      rps: Number(line('Requests per second')),
      complete: Number(line('Complete requests')),
      failed: Number(line('Failed requests')),
      errors,
      p50: parseGoDuration(line('p50') ?? ''),
      p99: parseGoDuration(line('p99') ?? ''),
      wallMs: parseGoDuration(line('Time taken for tests') ?? ''),
    });
  }
  return res;
}

/** runZb runs zot's zb for one test (regex anchored) and returns its parsed result. */
export async function runZb(
  bin: string,
  url: string,
  test: string,
  concurrency: number,
  requests: number,
  repo: string,
): Promise<{ result?: ZbResult; output: string; code: number | null }> {
  const dir = scratchDir('bench-zb-');
  const esc = test.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const args = [
    '-c',
    String(concurrency),
    '-n',
    String(requests),
    '-t',
    `^${esc}$`,
    '-d',
    dir,
    '-r',
    repo,
    url,
  ];
  try {
    const { out, code } = await new Promise<{ out: string; code: number | null }>((resolve) => {
      const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const timer = setTimeout(() => p.kill('SIGKILL'), 600_000);
      p.once('exit', (code) => {
        clearTimeout(timer);
        resolve({ out, code });
      });
    });
    return { result: parseZb(out)[0], output: out, code };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
