import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { stringify } from 'yaml';
import type { AuthConfig } from '../../server/config/types.js';
import { basic } from '../support/auth.js';
import { Client } from '../support/image.js';
import { spawnBerth, type BerthProcess } from '../support/process.js';
import { tool } from '../support/tools.js';
import { scratchDir } from '../support/scratch.js';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCREENSHOTS = join(root, 'docs', 'screenshots');

/** buildUi compiles the web UI as `npm run build` does (dist/ui). */
export function buildUi(): void {
  execFileSync(process.execPath, [join(root, 'ui', 'build.mjs')], { stdio: 'inherit' });
}

/**
 * launchChromium starts Debian's chromium (installed by `node test/tools/ensure.mjs chromium`)
 * headless through playwright-core; a missing browser throws, the tests never skip.
 */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: tool('chromium'),
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

/**
 * startBerth runs the real `berth server` process with `auth` and `extra`, storing into
 * `dataRoot` (default: a fresh folder).
 */
export async function startBerth(
  auth: AuthConfig,
  extra: Record<string, unknown> = {},
  dataRoot?: string,
): Promise<BerthProcess> {
  const dir = scratchDir('berth-ui-');
  const file = join(dir, 'berth.yaml');
  writeFileSync(
    file,
    stringify({
      http: { secret: 'ui-test-secret' },
      storage: { driver: 'filesystem', filesystem: { root: dataRoot ?? join(dir, 'data') } },
      notifications: { pollMillis: 100 },
      auth,
      ...extra,
    }),
  );
  return spawnBerth({ BERTH_CONFIG: file });
}

/** clientAs is a registry client that pushes over HTTP as `user`. */
export function clientAs(url: string, user: string, password: string): Client {
  return new Client((path, init = {}) =>
    fetch(new URL(path, url), {
      redirect: 'manual',
      ...init,
      headers: {
        ...(init.headers as Record<string, string>),
        authorization: basic(user, password),
      },
    }),
  );
}
