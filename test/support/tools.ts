import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/**
 * tool finds a real part installed by `node test/tools/ensure.mjs` (in
 * `${BERTH_TOOLS:-~/.cache/berth/tools}/bin`) or on PATH, and throws when missing:
 * tests never skip a missing real part.
 */
export function tool(name: string): string {
  const tools = process.env.BERTH_TOOLS ?? join(homedir(), '.cache', 'berth', 'tools');
  const dirs = [join(tools, 'bin'), ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
  for (const d of dirs) {
    try {
      accessSync(join(d, name), constants.X_OK);
      return join(d, name);
    } catch {
      // try the next one
    }
  }
  throw new Error(
    `${name} is not installed: run \`node test/tools/ensure.mjs\` (npm test does this first)`,
  );
}
