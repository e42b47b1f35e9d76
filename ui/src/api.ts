// The UI's registry client: every call goes to the same registry API with the signed-in
// user's own credentials, so the UI never sees more than the API gives that user. It answers
// Basic challenges (htpasswd) and Bearer challenges (the token issuer) as docker does.

export interface Credentials {
  user: string;
  password: string;
}

const KEY = 'berth.credentials';
let creds: Credentials | null = readCreds();
const tokens = new Map<string, string>();

function readCreds(): Credentials | null {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw === null ? null : (JSON.parse(raw) as Credentials);
  } catch {
    return null;
  }
}

export function currentUser(): string | null {
  return creds?.user ?? null;
}

export function setCredentials(c: Credentials | null): void {
  creds = c;
  tokens.clear();
  if (c === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, JSON.stringify(c));
}

function basicHeader(c: Credentials): string {
  const bytes = new TextEncoder().encode(`${c.user}:${c.password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

/** ApiError is a refused or failed call, with the OCI error code when the registry sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** guessScope is the token scope a path most likely needs, to send a cached token up front. */
function guessScope(path: string, method: string): string {
  const m = /^\/v2\/(.+?)\/(?:tags|manifests|blobs|referrers)\//.exec(path);
  if (!m) return 'registry:catalog:*';
  return `repository:${m[1]}:${method === 'DELETE' ? 'delete' : 'pull'}`;
}

function challengeParams(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)="([^"]*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

async function fetchToken(challenge: string, scope: string): Promise<string | undefined> {
  const p = challengeParams(challenge);
  if (p.realm === undefined) return undefined;
  const url = new URL(p.realm, location.href);
  if (url.origin !== location.origin) return undefined; // never send credentials elsewhere
  if (p.service !== undefined) url.searchParams.set('service', p.service);
  url.searchParams.set('scope', scope);
  const headers: Record<string, string> = {};
  if (creds) headers.Authorization = basicHeader(creds);
  const r = await fetch(url, { headers, credentials: 'omit' });
  if (!r.ok) return undefined;
  const body = (await r.json()) as { token?: string; access_token?: string };
  return body.token ?? body.access_token;
}

/**
 * call sends one request, answering auth challenges: Berth's token issuer first refuses Basic
 * credentials with a challenge naming no scope (then the guessed one is asked for), and a token
 * lacking the scope with one naming it (`insufficient_scope`), so up to two rounds.
 */
export async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const method = init.method ?? 'GET';
  const scope = guessScope(path, method);
  const send = (auth: string | undefined) => {
    const headers = new Headers(init.headers);
    if (auth !== undefined) headers.set('Authorization', auth);
    return fetch(path, { ...init, headers, credentials: 'omit', cache: 'no-store' });
  };
  const cached = tokens.get(scope);
  let r = await send(cached ? `Bearer ${cached}` : creds ? basicHeader(creds) : undefined);
  for (let round = 0; round < 2; round++) {
    const challenge = r.headers.get('www-authenticate') ?? '';
    if (r.status !== 401 || !/^bearer /i.test(challenge)) break;
    const asked = challengeParams(challenge).scope ?? scope;
    const token = await fetchToken(challenge, asked);
    if (token === undefined) break;
    tokens.set(asked, token);
    tokens.set(scope, token);
    r = await send(`Bearer ${token}`);
  }
  return r;
}

async function fail(r: Response): Promise<never> {
  let code = 'UNKNOWN';
  let message = `${r.status} ${r.statusText}`;
  try {
    const body = (await r.json()) as { errors?: { code: string; message: string }[] };
    const e = body.errors?.[0];
    if (e) {
      code = e.code;
      message = e.message;
    }
  } catch {
    // not an OCI error body
  }
  throw new ApiError(r.status, code, message);
}

export async function getJson<T>(
  path: string,
  init: RequestInit = {},
): Promise<{ body: T; res: Response }> {
  const r = await call(path, init);
  if (!r.ok) return fail(r);
  return { body: (await r.json()) as T, res: r };
}

/** nextLink is the path of a `Link: <…>; rel="next"` header. */
export function nextLink(r: Response): string | undefined {
  const link = r.headers.get('link');
  const m = link ? /<([^>]+)>;\s*rel="next"/.exec(link) : null;
  return m?.[1];
}

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string; variant?: string };
}

export interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  artifactType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface Fetched {
  manifest: Manifest;
  raw: string;
  digest: string;
  mediaType: string;
  size: number;
}

const enc = (name: string) => name.split('/').map(encodeURIComponent).join('/');

export async function getManifest(repo: string, ref: string): Promise<Fetched> {
  const r = await call(`/v2/${enc(repo)}/manifests/${encodeURIComponent(ref)}`, {
    headers: { Accept: MANIFEST_ACCEPT },
  });
  if (!r.ok) return fail(r);
  const raw = await r.text();
  return {
    manifest: JSON.parse(raw) as Manifest,
    raw,
    digest: r.headers.get('docker-content-digest') ?? '',
    mediaType: (r.headers.get('content-type') ?? '').split(';')[0]!,
    size: new TextEncoder().encode(raw).length,
  };
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    Labels?: Record<string, string>;
    WorkingDir?: string;
    User?: string;
  };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
}

export async function getConfig(repo: string, digest: string): Promise<ImageConfig> {
  const r = await call(`/v2/${enc(repo)}/blobs/${digest}`);
  if (!r.ok) return fail(r);
  return (await r.json()) as ImageConfig;
}

/**
 * listTags lists every tag of `repo`, following `Link` pages: a first small page of `first`
 * names (enough for the first screen, so it can show at once), then pages of `n`. `onPage`
 * gets each page's names as they arrive.
 */
export async function listTags(
  repo: string,
  n: number,
  onPage: (tags: string[]) => void = () => undefined,
  first = n,
): Promise<string[]> {
  const out: string[] = [];
  let path: string | undefined = `/v2/${enc(repo)}/tags/list?n=${first}`;
  while (path !== undefined) {
    const { body, res } = await getJson<{ tags: string[] | null }>(path);
    const page = body.tags ?? [];
    out.push(...page);
    onPage(page);
    const next = nextLink(res);
    if (next === undefined) break;
    const url = new URL(next, location.origin);
    url.searchParams.set('n', String(n));
    path = `${url.pathname}${url.search}`;
  }
  return out;
}

export async function referrers(repo: string, digest: string): Promise<Descriptor[]> {
  const { body } = await getJson<Manifest>(`/v2/${enc(repo)}/referrers/${digest}`);
  return body.manifests ?? [];
}

export async function deleteManifest(repo: string, ref: string): Promise<void> {
  const r = await call(`/v2/${enc(repo)}/manifests/${encodeURIComponent(ref)}`, {
    method: 'DELETE',
  });
  if (!r.ok) return fail(r);
}

export interface Access {
  user: string | null;
  admin: boolean;
  deletes: boolean;
  repository?: { name: string; actions: string[] };
}

export async function access(repo?: string): Promise<Access> {
  const q = repo === undefined ? '' : `?repository=${encodeURIComponent(repo)}`;
  return (await getJson<Access>(`/v2/_berth/access${q}`)).body;
}

/** signIn checks credentials against the registry (`GET /v2/`) before keeping them. */
export async function signIn(c: Credentials): Promise<void> {
  const before = creds;
  setCredentials(c);
  const r = await call('/v2/');
  if (r.ok) return;
  setCredentials(before);
  throw new ApiError(r.status, 'UNAUTHORIZED', 'The user name or password is wrong.');
}

/**
 * streamEvents reads the events stream (SSE over fetch, so it carries credentials) and calls
 * `on` for each event until `signal` aborts.
 */
export async function streamEvents(
  on: (e: RegistryEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const r = await call('/v2/_berth/events/stream', {
    signal,
    headers: { Accept: 'text/event-stream' },
  });
  if (!r.ok || !r.body) return fail(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      if (data !== '') on(JSON.parse(data) as RegistryEvent);
    }
  }
}

export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: string;
  target: { repository?: string; digest?: string; tag?: string; mediaType?: string; size?: number };
  actor?: { name?: string };
}

export interface SearchResult {
  repository: string;
  tags: string[];
  matched: string[];
  title?: string;
  description?: string;
  source?: string;
}

export { enc };

/** RepositoryUsage is `GET /v2/_berth/storage/<name>`: what one repository stores. */
export interface RepositoryUsage {
  repository: string;
  tags: number;
  manifests: number;
  manifestBytes: number;
  blobs: number;
  blobBytes: number;
  bytes: number;
}

export async function repositoryStorage(repo: string): Promise<RepositoryUsage> {
  return (await getJson<RepositoryUsage>(`/v2/_berth/storage/${enc(repo)}`)).body;
}

/** GcPlanned is one object a GC dry run would delete. */
export interface GcPlanned {
  kind: string;
  key: string;
  bytes: number;
  reason: string;
  repo?: string;
  tag?: string;
  digest?: string;
}

/** GcView is `GET /v2/_berth/gc` (admins): settings, retention policies and a dry run. */
export interface GcView {
  schedule: { enabled: boolean; intervalSeconds: number; graceSeconds: number; dryRun: boolean };
  policies: {
    repositories: string[];
    keepTags?: { patterns?: string[]; mostRecentlyPushed?: number }[];
    deleteUntaggedAfterSeconds?: number;
    deleteReferrers?: boolean;
  }[];
  report?: {
    runId: string;
    dryRun: boolean;
    startedAt: string;
    finishedAt: string;
    cutoff: string;
    counts: Record<string, number>;
    bytesFreed: number;
    deleted: GcPlanned[];
    truncated: boolean;
  };
}

export async function gcReport(): Promise<GcView> {
  return (await getJson<GcView>('/v2/_berth/gc')).body;
}
