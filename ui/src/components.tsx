import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';
import { href, type Loaded } from './util.js';

export function ErrorView({ error }: { error: Error }) {
  const status = error instanceof ApiError ? error.status : 0;
  return (
    <div class="error" role="alert">
      <p>
        {status === 401
          ? 'You need to sign in to see this.'
          : status === 403
            ? 'You may not see this.'
            : status === 404
              ? 'Not found.'
              : 'The registry did not answer as expected.'}{' '}
        <span class="detail">{error.message}</span>
      </p>
      {status === 401 && <a href={href(['signin'])}>Sign in</a>}
    </div>
  );
}

/** Show renders a loaded value, a spinner or the error. */
export function Show<T>({
  data,
  children,
}: {
  data: Loaded<T>;
  children: (v: T) => ComponentChildren;
}) {
  if (data.state === 'loading')
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  if (data.state === 'error') return <ErrorView error={data.error} />;
  return <>{children(data.value)}</>;
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="copy"
      aria-label={`Copy ${label}`}
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(
          () => {
            setDone(true);
            setTimeout(() => setDone(false), 1500);
          },
          () => undefined,
        );
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

/** Confirm asks before a destructive action, in a modal dialog (focus stays inside it). */
export function ConfirmButton({
  label,
  question,
  disabled,
  why,
  onConfirm,
}: {
  label: string;
  question: string;
  disabled: boolean;
  why?: string;
  onConfirm: () => Promise<void>;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  return (
    <>
      <button
        type="button"
        class="danger"
        disabled={disabled}
        title={disabled ? why : undefined}
        aria-label={label}
        onClick={() => {
          setError(undefined);
          dialog.current?.showModal();
        }}
      >
        Delete
      </button>
      <dialog ref={dialog} aria-label={label}>
        <p>{question}</p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <div class="actions">
          <button type="button" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button
            type="button"
            class="danger"
            disabled={busy}
            onClick={() => {
              setBusy(true);
              onConfirm().then(
                () => {
                  setBusy(false);
                  dialog.current?.close();
                },
                (e: Error) => {
                  setBusy(false);
                  setError(e.message);
                },
              );
            }}
          >
            Delete
          </button>
        </div>
      </dialog>
    </>
  );
}

export function canDelete(
  actions: string[] | undefined,
  deletes: boolean | undefined,
): { ok: boolean; why: string } {
  if (deletes === false) return { ok: false, why: 'Deletes are turned off on this registry.' };
  if (!actions?.includes('delete'))
    return { ok: false, why: 'You may not delete in this repository.' };
  return { ok: true, why: '' };
}
