import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { isRegistryError } from '../errors.js';
import { tarStream, type TarEntry } from '../image/tar.js';
import { createDriver, createServices } from '../server.js';
import { createLogger } from '../util/log.js';
import { importArchive } from './import.js';

export const IMPORT_USAGE = `usage:
  berth import [--config FILE] [--repository NAME [--tag TAG]] SOURCE
    SOURCE: oci:DIR | oci-archive:FILE | docker-archive:FILE | DIR | FILE (gzip optional)
`;

/**
 * importCommand is `berth import`: the import of `POST /v2/_berth/import` from a path on this
 * machine (an OCI layout directory, or an archive file), written straight into the storage the
 * config names, with no registry API and no authorization (whoever runs it holds the storage's
 * credentials; `auth.immutableTags` still hold). Prints the JSON summary; resolves with the
 * exit status: 0 done, 1 refused (the error's message on stderr), 2 bad arguments.
 */
export async function importCommand(args: string[]): Promise<number> {
  let a: { config?: string; repository?: string; tag?: string; source: string };
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        config: { type: 'string' },
        repository: { type: 'string' },
        tag: { type: 'string' },
      },
      allowPositionals: true,
    });
    if (positionals.length !== 1) throw new Error('SOURCE: give one');
    a = { ...values, source: positionals[0]! };
  } catch (err) {
    process.stderr.write(`berth import: ${(err as Error).message}\n${IMPORT_USAGE}`);
    return 2;
  }
  const config = await loadConfig({ file: a.config });
  const log = createLogger(config.log.level, { pid: process.pid, command: 'import' }, (l) =>
    process.stderr.write(l),
  );
  const driver = createDriver(config);
  const s = createServices(config, driver, log);
  // A peer of the storage like any server (ADR 0012): tag writes wait for it to have joined.
  await s.peers.start();
  // The storage's waits (the tag-write gate, retries) run on unref'd timers: without a handle
  // of its own the process would exit in the middle of one, as if it had finished.
  const alive = setInterval(() => undefined, 60_000);
  try {
    const result = await importArchive(
      await open(a.source.replace(/^(oci|oci-archive|docker-archive):/, '')),
      {
        repository: a.repository,
        tag: a.tag,
        maxBytes: Number.MAX_SAFE_INTEGER,
        manifestBytes: config.limits.manifestBytes,
        authorize: () => undefined,
        immutable: (name, tag) => s.auth.policy.immutableTag(name, tag),
      },
      { registry: s.registry, uploads: s.uploads, log },
    );
    await new Promise<void>((r) => process.stdout.write(JSON.stringify(result) + '\n', () => r()));
    return 0;
  } catch (err) {
    if (!isRegistryError(err) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    process.stderr.write(`berth import: ${a.source}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    clearInterval(alive);
    await s.peers.stop();
    await driver.close?.();
  }
}

/** open streams a file as it is, and a directory as a tar of its regular files. */
async function open(path: string): Promise<AsyncIterable<Buffer>> {
  if (!(await stat(path)).isDirectory()) return createReadStream(path, { highWaterMark: 1 << 20 });
  const entries: TarEntry[] = [];
  for (const file of await readdir(path, { recursive: true, withFileTypes: true })) {
    if (!file.isFile()) continue;
    const full = join(file.parentPath, file.name);
    const size = (await stat(full)).size;
    entries.push({ type: 'file', path: relative(path, full), mode: 0o644, size, source: full });
  }
  return tarStream(entries, 0);
}
