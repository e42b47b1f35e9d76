/**
 * A previous release of Berth built from git history (issue 16's upgrade test): the commit's
 * tree is archived into a temp folder, `npm ci`, `npm run build`, and its own
 * `berth image build` make its image; its chart is kept beside it. The result is cached by
 * commit hash under ~/.cache/berth/releases/<commit>/, so only the first run builds.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

export interface Release {
  commit: string;
  /** chart is the release's chart folder (its CRD in chart/crds). */
  chart: string;
  /** reference and archive are its image (an OCI archive for `ctr images import`). */
  reference: string;
  digest: string;
  archive: string;
}

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, timeout: 900_000 });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`,
    );
  return r.stdout;
}

/** buildRelease builds (or finds in the cache) the chart and image of `rev`. */
export function buildRelease(rev: string): Release {
  const commit = run('git', ['rev-parse', '--verify', `${rev}^{commit}`], ROOT).trim();
  const cache = join(homedir(), '.cache', 'berth', 'releases', commit);
  const meta = join(cache, 'release.json');
  if (existsSync(meta)) return JSON.parse(readFileSync(meta, 'utf8')) as Release;

  const work = mkdtempSync(join(tmpdir(), `berth-release-${commit.slice(0, 7)}-`));
  try {
    const src = join(work, 'src');
    mkdirSync(src);
    const tar = join(work, 'src.tar');
    run('git', ['archive', '--format=tar', '-o', tar, commit], ROOT);
    run('tar', ['-xf', tar, '-C', src], work);
    run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], src);
    run('npm', ['run', 'build', '--silent'], src);
    const staged = join(work, 'out');
    mkdirSync(staged);
    const image = JSON.parse(
      run(
        process.execPath,
        [
          join(src, 'dist', 'server', 'cli.js'),
          'image',
          'build',
          '--out',
          join(work, 'layout'),
          '--archive',
          join(staged, 'berth.oci.tar'),
        ],
        src,
      ).trim(),
    ) as { reference: string; digest: string };
    cpSync(join(src, 'charts', 'berth'), join(staged, 'chart'), { recursive: true });
    const release: Release = {
      commit,
      chart: join(cache, 'chart'),
      reference: image.reference,
      digest: image.digest,
      archive: join(cache, 'berth.oci.tar'),
    };
    writeFileSync(join(staged, 'release.json'), JSON.stringify(release, null, 2));
    // Whole or nothing: a killed build leaves no half cache entry.
    mkdirSync(join(cache, '..'), { recursive: true });
    rmSync(cache, { recursive: true, force: true });
    renameSync(staged, cache);
    return release;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
