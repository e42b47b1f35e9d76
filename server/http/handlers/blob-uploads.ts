import { Errors, isRegistryError } from '../../errors.js';
import { parseDigest, parseName } from '../../registry/reference.js';
import type { UploadToken } from '../../registry/token.js';
import type { LastBytes, UploadSession } from '../../registry/uploads.js';
import type { Ctx, Handler, Services } from '../context.js';
import { contentLength, contentRange, query } from '../params.js';

/** CHUNK_MIN_LENGTH is advertised as OCI-Chunk-Min-Length; smaller chunks still work. */
export const CHUNK_MIN_LENGTH = 1024 * 1024;

function location(s: Services, state: UploadSession): string {
  const token = s.tokens.sign({
    name: state.repo,
    id: state.id,
    offset: state.offset,
    startedAt: state.startedAt,
    algorithm: state.algorithm,
  });
  return `/v2/${state.repo}/blobs/uploads/${state.id}?_state=${token}`;
}

function rangeValue(state: UploadSession): string {
  return `0-${Math.max(state.offset - 1, 0)}`;
}

function sessionHeaders(ctx: Ctx, s: Services, state: UploadSession): void {
  ctx.set('Location', location(s, state));
  ctx.set('Range', rangeValue(state));
  ctx.set('Docker-Upload-UUID', state.id);
}

function blobCreated(ctx: Ctx, name: string, digest: string): void {
  ctx.status = 201;
  ctx.set('Location', `/v2/${name}/blobs/${digest}`);
  ctx.set('Docker-Content-Digest', digest);
  ctx.length = 0;
}

/** stateToken verifies the URL's `_state` token, when present, against the upload it names. */
function stateToken(ctx: Ctx, s: Services): UploadToken | undefined {
  const { name, id } = ctx.state.params as { name: string; id: string };
  const token = query(ctx, '_state');
  if (token === undefined) return undefined;
  const t = s.tokens.verify(token);
  if (t.name !== name || t.id !== id)
    throw Errors.blobUploadInvalid({ reason: 'upload state token is for another upload' });
  return t;
}

/**
 * session loads the upload the URL names. One never saved (no bytes yet) is known from
 * its token, or from its id when the client dropped the query; for a status or a cancel
 * (`confirmed`) one listing makes sure no request completed it already.
 */
async function session(ctx: Ctx, s: Services, confirmed = false) {
  const { name, id } = ctx.state.params as { name: string; id: string };
  const token = stateToken(ctx, s) ?? s.tokens.birth(name, id);
  return confirmed ? s.uploads.getConfirmed(name, id, token) : s.uploads.get(name, id, token);
}

/** withSessionOnError adds the session's headers to a 416 so clients can recover. */
async function withSessionOnError<T>(
  ctx: Ctx,
  s: Services,
  state: UploadSession,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && 'status' in err && (err as { status: number }).status === 416) {
      const fresh = await s.uploads.get(state.repo, state.id).catch(() => state);
      sessionHeaders(ctx, s, fresh);
    }
    throw err;
  }
}

/** body is the request body with what its headers say of it. */
function body(ctx: Ctx): LastBytes {
  const range = contentRange(ctx);
  return {
    body: ctx.req,
    rangeStart: range?.start,
    rangeEnd: range?.end,
    contentLength: contentLength(ctx),
  };
}

export const startUpload: Handler = async (ctx, s) => {
  const name = ctx.state.params.name!;
  const repo = s.registry.repository(name);
  const mount = query(ctx, 'mount');
  const from = query(ctx, 'from');
  if (mount !== undefined && from !== undefined) parseName(from);
  // A mount needs pull on its source; refused, it falls back to a plain upload (202).
  if (mount !== undefined && s.auth.mayMount(ctx.state.identity, from)) {
    const digest = parseDigest(mount);
    const desc = await repo.blobs.mount(digest, from);
    if (desc) {
      blobCreated(ctx, name, digest.value);
      return;
    }
  }
  const digestParam = query(ctx, 'digest');
  if (digestParam !== undefined) {
    const digest = parseDigest(digestParam);
    // One request from start to commit: the session is never written to storage.
    const oneShot = s.uploads.oneShot(name, digest.algorithm);
    await s.uploads.complete(oneShot, digest, repo.blobs, body(ctx));
    blobCreated(ctx, name, digest.value);
    return;
  }
  const alg = query(ctx, 'digest-algorithm');
  if (alg !== undefined && alg !== 'sha256' && alg !== 'sha512') {
    throw Errors.digestInvalid(
      { algorithm: alg.slice(0, 50) },
      undefined,
      `unsupported digest algorithm ${JSON.stringify(alg.slice(0, 50))}`,
    );
  }
  // Nothing is written until bytes arrive: the signed Location names the session.
  const state = s.uploads.open(name, alg ?? 'sha256');
  ctx.req.resume();
  sessionHeaders(ctx, s, state);
  ctx.set('OCI-Chunk-Min-Length', String(CHUNK_MIN_LENGTH));
  ctx.status = 202;
  ctx.length = 0;
};

export const patchUpload: Handler = async (ctx, s) => {
  const state = await session(ctx, s);
  const { body: req, ...range } = body(ctx);
  const grown = await withSessionOnError(ctx, s, state, () => s.uploads.append(state, req, range));
  sessionHeaders(ctx, s, grown);
  ctx.status = 202;
  ctx.length = 0;
};

export const completeUpload: Handler = async (ctx, s) => {
  const { name, id } = ctx.state.params as { name: string; id: string };
  const token = stateToken(ctx, s);
  const digestParam = query(ctx, 'digest');
  if (digestParam === undefined)
    throw Errors.digestInvalid(
      { reason: 'digest parameter missing' },
      undefined,
      'digest query parameter is required',
    );
  const digest = parseDigest(digestParam);
  // A Location at offset 0 (usually a POST's, which wrote nothing) is taken at its word
  // while the bytes stream in. Without a token the record is awaited first: the session may
  // have grown through Locations the client stripped.
  const state =
    token?.offset === 0
      ? s.uploads.presume(name, id, token)
      : await s.uploads.get(name, id, token ?? s.tokens.birth(name, id));
  const linker = s.registry.repository(name).blobs;
  try {
    await withSessionOnError(ctx, s, state, () =>
      s.uploads.complete(state, digest, linker, body(ctx)),
    );
  } catch (err) {
    // A digest mismatch cancels the session (Uploads.complete).
    if (isRegistryError(err) && err.code === 'DIGEST_INVALID') ctx.state.uploadEnded = true;
    throw err;
  }
  blobCreated(ctx, name, digest.value);
};

export const uploadStatus: Handler = async (ctx, s) => {
  const state = await session(ctx, s, true);
  sessionHeaders(ctx, s, state);
  ctx.status = 204;
};

export const cancelUpload: Handler = async (ctx, s) => {
  const state = await session(ctx, s, true);
  await s.uploads.cancel(state);
  ctx.status = 204;
};
