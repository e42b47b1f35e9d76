import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { access, currentUser, setCredentials, type Access } from './api.js';
import { ActivityPage } from './pages/activity.js';
import { AdminPage } from './pages/admin.js';
import { ImagePage } from './pages/image.js';
import { RepositoriesPage } from './pages/repositories.js';
import { SearchPage } from './pages/search.js';
import { SignInPage } from './pages/signin.js';
import { StorageOverviewPage } from './pages/storage-overview.js';
import { TagsPage } from './pages/tags.js';
import { href, useRoute, type Route } from './util.js';

function Page({
  route,
  me,
  onSignedIn,
}: {
  route: Route;
  me: Access | undefined;
  onSignedIn: () => void;
}) {
  const [first, second, third, fourth] = route.parts;
  if (first === 'search')
    return (
      <SearchPage q={route.query.get('q') ?? ''} last={route.query.get('last') ?? undefined} />
    );
  if (first === 'signin') return <SignInPage onSignedIn={onSignedIn} />;
  if (first === 'activity') return <ActivityPage />;
  if (first === 'admin') return <AdminPage me={me} />;
  if (first === 'storage')
    return <StorageOverviewPage last={route.query.get('last') ?? undefined} />;
  if (first === 'r' && second !== undefined && third === 'm' && fourth !== undefined)
    return <ImagePage repo={second} reference={fourth} me={me} />;
  if (first === 'r' && second !== undefined)
    return <TagsPage repo={second} query={route.query} me={me} />;
  if (first === undefined) return <RepositoriesPage last={route.query.get('last') ?? undefined} />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page here. <a href={href([])}>Go to the repositories</a>.
      </p>
    </section>
  );
}

function SearchBox({ initial }: { initial: string }) {
  const [q, setQ] = useState(initial);
  useEffect(() => setQ(initial), [initial]);
  return (
    <form
      role="search"
      class="search"
      onSubmit={(e) => {
        e.preventDefault();
        if (q.trim() !== '') location.hash = href(['search'], { q: q.trim() });
      }}
    >
      <label for="search-q" class="visually-hidden">
        Search repositories, tags and annotations
      </label>
      <input
        id="search-q"
        type="search"
        placeholder="Search repositories, tags, annotations"
        value={q}
        onInput={(e) => setQ((e.target as HTMLInputElement).value)}
      />
      <button type="submit">Search</button>
    </form>
  );
}

function App() {
  const route = useRoute();
  const [me, setMe] = useState<Access | undefined>();
  const [user, setUser] = useState(currentUser());
  useEffect(() => {
    access().then(setMe, () => setMe(undefined));
  }, [user]);
  const [firstPage, setFirstPage] = useState(true);
  useEffect(() => {
    // After a navigation inside the UI, focus moves to the new page's content (not on load).
    if (firstPage) setFirstPage(false);
    else document.getElementById('main')?.focus({ preventScroll: true });
  }, [route.parts.join('/')]);
  const signOut = () => {
    setCredentials(null);
    setUser(null);
    location.hash = href([]);
  };
  return (
    <>
      <a
        class="skip"
        href="#main"
        onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}
      >
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href([])}>
          Berth
        </a>
        <nav aria-label="Main">
          <a href={href([])} aria-current={route.parts.length === 0 ? 'page' : undefined}>
            Repositories
          </a>
          <a
            href={href(['activity'])}
            aria-current={route.parts[0] === 'activity' ? 'page' : undefined}
          >
            Activity
          </a>
          <a
            href={href(['storage'])}
            aria-current={route.parts[0] === 'storage' ? 'page' : undefined}
          >
            Storage
          </a>
          {me?.admin && me.user !== null && (
            <a
              href={href(['admin'])}
              aria-current={route.parts[0] === 'admin' ? 'page' : undefined}
            >
              Garbage collection
            </a>
          )}
        </nav>
        <SearchBox initial={route.parts[0] === 'search' ? (route.query.get('q') ?? '') : ''} />
        <div class="who">
          {user ? (
            <>
              <span>
                Signed in as <strong>{user}</strong>
                {me?.admin ? ' (admin)' : ''}
              </span>
              <button type="button" onClick={signOut}>
                Sign out
              </button>
            </>
          ) : (
            <a href={href(['signin'])}>Sign in</a>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Page route={route} me={me} onSignedIn={() => setUser(currentUser())} />
      </main>
    </>
  );
}

const root = document.getElementById('app')!;
root.textContent = '';
render(<App />, root);
