import { createHash } from 'node:crypto';
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { Readable } from 'node:stream';
import { basicAuthorization, parseChallenge, type Credentials } from './auth.js';

/**
 * RegistryClientError is a failed step against a registry: `step` names it ("upload blob
 * sha256:…"), `status` is the HTTP status (0 when no answer came), `code` the first OCI
 * error code of the answer when it had one.
 */
export class RegistryClientError extends Error {
  override readonly name = 'RegistryClientError';
  constructor(
    readonly step: string,
    readonly status: number,
    readonly code: string | undefined,
    detail: string,
  ) {
    super(
      `${step}: ${status === 0 ? 'no answer' : `HTTP ${status}`}${code ? ` ${code}` : ''}: ${detail}`,
    );
  }
}

export interface RegistryClientOptions {
  /** registry is the host and optional port (`ghcr.io`, `127.0.0.1:5000`). */
  registry: string;
  /** plainHttp speaks http instead of https. */
  plainHttp?: boolean;
  /** insecure accepts any TLS certificate. */
  insecure?: boolean;
  credentials?: Credentials;
  /** ca is PEM CA certificates trusted for https (instead of the system's). */
  ca?: string;
  /** retries is how often an answer 429 or 503 is retried (default 0). */
  retries?: number;
  /** pause waits before a retry (Retry-After, else 1 s doubling, at most 30 s). */
  pause?: (ms: number) => Promise<void>;
  /**
   * sameSiteRealmOnly sends credentials to a Bearer realm only on the registry's own site
   * (the same host, or the same last two DNS labels), never to any host a challenge names.
   */
  sameSiteRealmOnly?: boolean;
  /**
   * idleTimeoutMs ends a request whose connection has been silent this long (no answer, or a
   * body that stopped): it fails as any network error does. Default: none.
   */
  idleTimeoutMs?: number;
}

/** ManifestHead is what a HEAD of a manifest says of it. */
export interface ManifestHead {
  digest: string;
  mediaType: string;
}

/** FetchedManifest is a manifest exactly as the registry served it. */
export interface FetchedManifest {
  mediaType: string;
  digest: string;
  body: Buffer;
}

/** ReferrerDescriptor is one entry of a referrers answer. */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
}

/** MANIFEST_TYPES are the manifest media types a pull accepts. */
export const MANIFEST_TYPES = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

/** BUFFER_LIMIT is how much of a buffered answer is kept (manifests, error bodies). */
const BUFFER_LIMIT = 4 << 20;

function manifestPath(name: string, reference: string): string {
  return `/v2/${name}/manifests/${reference}`;
}

/** Body is a request body: bytes, or a function opening a fresh stream for each attempt. */
export type Body = Buffer | (() => Readable);

/** Call is one registry request: `step` names it in errors, `scope` picks its token. */
interface Call {
  step: string;
  scope: string;
  method: string;
  url: URL;
  headers?: Record<string, string>;
  body?: Body;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * RegistryClient is a small OCI Distribution client for pushing and pulling. It answers the registry's
 * `WWW-Authenticate` challenges: Bearer (a token from the realm for the request's scope, with
 * Basic credentials when it has them; tokens are kept per scope) and Basic. A request is
 * retried once after a challenge; bodies are streams opened per attempt, never buffered.
 * Every failure is a RegistryClientError.
 */
export class RegistryClient {
  private readonly base: URL;
  private readonly tokens = new Map<string, string>();
  private basic: string | undefined;

  constructor(private readonly o: RegistryClientOptions) {
    this.base = new URL(`${o.plainHttp ? 'http' : 'https'}://${o.registry}/`);
  }

  /** blobExists is a HEAD of the blob: true on 200, false on 404. */
  async blobExists(name: string, digest: string): Promise<boolean> {
    const step = `check blob ${digest}`;
    const call: Call = {
      step,
      scope: pushScope(name),
      method: 'HEAD',
      url: this.url(`/v2/${name}/blobs/${digest}`),
    };
    const r = await this.send(call);
    if (r.status === 200) return true;
    if (r.status === 404) return false;
    throw failed(step, await this.explain(call, r));
  }

  /**
   * headManifest is a HEAD of a manifest: its digest and media type, or undefined on 404.
   * Other answers throw.
   */
  async headManifest(name: string, reference: string): Promise<ManifestHead | undefined> {
    const step = `check manifest ${name}:${reference}`;
    const call: Call = {
      step,
      scope: pullScope(name),
      method: 'HEAD',
      url: this.url(manifestPath(name, reference)),
      headers: { accept: MANIFEST_TYPES.join(', ') },
    };
    const r = await this.send(call);
    if (r.status === 404) return undefined;
    const digest = header(r.headers['docker-content-digest']);
    if (r.status !== 200 || digest === undefined) throw failed(step, await this.explain(call, r));
    const mediaType = header(r.headers['content-type'])?.split(';')[0]?.trim() ?? '';
    return { digest, mediaType };
  }

