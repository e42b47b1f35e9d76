import type { Uploads } from './uploads.js';

/** CommitObserver hears each committed upload session: seconds from its start to the commit. */
export type CommitObserver = (seconds: number) => void;

/**
 * observedUploads decorates the upload service: a commit that succeeded is also reported to
 * `observe` with the session's duration (start to commit, never negative). A commit that
 * throws is not reported. Everything else is delegated unchanged.
 */
export function observedUploads(
  uploads: Uploads,
  observe: CommitObserver,
  clock: { now(): number },
): Uploads {
  const decorated = Object.create(uploads) as Uploads;
  decorated.commit = async (state, digest, linker) => {
    const desc = await uploads.commit(state, digest, linker);
    observe(Math.max(0, clock.now() - state.startedAt) / 1000);
    return desc;
  };
  return decorated;
}
