import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { observedUploads } from '../../../server/registry/observed-uploads.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { Registry } from '../../../server/registry/repository.js';
import { Uploads } from '../../../server/registry/uploads.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { directViews } from '../../../server/storage/views.js';
import { silentLogger } from '../../../server/util/log.js';
import { ManualClock } from '../../support/clock.js';
import { sha256 } from '../../support/image.js';

function setup() {
  const clock = new ManualClock({ start: 1_000_000 });
  const driver = directViews(new InMemoryDriver());
  const inner = new Uploads(driver, { ttlSeconds: 3600, clock, log: silentLogger });
  const heard: number[] = [];
  const uploads = observedUploads(inner, (seconds) => heard.push(seconds), clock);
  const registry = new Registry(driver, { allowSparse: false });
  return { uploads, registry, heard, advance: (ms: number) => clock.advance(ms) };
}

describe('observed uploads', () => {
  it('GIVEN a session started 2.5 s ago WHEN it completes THEN the observer hears 2.5 seconds once', async () => {
    const { uploads, registry, heard, advance } = setup();
    const data = Buffer.from('observed bytes');
    const s = await uploads.append(await uploads.start('repo'), Readable.from([data]));
    advance(2500);
    await uploads.complete(s, parseDigest(sha256(data)), registry.repository('repo').blobs);
    expect(heard).toEqual([2.5]);
  });

  it('GIVEN a digest that does not match WHEN the completion fails THEN the observer hears nothing', async () => {
    const { uploads, registry, heard } = setup();
    const s = await uploads.append(await uploads.start('repo'), Readable.from([Buffer.from('a')]));
    const wrong = parseDigest(sha256(Buffer.from('b')));
    await expect(
      uploads.complete(s, wrong, registry.repository('repo').blobs),
    ).rejects.toMatchObject({ code: 'DIGEST_INVALID' });
    expect(heard).toEqual([]);
  });

  it('GIVEN the decorated service WHEN a session is read back THEN every other call is the inner one', async () => {
    const { uploads } = setup();
    const s = await uploads.start('repo');
    await expect(uploads.get('repo', s.id)).resolves.toMatchObject({ id: s.id, offset: 0 });
  });
});
