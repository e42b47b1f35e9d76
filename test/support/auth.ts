import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import type { AccessRule, AuthConfig, AuthMode } from '../../server/config/types.js';
import { authDefaults } from '../../server/config/auth.js';
import { scratchDir } from './scratch.js';

/** basic is the value of an Authorization header for Basic credentials. */
export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * AuthBuilder makes an `auth` config section and the htpasswd file it points to:
 *
 *   const auth = authConfig('htpasswd').user('alice', 'pw').rule({ users: ['alice'],
 *     repositories: ['team/**'], actions: ['pull', 'push'] }).anonymous('public/**').build();
 */
export class AuthBuilder {
  private readonly users = new Map<string, string>();
  private readonly c: AuthConfig;

  constructor(
    mode: AuthMode,
    private readonly cost = 4,
  ) {
    this.c = { ...authDefaults(), mode };
  }

  user(name: string, password: string): this {
    this.users.set(name, bcrypt.hashSync(password, this.cost));
    return this;
  }

  rule(r: AccessRule): this {
    this.c.rules.push(r);
    return this;
  }

  group(name: string, members: string[]): this {
    this.c.groups.push({ name, members });
    return this;
  }

  anonymous(...globs: string[]): this {
    this.c.anonymousPull.push(...globs);
    return this;
  }

  immutable(repositories: string[], tags: string[]): this {
    this.c.immutableTags.push({ repositories, tags });
    return this;
  }

  /** eventsForAdmins sets `eventsAccess: admins` with these admin users. */
  eventsForAdmins(...users: string[]): this {
    this.c.eventsAccess = 'admins';
    this.c.admins.users.push(...users);
    return this;
  }

  token(over: Partial<AuthConfig['token']>): this {
    Object.assign(this.c.token, over);
    return this;
  }

  /** build writes the htpasswd file (to a fresh temp dir) and returns the section. */
  build(): AuthConfig {
    const dir = scratchDir('berth-auth-');
    const path = join(dir, 'htpasswd');
    writeFileSync(path, [...this.users].map(([u, h]) => `${u}:${h}\n`).join(''));
    return { ...this.c, htpasswd: { ...this.c.htpasswd, path } };
  }
}

export const authConfig = (mode: AuthMode, cost = 4): AuthBuilder => new AuthBuilder(mode, cost);
