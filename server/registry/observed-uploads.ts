import type { Uploads } from './uploads.js';

/** CommitObserver hears each committed upload session: seconds from its start to the commit. */
export type CommitObserver = (seconds: number) => void;

/**
 * observedUploads decorates the upload service: a completion that succeeded is also reported to
 * `observe` with the session's duration (start to commit, never negative). A completion
 * that throws is not reported. Everything else is delegated unchanged.
 */
export function observedUploads(
  uploads: Uploads,
  observe: CommitObserver,
  clock: { now(): number },
): Uploads {
  const decorated = Object.create(uploads) as Uploads;
  decorated.complete = async (state, digest, linker, last) => {
    const desc = await uploads.complete(state, digest, linker, last);
    observe(Math.max(0, clock.now() - state.startedAt) / 1000);
    return desc;
  };
  return decorated;
}
