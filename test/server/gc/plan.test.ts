import { describe, expect, it } from 'vitest';
import type { RetentionPolicy } from '../../../server/config/types.js';
import {
  blobCandidates,
  expiredUploads,
  plan,
  planBlobs,
  planLinks,
  planRepoRetention,
  planSegments,
  planUploads,
  retentionKeys,
  scanLinks,
  segmentCandidates,
} from '../../../server/gc/plan.js';
import type { ManifestItem } from '../../../server/gc/report.js';
import { compilePolicies } from '../../../server/gc/retention.js';
import type { Ages } from '../../../server/gc/snapshot.js';
import { parseDigest } from '../../../server/registry/reference.js';
import { Paths } from '../../../server/storage/paths.js';
import { silentLogger } from '../../../server/util/log.js';
import { ages, digest, segmentKey, snapshot } from '../../support/gc.js';

const NOW = 1_700_000_000_000;
const GRACE_MS = 600_000;
const CUTOFF = NOW - GRACE_MS;
const OLD = CUTOFF - 1;
const TTL_MS = 12 * 3600_000;

const [a, b, c, m1, m2] = ['a', 'b', 'c', 'm1', 'm2'].map(digest) as [
  string,
  string,
  string,
  string,
  string,
];
const link = (repo: string, d: string) => Paths.layer(repo, parseDigest(d));
const manifestKey = (repo: string, d: string) => Paths.manifest(repo, parseDigest(d));
const policy = (p: Omit<RetentionPolicy, 'repositories'>) =>
  compilePolicies([{ repositories: ['**'], ...p }])[0]!;
const condemned = (repo: string, d: string): ManifestItem => ({
  kind: 'manifest',
  key: manifestKey(repo, d),
  bytes: 0,
  repo,
  digest: d,
  reason: 'untagged',
});

describe('planning links', () => {
  it('GIVEN a repository whose manifest names one of two linked blobs WHEN its links are scanned THEN the other is the one candidate and the named one is live', () => {
    const snap = snapshot()
      .repo('app', (r) =>
        r
          .manifest(m1, { blobs: [a] })
          .link(a)
          .link(b),
      )
      .build();

    const scan = scanLinks(snap.repos, []);

    expect(scan.candidates.map((x) => x.digest)).toEqual([b]);
    expect([...scan.live]).toEqual([a]);
    expect(scan.blind).toEqual([]);
  });

  it('GIVEN a manifest retention condemns WHEN links are scanned THEN the links only it named become candidates', () => {
    const snap = snapshot()
      .repo('app', (r) =>
        r
          .manifest(m1, { blobs: [a, b] })
          .manifest(m2, { blobs: [a] })
          .link(a)
          .link(b),
      )
      .build();

    const scan = scanLinks(snap.repos, [condemned('app', m1)]);

    expect(scan.candidates.map((x) => x.digest)).toEqual([b]);
  });

  it('GIVEN a repository with an unreadable manifest WHEN its links are scanned THEN it is blind: every link stays live and none is a candidate', () => {
    const snap = snapshot()
      .repo('app', (r) => r.unreadableManifest(m1).link(a).link(b))
      .build();

    const scan = scanLinks(snap.repos, []);

    expect(scan.blind).toEqual(['app']);
    expect(scan.candidates).toEqual([]);
    expect([...scan.live].sort()).toEqual([a, b].sort());
  });

  it('GIVEN candidate links written before the cutoff, at it, and gone since the mark WHEN planned THEN only the old one is condemned and the others stay live', () => {
    const snap = snapshot()
      .repo('app', (r) => r.link(a).link(b).link(c))
      .build();
    const written = ages()
      .written(OLD, 42, link('app', a))
      .written(CUTOFF, 42, link('app', b))
      .build();

    const { links, live } = planLinks(scanLinks(snap.repos, []), written, CUTOFF);

    expect(links).toEqual([
      {
        kind: 'link',
        key: link('app', a),
        bytes: 42,
        repo: 'app',
        digest: a,
        reason: 'unreferenced',
      },
    ]);
    expect([...live].sort()).toEqual([b, c].sort());
  });
});

