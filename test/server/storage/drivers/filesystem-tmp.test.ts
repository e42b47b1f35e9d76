import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FilesystemDriver } from '../../../../server/storage/drivers/filesystem.js';
import { scratchDir } from '../../../support/scratch.js';

function setup() {
  const root = scratchDir('berth-fstmp-');
  return { root, driver: new FilesystemDriver(root), tmp: () => readdir(join(root, '.tmp')) };
}

describe('filesystem driver temporary files', () => {
  it('GIVEN a key whose folder is a file WHEN put, putIfAbsent, putIfVersion and writeStream fail after writing their temp files THEN no temp file is left', async () => {
    const { driver, tmp } = setup();
    await driver.put('a/b', 'a file where a folder should be');

    await expect(driver.put('a/b/c', 'x')).rejects.toThrow();
    await expect(driver.putIfAbsent('a/b/c', 'x')).rejects.toThrow();
    await expect(driver.putIfVersion('a/b/c', 'x', null)).rejects.toThrow();
    await expect(driver.writeStream('a/b/c', Readable.from([Buffer.from('x')]))).rejects.toThrow();

    expect(await tmp()).toEqual([]);
  });

  it('GIVEN a stream that breaks off (an aborted PATCH) WHEN written THEN no temp file is left', async () => {
    const { driver, tmp } = setup();
    const source = Readable.from(
      (async function* () {
        yield Buffer.alloc(1024, 1);
        throw new Error('aborted');
      })(),
    );

    await expect(driver.writeStream('a/seg', source)).rejects.toThrow('aborted');
    expect(await tmp()).toEqual([]);
  });

  it('GIVEN temp files a day old and fresh ones WHEN the driver starts THEN only the day-old ones are removed, as docs/storage-layout.md says', async () => {
    const { root } = setup();
    await mkdir(join(root, '.tmp'), { recursive: true });
    await writeFile(join(root, '.tmp', 'old'), 'left by a crash');
    await writeFile(join(root, '.tmp', 'fresh'), 'another process writing now');
    const dayAgo = new Date(Date.now() - 25 * 60 * 60 * 1000);
    await utimes(join(root, '.tmp', 'old'), dayAgo, dayAgo);

    await new FilesystemDriver(root).ping();

    expect(await readdir(join(root, '.tmp'))).toEqual(['fresh']);
  });
});
