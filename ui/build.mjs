// Compiles the web UI into dist/ui: one bundled, minified script, the stylesheet and the shell.
// `npm run build` runs it after tsc; the server serves dist/ui (server/http/ui.ts).
import { build } from 'esbuild';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'ui');
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: [join(here, 'src', 'main.tsx')],
  outfile: join(out, 'app.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
});
await copyFile(join(here, 'src', 'app.css'), join(out, 'app.css'));
await copyFile(join(here, 'index.html'), join(out, 'index.html'));
const pkg = JSON.parse(await readFile(join(here, '..', 'package.json'), 'utf8'));
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
await writeFile(join(out, 'berth-ui.json'), JSON.stringify({ version: pkg.version, bytes }) + '\n');