describe('planning blob descriptors', () => {
  it('GIVEN descriptors of a live digest, an old one and a young one WHEN planned THEN only the old one not live is condemned', () => {
    const snap = snapshot().descriptor(a).descriptor(b).descriptor(c).build();
    const key = (d: string) => Paths.blob(parseDigest(d));
    const written = ages().written(OLD, 7, key(a), key(b)).written(NOW, 7, key(c)).build();

    const candidates = blobCandidates(snap.descriptors, new Set([a]));
    const blobs = planBlobs(candidates, written, CUTOFF);

    expect(candidates.map(([d]) => d)).toEqual([b, c]);
    expect(blobs).toEqual([
      { kind: 'blob', key: key(b), bytes: 7, digest: b, reason: 'unreferenced' },
    ]);
  });
});

describe('planning upload sessions', () => {
  it('GIVEN sessions expiring before the cutoff, at it, after it, and an unreadable one WHEN planned THEN only the one expired before is condemned, sized by its age', () => {
    const snap = snapshot()
      .session('before', CUTOFF - TTL_MS - 1)
      .session('at', CUTOFF - TTL_MS)
      .session('after', NOW)
      .unreadableSession('broken')
      .build();

    const expired = expiredUploads(snap.uploads, TTL_MS, CUTOFF);
    const uploads = planUploads(expired, ages().written(OLD, 300, Paths.upload('before')).build());

    expect(expired).toEqual(['before']);
    expect(uploads).toEqual([
      { kind: 'upload', key: Paths.upload('before'), bytes: 300, reason: 'expired' },
    ]);
  });

  it('GIVEN an expired session gone since the mark WHEN planned THEN it is condemned with no bytes', () => {
    expect(planUploads(['gone'], new Map())).toEqual([
      { kind: 'upload', key: Paths.upload('gone'), bytes: 0, reason: 'expired' },
    ]);
  });
});

describe('planning segments', () => {
  it('GIVEN segments named by a live session, a descriptor and a link, and one named by nothing WHEN scanned THEN only the orphan is a candidate', () => {
    const [live, described, linked, orphan] = ['u1', 'u2', 'u3', 'u4'].map((u) => segmentKey(u));
    const snap = snapshot()
      .session('u1', NOW, live!)
      .descriptor(a, described!)
      .repo('app', (r) => r.link(b, linked!))
      .segment(live!, described!, linked!, orphan!)
      .build();

    expect(segmentCandidates(snap, new Set(), {}, NOW)).toEqual([orphan]);
  });

  it('GIVEN a live session with an unnamed segment (a chunk being written) and an expired one WHEN scanned THEN only the expired session’s segments are candidates', () => {
    const writing = segmentKey('live', '5-b');
    const stale = segmentKey('old');
    const snap = snapshot()
      .session('live', NOW)
      .session('old', 0, stale)
      .segment(writing, stale)
      .build();

    expect(segmentCandidates(snap, new Set(['old']), {}, NOW)).toEqual([stale]);
  });

  it('GIVEN an orphan segment whose upload is deferred WHEN scanned before and after the deferral ends THEN it is a candidate only after', () => {
    const orphan = segmentKey('u1');
    const snap = snapshot().segment(orphan).build();
    const deferred = { u1: NOW + 1000 };

    expect(segmentCandidates(snap, new Set(), deferred, NOW)).toEqual([]);
    expect(segmentCandidates(snap, new Set(), deferred, NOW + 1000)).toEqual([orphan]);
  });

  it('GIVEN an unreadable descriptor WHEN segments are scanned THEN none may go', () => {
    const snap = snapshot().unreadableDescriptor(a).segment(segmentKey('u1')).build();

    expect(segmentCandidates(snap, new Set(), {}, NOW)).toBeUndefined();
  });

  it('GIVEN candidate segments, one old and one young WHEN planned THEN the old one is condemned with its size', () => {
    const [old, young] = [segmentKey('u1'), segmentKey('u2')];
    const written = ages().written(OLD, 4096, old).written(CUTOFF, 4096, young).build();

    expect(planSegments([old, young], written, CUTOFF)).toEqual([
      { kind: 'segment', key: old, bytes: 4096, reason: 'unreferenced' },
    ]);
  });
});

