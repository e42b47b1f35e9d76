/**
 * ImageText is what search reads of one manifest: the OCI annotations
 * `org.opencontainers.image.title`, `.description` and `.source`, each when present.
 */
export interface ImageText {
  title?: string;
  description?: string;
  source?: string;
}

/**
 * SearchDocument is one repository's entry in the search index (ADR 0023): its tags (tag →
 * digest) and, per manifest digest stored in it, the manifest's {@link ImageText}. `rev`
 * counts the document's writes, so no two versions of it have the same bytes.
 */
export interface SearchDocument {
  repository: string;
  rev: number;
  tags: Record<string, string>;
  manifests: Record<string, ImageText>;
}

/** SearchResult is one repository a query found. */
export interface SearchResult extends ImageText {
  repository: string;
  /** tags are the tags that matched, or every tag when none did. In byte order. */
  tags: string[];
  /** matched says what matched: the name, a tag, an annotation. */
  matched: Match[];
}

export type Match = 'name' | 'tag' | 'annotation';

const ANNOTATIONS = {
  title: 'org.opencontainers.image.title',
  description: 'org.opencontainers.image.description',
  source: 'org.opencontainers.image.source',
} as const;

/** MAX_TEXT bounds each annotation value kept in a document. */
const MAX_TEXT = 1024;

/** emptyDocument is the document of a repository nothing was indexed for yet. */
export function emptyDocument(repository: string): SearchDocument {
  return { repository, rev: 0, tags: {}, manifests: {} };
}

/** isEmpty: the document names no tag and no manifest (its repository's last one went). */
export function isEmpty(doc: SearchDocument): boolean {
  return Object.keys(doc.tags).length === 0 && Object.keys(doc.manifests).length === 0;
}

/** imageText picks the searched annotations out of a manifest's `annotations`. */
export function imageText(annotations: Record<string, string> | undefined): ImageText {
  const out: ImageText = {};
  if (!annotations) return out;
  for (const [field, key] of Object.entries(ANNOTATIONS) as [keyof ImageText, string][]) {
    const v = annotations[key];
    if (typeof v === 'string' && v !== '') out[field] = v.slice(0, MAX_TEXT);
  }
  return out;
}

/** parseDocument reads a stored document; anything malformed reads as empty. */
export function parseDocument(repository: string, raw: Buffer): SearchDocument {
  try {
    const v = JSON.parse(raw.toString('utf8')) as Partial<SearchDocument>;
    return {
      repository,
      rev: typeof v.rev === 'number' ? v.rev : 0,
      tags: v.tags && typeof v.tags === 'object' ? v.tags : {},
      manifests: v.manifests && typeof v.manifests === 'object' ? v.manifests : {},
    };
  } catch {
    return emptyDocument(repository);
  }
}

const has = (text: string | undefined, term: string) =>
  text !== undefined && text.toLowerCase().includes(term);

const textMatches = (t: ImageText, term: string) =>
  has(t.title, term) || has(t.description, term) || has(t.source, term);

/**
 * matchDocument is the one matcher: a case-insensitive substring match of `term` on the
 * repository name, its tags and the annotations of its manifests. Undefined when nothing
 * matched, or when the document is empty. The text shown is that of the first manifest
 * whose annotations matched, else the manifest tagged `latest`, else of the first tag (in
 * byte order) whose manifest has any, else of any manifest.
 */
export function matchDocument(doc: SearchDocument, term: string): SearchResult | undefined {
  if (isEmpty(doc)) return undefined;
  const t = term.toLowerCase();
  const tags = Object.keys(doc.tags).sort();
  const matched: Match[] = [];
  if (has(doc.repository, t)) matched.push('name');
  const tagHits = tags.filter((tag) => has(tag, t));
  if (tagHits.length > 0) matched.push('tag');
  const textHit = Object.values(doc.manifests).find((m) => textMatches(m, t));
  if (textHit) matched.push('annotation');
  if (matched.length === 0) return undefined;
  const shown = textHit ?? shownText(doc, tags);
  return {
    repository: doc.repository,
    tags: tagHits.length > 0 ? tagHits : tags,
    matched,
    ...shown,
  };
}

function shownText(doc: SearchDocument, tags: string[]): ImageText {
  const text = (digest: string | undefined) =>
    digest === undefined ? undefined : doc.manifests[digest];
  const filled = (x: ImageText | undefined): x is ImageText =>
    x !== undefined && Object.keys(x).length > 0;
  const latest = text(doc.tags.latest);
  if (filled(latest)) return latest;
  for (const tag of tags) {
    const x = text(doc.tags[tag]);
    if (filled(x)) return x;
  }
  return Object.values(doc.manifests).find(filled) ?? {};
}
