import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** Challenge is one parsed `WWW-Authenticate` challenge (scheme lowercased). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * parseChallenge reads a `WWW-Authenticate` header value such as
 * `Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"`:
 * the scheme and its auth-params (quoted or bare, quotes unescaped, keys lowercased).
 * Returns undefined for an empty or malformed header.
 */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  const m = header ? /^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s*(.*)$/s.exec(header) : null;
  if (!m?.[1]) return undefined;
  const params: Record<string, string> = {};
  const re = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*(?:,|$)/gy;
  const rest = m[2] ?? '';
  let p: RegExpExecArray | null;
  while (re.lastIndex < rest.length && (p = re.exec(rest)) !== null) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme: m[1].toLowerCase(), params };
}

/** Credentials are a user name and password (or token) for Basic and token requests. */
export interface Credentials {
  username: string;
  password: string;
}

/**
 * dockerConfigCredentials looks `registry` up in a docker config file's `auths` (base64
 * `user:password` in `auth`, or `username`/`password`), matching keys written as a bare host
 * or as a URL; docker.io also matches `https://index.docker.io/v1/`. Undefined when the file
 * or the entry is absent; throws when the file is not JSON.
 */
export async function dockerConfigCredentials(
  registry: string,
  file = join(process.env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json'),
): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const auths = (JSON.parse(text) as { auths?: Record<string, DockerAuth> }).auths ?? {};
  const hosts =
    registry === 'docker.io'
      ? ['docker.io', 'index.docker.io', 'registry-1.docker.io']
      : [registry];
  for (const [key, entry] of Object.entries(auths)) {
    const host = key.replace(/^https?:\/\//, '').split('/')[0];
    if (host === undefined || !hosts.includes(host)) continue;
    if (entry.auth) {
      const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
      const i = plain.indexOf(':');
      if (i > 0) return { username: plain.slice(0, i), password: plain.slice(i + 1) };
    }
    if (entry.username && entry.password)
      return { username: entry.username, password: entry.password };
  }
  return undefined;
}

interface DockerAuth {
  auth?: string;
  username?: string;
  password?: string;
}

/** basicAuthorization is the `Authorization` value for Basic credentials. */
export function basicAuthorization(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