  /** blobSize is a HEAD of the blob: its size, or undefined on 404. Other answers throw. */
  async blobSize(name: string, digest: string): Promise<number | undefined> {
    const step = `check blob ${digest}`;
    const call: Call = {
      step,
      scope: pullScope(name),
      method: 'HEAD',
      url: this.url(`/v2/${name}/blobs/${digest}`),
    };
    const r = await this.send(call);
    if (r.status === 404) return undefined;
    const size = Number(header(r.headers['content-length']));
    if (r.status !== 200 || !Number.isSafeInteger(size))
      throw failed(step, await this.explain(call, r));
    return size;
  }

  /**
   * pushBlob uploads a blob monolithically: POST to start an upload, then one PUT streaming
   * `size` bytes from `open()` with the digest, which the registry verifies.
   */
  async pushBlob(name: string, digest: string, size: number, open: () => Readable): Promise<void> {
    const start = `start upload of ${digest}`;
    const r = await this.send({
      step: start,
      scope: pushScope(name),
      method: 'POST',
      url: this.url(`/v2/${name}/blobs/uploads/`),
      headers: { 'content-length': '0' },
    });
    const location = r.headers.location;
    if (r.status !== 202 || !location) throw failed(start, r);
    const put = new URL(location, this.base);
    put.searchParams.set('digest', digest);
    const step = `upload blob ${digest}`;
    const done = await this.send({
      step,
      scope: pushScope(name),
      method: 'PUT',
      url: put,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: open,
    });
    if (done.status !== 201) throw failed(step, done);
  }

  /** putManifest stores a manifest under a tag or digest; resolves with the registry's digest. */
  async putManifest(
    name: string,
    reference: string,
    mediaType: string,
    body: Buffer,
  ): Promise<string | undefined> {
    const step = `put manifest ${name}:${reference}`;
    const r = await this.send({
      step,
      scope: pushScope(name),
      method: 'PUT',
      url: this.url(`/v2/${name}/manifests/${reference}`),
      headers: { 'content-type': mediaType, 'content-length': String(body.length) },
      body,
    });
    if (r.status !== 201) throw failed(step, r);
    const d = r.headers['docker-content-digest'];
    return typeof d === 'string' ? d : undefined;
  }

  /**
   * getManifest fetches a manifest by tag or digest, accepting every manifest type, and checks
   * its bytes against the digest it was asked for (or the one the registry names).
   */
  async getManifest(name: string, reference: string): Promise<FetchedManifest> {
    const step = `get manifest ${name}:${reference}`;
    const r = await this.send({
      step,
      scope: pullScope(name),
      method: 'GET',
      url: this.url(manifestPath(name, reference)),
      headers: { accept: MANIFEST_TYPES.join(', ') },
    });
    if (r.status !== 200) throw failed(step, r);
    if (r.body.length >= BUFFER_LIMIT)
      throw new RegistryClientError(step, r.status, undefined, 'manifest larger than 4 MiB');
    const digest = `sha256:${createHash('sha256').update(r.body).digest('hex')}`;
    const named = header(r.headers['docker-content-digest']);
    const expected = reference.includes(':') ? reference : named;
    if (expected !== undefined && expected.startsWith('sha256:') && expected !== digest)
      throw new RegistryClientError(step, r.status, undefined, `body hashes to ${digest}`);
    const mediaType =
      header(r.headers['content-type'])?.split(';')[0]?.trim() ||
      (JSON.parse(r.body.toString('utf8')) as { mediaType?: string }).mediaType ||
      'application/vnd.oci.image.manifest.v1+json';
    return { mediaType, digest, body: r.body };
  }

  /**
   * openBlob streams a blob's bytes, following a redirect to storage (without credentials,
   * which are for the registry only). The caller verifies the digest.
   */
  async openBlob(
    name: string,
    digest: string,
    opts: { checked?: boolean } = {},
  ): Promise<Readable> {
    const step = `get blob ${digest}`;
    const scope = pullScope(name);
    if (!opts.checked) {
      // The HEAD answers any challenge, so the GET below goes out with credentials.
      const head: Call = {
        step,
        scope,
        method: 'HEAD',
        url: this.url(`/v2/${name}/blobs/${digest}`),
      };
      const first = await this.send(head);
      if (first.status !== 200 && first.status !== 307 && first.status !== 302)
        throw failed(step, await this.explain(head, first));
    }
    const auth = this.tokens.get(scope) ?? this.basic;
    let url = this.url(`/v2/${name}/blobs/${digest}`);
    let headers: Record<string, string> = auth ? { authorization: auth } : {};
    for (let hop = 0; hop < 5; hop++) {
      const res = await this.retrying(
        () => this.open(step, url, headers),
        (m) => m.statusCode ?? 0,
        (m) => {
          m.resume();
          return header(m.headers['retry-after']);
        },
      );
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if ((status === 307 || status === 302 || status === 301 || status === 303) && location) {
        res.resume();
        const next = new URL(location, url);
        if (next.host !== url.host) headers = {};
        url = next;
        continue;
      }
      if (status === 200) return res;
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      throw failed(step, { status, headers: res.headers, body: Buffer.concat(chunks) });
    }
    throw new RegistryClientError(step, 0, undefined, 'too many redirects');
  }