describe('planning retention', () => {
  it('GIVEN policies WHEN their keys are listed THEN tag ages are read only for keepTags rules and manifest ages only for manifest rules', () => {
    const repo = snapshot()
      .repo('app', (r) => r.tag('v1', m1).manifest(m1))
      .build().repos[0]!;

    expect(retentionKeys(repo, policy({}))).toEqual([]);
    expect(retentionKeys(repo, policy({ keepTags: [{ mostRecentlyPushed: 1 }] }))).toEqual([
      Paths.tag('app', 'v1'),
    ]);
    expect(retentionKeys(repo, policy({ deleteUntaggedAfterSeconds: 60 }))).toEqual([
      manifestKey('app', m1),
    ]);
  });

  it('GIVEN old untagged manifests, one unreadable, under a deleteUntagged policy WHEN planned THEN the readable one is condemned and the unreadable one counts as new', () => {
    const repo = snapshot()
      .repo('app', (r) => r.tag('v1', m1).manifest(m1).manifest(m2).unreadableManifest(a))
      .build().repos[0]!;
    const written = ages()
      .written(OLD - 3600_000, 500, manifestKey('app', m1), manifestKey('app', m2))
      .written(OLD - 3600_000, 500, manifestKey('app', a))
      .build();

    const r = planRepoRetention(
      repo,
      policy({ deleteUntaggedAfterSeconds: 60 }),
      written,
      CUTOFF,
      NOW,
    );

    expect(r.tags).toEqual([]);
    expect(r.manifests).toEqual([
      {
        kind: 'manifest',
        key: manifestKey('app', m2),
        bytes: 500,
        repo: 'app',
        digest: m2,
        reason: 'untagged',
      },
    ]);
  });

  it('GIVEN a keepTags policy and a tag gone since the mark WHEN planned THEN the old tag beyond the kept one is condemned and the gone one is not', () => {
    const repo = snapshot()
      .repo('app', (r) => r.tag('new', m1).tag('old', m2).tag('gone', m2).manifest(m1).manifest(m2))
      .build().repos[0]!;
    const written = ages()
      .written(OLD, 64, Paths.tag('app', 'new'))
      .written(OLD - 1000, 64, Paths.tag('app', 'old'))
      .build();

    const r = planRepoRetention(
      repo,
      policy({ keepTags: [{ mostRecentlyPushed: 1 }] }),
      written,
      CUTOFF,
      NOW,
    );

    expect(r.tags).toEqual([
      {
        kind: 'tag',
        key: Paths.tag('app', 'old'),
        bytes: 64,
        repo: 'app',
        tag: 'old',
        digest: m2,
        reason: 'retention',
      },
    ]);
  });
});

describe('the plan', () => {
  it('GIVEN garbage of every pointer kind WHEN planned THEN each kind is sorted by key, pointers keep what the mark read, and only candidates were statted', async () => {
    const orphan = segmentKey('u9');
    const snap = snapshot()
      .descriptor(a, segmentKey('ua'))
      .descriptor(b, segmentKey('ub'))
      .repo('zeta', (r) => r.link(b, segmentKey('ub')))
      .repo('alpha', (r) => r.link(a, segmentKey('ua')))
      .segment(segmentKey('ua'), segmentKey('ub'), orphan)
      .build();
    const asked: string[] = [];
    const stat = async (keys: readonly string[]): Promise<Ages> => {
      asked.push(...keys);
      return new Map(keys.map((k) => [k, { modified: OLD, size: 1 }]));
    };

    const p = await plan(
      { snap, policies: [], now: NOW, cutoff: CUTOFF, deferred: {}, uploadTtlMs: TTL_MS },
      { ages: stat, log: silentLogger },
    );

    expect(p.links.map((i) => i.repo)).toEqual(['alpha', 'zeta']);
    expect(p.blobs.map((i) => i.digest)).toEqual([a, b].sort());
    expect(p.segments.map((i) => i.key)).toEqual([orphan]);
    expect(p.pointers.get(link('alpha', a))?.segments).toEqual([segmentKey('ua')]);
    expect(p.pointers.get(Paths.blob(parseDigest(b)))?.segments).toEqual([segmentKey('ub')]);
    expect(asked.sort()).toEqual(
      [
        link('alpha', a),
        link('zeta', b),
        Paths.blob(parseDigest(a)),
        Paths.blob(parseDigest(b)),
        orphan,
      ].sort(),
    );
  });

  it('GIVEN a repository with an unreadable manifest WHEN planned THEN no descriptor is a candidate', async () => {
    const snap = snapshot()
      .descriptor(a)
      .repo('app', (r) => r.unreadableManifest(m1))
      .build();
    const everythingOld = async (keys: readonly string[]): Promise<Ages> =>
      new Map(keys.map((k) => [k, { modified: OLD, size: 1 }]));

    const p = await plan(
      { snap, policies: [], now: NOW, cutoff: CUTOFF, deferred: {}, uploadTtlMs: TTL_MS },
      { ages: everythingOld, log: silentLogger },
    );

    expect(p.blobs).toEqual([]);
  });
});
