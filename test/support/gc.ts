import type {
  Age,
  ManifestRefs,
  PointerFact,
  RepoSnapshot,
  SessionFact,
  Snapshot,
} from '../../server/gc/snapshot.js';
import { parseDigest } from '../../server/registry/reference.js';
import { Paths } from '../../server/storage/paths.js';
import { sha256 } from './image.js';

/** digest is a well-formed sha256 digest named after `name`. */
export const digest = (name: string): string => sha256(name);

/** segmentKey is the key of segment `entry` of upload `upload`. */
export const segmentKey = (upload: string, entry = '0-a'): string =>
  Paths.segmentEntry(upload, entry);

/** RepoBuilder builds one repository as the gc mark reads it. */
export class RepoBuilder {
  private readonly repo: RepoSnapshot;

  constructor(name: string) {
    this.repo = { name, tags: new Map(), manifests: new Map(), links: new Map() };
  }

  tag(tag: string, manifest: string): this {
    this.repo.tags.set(tag, manifest);
    return this;
  }

  /** manifest stores a manifest naming `refs` (blobs, index children, a subject). */
  manifest(d: string, refs: Partial<ManifestRefs> = {}): this {
    this.repo.manifests.set(d, { blobs: [], children: [], ...refs });
    return this;
  }

  /** unreadableManifest stores a manifest whose references could not be read. */
  unreadableManifest(d: string): this {
    this.repo.manifests.set(d, undefined);
    return this;
  }

  /** link links blob `d` into the repository, its bytes in `segments`. */
  link(d: string, ...segments: string[]): this {
    const key = Paths.layer(this.repo.name, parseDigest(d));
    this.repo.links.set(d, { key, data: JSON.stringify({ segments }), segments });
    return this;
  }

  build(): RepoSnapshot {
    return this.repo;
  }
}

/** SnapshotBuilder builds what the gc mark reads, to test the planners without storage. */
export class SnapshotBuilder {
  private readonly uploads = new Map<string, SessionFact | undefined>();
  private readonly descriptors = new Map<string, PointerFact>();
  private readonly repos: RepoSnapshot[] = [];
  private readonly segments = new Map<string, string[]>();

  /** session is upload session `id`, started at `startedAt` (ms), naming `segments`. */
  session(id: string, startedAt: number, ...segments: string[]): this {
    this.uploads.set(id, { startedAt, segments: segments.map((key) => ({ key, size: 1 })) });
    return this;
  }

  /** unreadableSession is an upload session whose record could not be parsed. */
  unreadableSession(id: string): this {
    this.uploads.set(id, undefined);
    return this;
  }

  /** descriptor is the global descriptor of blob `d`, its bytes in `segments`. */
  descriptor(d: string, ...segments: string[]): this {
    this.descriptors.set(d, { key: Paths.blob(parseDigest(d)), data: '', segments });
    return this;
  }

  /** unreadableDescriptor is a descriptor whose segments could not be read. */
  unreadableDescriptor(d: string): this {
    this.descriptors.set(d, { key: Paths.blob(parseDigest(d)), data: '' });
    return this;
  }

  repo(name: string, build: (r: RepoBuilder) => RepoBuilder): this {
    this.repos.push(build(new RepoBuilder(name)).build());
    return this;
  }

  /** segment stores the segments `keys` (from segmentKey), listed by their upload. */
  segment(...keys: string[]): this {
    for (const key of keys) {
      const upload = Paths.segmentUpload(key);
      this.segments.set(upload, [...(this.segments.get(upload) ?? []), key]);
    }
    return this;
  }

  build(): Snapshot {
    return {
      uploads: this.uploads,
      descriptors: this.descriptors,
      repos: this.repos,
      segments: this.segments,
    };
  }
}

export const snapshot = (): SnapshotBuilder => new SnapshotBuilder();

/** AgesBuilder builds what `stat` would tell of objects: when each was written, its size. */
export class AgesBuilder {
  private readonly ages = new Map<string, Age>();

  /** written records `keys` as written at `modified` (ms), each `size` bytes. */
  written(modified: number, size: number, ...keys: string[]): this {
    for (const key of keys) this.ages.set(key, { modified, size });
    return this;
  }

  build(): Map<string, Age> {
    return this.ages;
  }
}

export const ages = (): AgesBuilder => new AgesBuilder();