  /** catalog lists every repository the registry shows this client, across pages. */
  async catalog(): Promise<string[]> {
    return this.pages(
      'list repositories',
      'registry:catalog:*',
      '/v2/_catalog?n=1000',
      (b) => (JSON.parse(b) as { repositories?: string[] }).repositories ?? [],
    );
  }

  /** tags lists every tag of a repository, across pages. */
  async tags(name: string): Promise<string[]> {
    return this.pages(
      `list tags of ${name}`,
      pullScope(name),
      `/v2/${name}/tags/list?n=1000`,
      (b) => (JSON.parse(b) as { tags?: string[] | null }).tags ?? [],
    );
  }

  /** referrers lists the manifests whose subject is `digest` (none when the API is absent). */
  async referrers(name: string, digest: string): Promise<ReferrerDescriptor[]> {
    return (await this.referrersApi(name, digest)) ?? [];
  }

  /**
   * referrersApi lists the manifests whose subject is `digest` through the referrers API;
   * undefined when the registry answers 404 (no such API, or nothing it knows of), so a
   * caller can fall back to the `sha256-<hex>` tag schema.
   */
  async referrersApi(name: string, digest: string): Promise<ReferrerDescriptor[] | undefined> {
    const step = `list referrers of ${digest}`;
    const r = await this.send({
      step,
      scope: pullScope(name),
      method: 'GET',
      url: this.url(`/v2/${name}/referrers/${digest}`),
      headers: { accept: 'application/vnd.oci.image.index.v1+json' },
    });
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw failed(step, r);
    return (
      (JSON.parse(r.body.toString('utf8')) as { manifests?: ReferrerDescriptor[] }).manifests ?? []
    );
  }

  private async pages(
    step: string,
    scope: string,
    first: string,
    items: (body: string) => string[],
  ): Promise<string[]> {
    const out: string[] = [];
    let next: URL | undefined = this.url(first);
    for (let page = 0; next !== undefined; page++) {
      if (page >= 100_000) throw new RegistryClientError(step, 0, undefined, 'too many pages');
      const r = await this.send({ step, scope, method: 'GET', url: next });
      if (r.status !== 200) throw failed(step, r);
      out.push(...items(r.body.toString('utf8')));
      const link = /<([^>]+)>;\s*rel="?next"?/.exec(header(r.headers.link) ?? '');
      next = link ? new URL(link[1]!, next) : undefined;
    }
    return out;
  }

