import { Errors, isRegistryError } from '../../errors.js';
import { parseDigest, parseName, type Digest } from '../../registry/reference.js';
import type { UploadToken } from '../../registry/token.js';
import type { UploadState } from '../../registry/uploads.js';
import type { Ctx, Handler, Services } from '../context.js';
import { contentLength, contentRange, query } from '../params.js';

/** CHUNK_MIN_LENGTH is advertised as OCI-Chunk-Min-Length; smaller chunks still work. */
export const CHUNK_MIN_LENGTH = 1024 * 1024;

function location(s: Services, state: UploadState): string {
  const token = s.tokens.sign({
    name: state.repo,
    id: state.id,
    offset: state.offset,
    startedAt: state.startedAt,
    algorithm: state.algorithm,
  });
  return `/v2/${state.repo}/blobs/uploads/${state.id}?_state=${token}`;
}

function rangeValue(state: UploadState): string {
  return `0-${Math.max(state.offset - 1, 0)}`;
}

function sessionHeaders(ctx: Ctx, s: Services, state: UploadState): void {
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
 * its token, or from its id when the client dropped the query; `confirm` makes sure no
 * request completed it already.
 */
async function session(ctx: Ctx, s: Services, confirm = false): Promise<UploadState> {
  const { name, id } = ctx.state.params as { name: string; id: string };
  return s.uploads.get(name, id, stateToken(ctx, s) ?? s.tokens.birth(name, id), { confirm });
}

/** withRangeError adds the session's headers to a 416 so clients can recover. */
async function withSessionOnError<T>(
  ctx: Ctx,
  s: Services,
  state: UploadState,
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

/**
 * appendBody streams the request body into the session at its Content-Range, if any.
 * With `closing` (the digest the same request commits it as) the grown session is not
 * saved: the commit records it.
 */
async function appendBody(
  ctx: Ctx,
  s: Services,
  state: UploadState,
  closing?: Digest,
): Promise<UploadState> {
  const range = contentRange(ctx);
  return withSessionOnError(ctx, s, state, () =>
    s.uploads.append(state, ctx.req, {
      rangeStart: range?.start,
      rangeEnd: range?.end,
      contentLength: contentLength(ctx),
      persist: closing === undefined,
      claim: closing,
    }),
  );
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
    let state = await s.uploads.start(name, digest.algorithm, { persist: false });
    try {
      state = await s.uploads.append(state, ctx.req, {
        contentLength: contentLength(ctx),
        persist: false,
      });
      await s.uploads.commit(state, digest, repo.blobs);
    } catch (err) {
      await s.uploads.abandon(state).catch(() => undefined);
      throw err;
    }
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
  const state = await s.uploads.start(name, alg ?? 'sha256', { persist: false, located: true });
  ctx.req.resume();
  sessionHeaders(ctx, s, state);
  ctx.set('OCI-Chunk-Min-Length', String(CHUNK_MIN_LENGTH));
  ctx.status = 202;
  ctx.length = 0;
};

export const patchUpload: Handler = async (ctx, s) => {
  let state = await session(ctx, s);
  state = await appendBody(ctx, s, state);
  sessionHeaders(ctx, s, state);
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
  // For a Location at offset 0 (usually a POST's, which wrote nothing), what storage
  // holds of the session is asked while the bytes stream in. The last bytes' segment
  // carries the claim in its name: nothing is saved. Without a token the record is
  // awaited first: the session may have grown through Locations the client stripped.
  const stored = s.uploads.get(name, id, token ?? s.tokens.birth(name, id));
  stored.catch(() => undefined);
  let state = token?.offset === 0 ? s.uploads.unsaved(name, id, token) : await stored;
  state = await appendBody(ctx, s, state, digest);
  if (token?.offset === 0) {
    let saved: UploadState;
    try {
      saved = await stored;
      // Chunks were added through another Location since: these bytes are not at its end.
      if (saved.offset !== 0)
        throw Errors.chunkInvalid(
          { offset: saved.offset, start: 0 },
          {
            Location: location(s, saved),
            Range: rangeValue(saved),
            'Docker-Upload-UUID': saved.id,
          },
          `the upload is at offset ${saved.offset}: use the latest Location`,
        );
    } catch (err) {
      await s.uploads.abandon(state).catch(() => undefined);
      throw err;
    }
    // A session saved by an older version at its POST is claimed like any stored one.
    if (!saved.ephemeral) {
      delete state.ephemeral;
      state.version = saved.version;
    }
  }
  try {
    const linker = s.registry.repository(state.repo).blobs;
    await withSessionOnError(ctx, s, state, () => s.uploads.commit(state, digest, linker));
  } catch (err) {
    // A digest mismatch cancels the session (Uploads.commit).
    if (isRegistryError(err) && err.code === 'DIGEST_INVALID') ctx.state.uploadEnded = true;
    throw err;
  }
  blobCreated(ctx, state.repo, digest.value);
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
