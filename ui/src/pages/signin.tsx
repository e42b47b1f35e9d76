import { useState } from 'preact/hooks';
import { signIn } from '../api.js';
import { href } from '../util.js';

export function SignInPage({ onSignedIn }: { onSignedIn: () => void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  return (
    <section class="narrow">
      <h1>Sign in</h1>
      <p class="muted">With your registry user name and password (the ones docker login takes).</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          signIn({ user, password }).then(
            () => {
              setBusy(false);
              onSignedIn();
              location.hash = href([]);
            },
            (err: Error) => {
              setBusy(false);
              setError(err.message);
            },
          );
        }}
      >
        <label for="user">User name</label>
        <input
          id="user"
          name="username"
          autocomplete="username"
          required
          value={user}
          onInput={(e) => setUser((e.target as HTMLInputElement).value)}
        />
        <label for="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
          value={password}
          onInput={(e) => setPassword((e.target as HTMLInputElement).value)}
        />
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </section>
  );
}