  private open(step: string, url: URL, headers: Record<string, string>): Promise<IncomingMessage> {
    const opts: RequestOptions = {
      method: 'GET',
      headers,
      rejectUnauthorized: !this.o.insecure,
      ca: this.o.ca,
    };
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, opts, resolve);
      req.on('error', (err) => reject(new RegistryClientError(step, 0, undefined, err.message)));
      this.bound(req);
      req.end();
    });
  }

  /** bound ends `req` (and its response) once its connection is idle for idleTimeoutMs. */
  private bound(req: ClientRequest): void {
    const ms = this.o.idleTimeoutMs;
    if (ms === undefined) return;
    req.setTimeout(ms, () => req.destroy(new Error(`the connection was idle for ${ms} ms`)));
  }

  private url(path: string): URL {
    return new URL(path, this.base);
  }

  /**
   * send makes a request with the credentials cached for its scope; on a 401 it answers the
   * challenge (a bearer token for the scope, or basic credentials) and tries once more.
   */
  private async send(call: Call): Promise<Reply> {
    const { step, scope, method, url, headers = {}, body } = call;
    const attempt = () => {
      const auth = this.tokens.get(scope) ?? this.basic;
      return this.retrying(
        () =>
          this.raw(step, method, url, auth ? { ...headers, authorization: auth } : headers, body),
        (r) => r.status,
        (r) => header(r.headers['retry-after']),
      );
    };
    const r = await attempt();
    if (r.status !== 401) return r;
    const c = parseChallenge(header(r.headers['www-authenticate']));
    if (c?.scheme === 'bearer' && c.params.realm) {
      this.tokens.set(scope, `Bearer ${await this.token(c.params, scope)}`);
    } else if (c?.scheme === 'basic' && this.o.credentials) {
      this.basic = basicAuthorization(this.o.credentials);
    } else {
      const why = `${step} (no credentials for this registry)`;
      throw failed(why, await this.explain({ ...call, step: why }, r));
    }
    const again = await attempt();
    if (again.status === 401) {
      const why = `${step} (credentials refused)`;
      throw failed(why, await this.explain({ ...call, step: why }, again));
    }
    return again;
  }

  /**
   * explain fetches the error body a HEAD cannot carry: the same URL with GET for one byte,
   * so the failure can name the registry's OCI error code. Other replies are returned as is.
   */
  private async explain(call: Call, r: Reply): Promise<Reply> {
    const { step, scope, method, url } = call;
    if (method !== 'HEAD' || r.body.length > 0) return r;
    const auth = this.tokens.get(scope) ?? this.basic;
    const headers: Record<string, string> = { range: 'bytes=0-0' };
    if (auth) headers.authorization = auth;
    const g = await this.raw(step, 'GET', url, headers).catch(() => r);
    return g.status === r.status ? g : r;
  }

  /**
   * retrying repeats `call` while it answers 429 or 503, up to `retries` times, waiting for
   * the answer's Retry-After (seconds, at most 30) or 1 s doubling.
   */
  private async retrying<T>(
    call: () => Promise<T>,
    status: (t: T) => number,
    drain: (t: T) => string | undefined,
  ): Promise<T> {
    const retries = this.o.retries ?? 0;
    for (let attempt = 0; ; attempt++) {
      const r = await call();
      const code = status(r);
      if ((code !== 429 && code !== 503) || attempt >= retries || !this.o.pause) return r;
      const after = Number(drain(r));
      const ms = Number.isFinite(after) && after >= 0 ? after * 1000 : 1000 * 2 ** attempt;
      await this.o.pause(Math.min(ms, 30_000));
    }
  }

  private async token(params: Record<string, string>, scope: string): Promise<string> {
    const step = `get token from ${params.realm}`;
    const url = new URL(params.realm!);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (this.o.sameSiteRealmOnly && !sameSite(url.hostname, this.base.hostname))
      throw new RegistryClientError(step, 0, undefined, 'token realm is not on the registry site');
    if (this.o.credentials) headers.authorization = basicAuthorization(this.o.credentials);
    const r = await this.raw(step, 'GET', url, headers);
    if (r.status !== 200) throw failed(step, r);
    const t = JSON.parse(r.body.toString('utf8')) as { token?: string; access_token?: string };
    const token = t.token ?? t.access_token;
    if (!token) throw new RegistryClientError(step, r.status, undefined, 'the answer has no token');
    return token;
  }

  private raw(
    step: string,
    method: string,
    url: URL,
    headers: Record<string, string>,
    body?: Body,
  ): Promise<Reply> {
    const opts: RequestOptions = {
      method,
      headers,
      rejectUnauthorized: !this.o.insecure,
      ca: this.o.ca,
    };
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<Reply>((resolve, reject) => {
      const req = request(url, opts, (res) => {
        const chunks: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          if (n < BUFFER_LIMIT) chunks.push(c);
          n += c.length;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
          }),
        );
        res.on('error', reject);
      });
      req.on('error', (err) => reject(new RegistryClientError(step, 0, undefined, err.message)));
      this.bound(req);
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        const s = body();
        s.on('error', (err) => req.destroy(err));
        s.pipe(req);
      }
    });
  }
}

/** pullScope is the token scope a pull from repository `name` needs. */
export function pullScope(name: string): string {
  return `repository:${name}:pull`;
}

/** pushScope is the token scope a push to repository `name` needs. */
export function pushScope(name: string): string {
  return `repository:${name}:pull,push`;
}

/** sameSite: the same host, or hosts sharing their last two DNS labels (not for IPs). */
export function sameSite(a: string, b: string): boolean {
  if (a === b) return true;
  if (/^[0-9.]+$|:/.test(a) || /^[0-9.]+$|:/.test(b)) return false;
  const site = (h: string) => h.split('.').slice(-2).join('.');
  return a.includes('.') && b.includes('.') && site(a) === site(b);
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function failed(step: string, r: Reply): RegistryClientError {
  let code: string | undefined;
  let detail = r.body.toString('utf8').slice(0, 300).trim() || 'no body';
  try {
    const e = (
      JSON.parse(r.body.toString('utf8')) as { errors?: { code?: string; message?: string }[] }
    ).errors?.[0];
    if (e?.code) {
      code = e.code;
      detail = e.message ?? '';
    }
  } catch {
    // not the OCI error JSON: keep the text
  }
  return new RegistryClientError(step, r.status, code, detail);
}
