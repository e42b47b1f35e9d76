import { describe, expect, it } from 'vitest';
import type { RestoredItem } from '../../../server/gc/report.js';
import { neededBy, restoreNeeded, type RestoreTarget } from '../../../server/gc/restore.js';
import type { RetentionTarget } from '../../../server/gc/retention.js';
import type { UndoEntry } from '../../../server/gc/state.js';
import { parseDigest } from '../../../server/registry/reference.js';
import type { StoredManifest } from '../../../server/registry/repository.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { digest, snapshot } from '../../support/gc.js';
import { image, index, type Built } from '../../support/image.js';

const undoOf = (repo: string, d: string): UndoEntry => ({
  key: Paths.layer(repo, parseDigest(d)),
  repo,
  digest: d,
  data: `link of ${d}`,
});
const stored = (m: Built): StoredManifest => ({
  digest: parseDigest(m.digest),
  mediaType: m.mediaType,
  body: m.body,
});

describe('what a push that raced the sweep needs back', () => {
  it('GIVEN a manifest pushed naming a blob whose link was deleted WHEN needs are found THEN that link comes back, but not one nothing names nor one linked again', () => {
    const [named, unnamed, relinked] = ['named', 'unnamed', 'relinked'].map(digest) as [
      string,
      string,
      string,
    ];
    const repo = snapshot()
      .repo('app', (r) => r.manifest(digest('pushed'), { blobs: [named, relinked] }).link(relinked))
      .build().repos[0]!;
    const undo = [undoOf('app', named), undoOf('app', unnamed), undoOf('app', relinked)];

    const need = neededBy(repo, [...undo, undoOf('other', named)]);

    expect(need.links).toEqual([undoOf('app', named)]);
    expect(need.manifests).toEqual([]);
  });

  it('GIVEN an index pushed naming a deleted child index that names a deleted image WHEN needs are found THEN both come back, the innermost first, with the image’s links', () => {
    const leaf = image().layer(10).build();
    const child = index([leaf]);
    const top = index([child]);
    const repo = snapshot()
      .repo('app', (r) => r.manifest(top.digest, { children: [child.digest] }))
      .build().repos[0]!;
    const deleted = new Map([
      [child.digest, stored(child)],
      [leaf.digest, stored(leaf)],
    ]);
    const layer = leaf.blobs[1]!.digest;

    const need = neededBy(repo, [undoOf('app', layer)], deleted);

    expect(need.manifests.map((m) => m.digest.value)).toEqual([leaf.digest, child.digest]);
    expect(need.links).toEqual([undoOf('app', layer)]);
  });
});

describe('restoring what a push needs', () => {
  it('GIVEN needed links and manifests, one the registry refuses WHEN restored THEN links are written, the other manifest is put back, and each restoration is told', async () => {
    const [refused, accepted] = [image().layer(1).build(), image().layer(2).build()];
    const top = index([refused, accepted]);
    const repo = snapshot()
      .repo('app', (r) =>
        r.manifest(top.digest, {
          blobs: [digest('layer')],
          children: [refused.digest, accepted.digest],
        }),
      )
      .build().repos[0]!;
    const written: [string, string][] = [];
    const put: string[] = [];
    const registry: RetentionTarget = {
      repository: () => ({
        untag: async () => undefined,
        delete: async () => undefined,
        get: async () => {
          throw new Error('not used');
        },
        put: async (body: Buffer) => {
          if (body.equals(refused.body)) throw new Error('refused');
          put.push(body.toString());
        },
      }),
    };
    const target: RestoreTarget = {
      driver: { put: async (key, data) => void written.push([key, data.toString()]) },
      registry,
      log: silentLogger,
    };
    const told: RestoredItem[] = [];

    await restoreNeeded(
      [repo],
      [undoOf('app', digest('layer'))],
      new Map([
        [
          'app',
          new Map([
            [refused.digest, stored(refused)],
            [accepted.digest, stored(accepted)],
          ]),
        ],
      ]),
      target,
      (item) => told.push(item),
    );

    expect(written).toEqual([[undoOf('app', digest('layer')).key, `link of ${digest('layer')}`]]);
    expect(put).toEqual([accepted.body.toString()]);
    expect(told.map((i) => [i.kind, i.digest, i.reason])).toEqual([
      ['link', digest('layer'), 'needed'],
      ['manifest', accepted.digest, 'needed'],
    ]);
  });
});
