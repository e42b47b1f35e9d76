import { describe, expect, it } from 'vitest';
import { isRegistryError } from '../../../server/errors.js';
import { importArchive, type ImportOptions } from '../../../server/import/import.js';
import type { Digest } from '../../../server/registry/reference.js';
import { createServices } from '../../../server/server.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { silentLogger } from '../../../server/util/log.js';
import { archive } from '../../support/archive.js';
import { image } from '../../support/image.js';
import { testConfig } from '../../support/server.js';

const options: ImportOptions = {
  maxBytes: 1 << 30,
  manifestBytes: 4 << 20,
  authorize: () => undefined,
  immutable: () => false,
};

async function* chunks(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += 1000) yield b.subarray(i, i + 1000);
}

describe('importArchive', () => {
  it('GIVEN garbage collection took a blob the import stored early WHEN the import is about to link it THEN 503 UNAVAILABLE and nothing is linked, tagged or listed', async () => {
    const s = createServices(testConfig(), new InMemoryDriver(), silentLogger);
    const asked = new Set<string>();
    // The first look (before storing) is real; by the second (before linking) the blob is gone.
    const uploads = {
      ingest: s.uploads.ingest.bind(s.uploads),
      indexed: (d: Digest) => {
        if (asked.has(d.value)) return Promise.resolve(undefined);
        asked.add(d.value);
        return s.uploads.indexed(d);
      },
    };
    const tar = await archive().image(image().layer(5000).build(), 'team/app:v1').oci();

    const err = await importArchive(chunks(tar), options, {
      registry: s.registry,
      uploads,
      log: silentLogger,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(isRegistryError(err) && [err.status, err.code]).toEqual([503, 'UNAVAILABLE']);
    expect((await s.registry.catalog(undefined, 10)).items).toEqual([]);
  });
});
