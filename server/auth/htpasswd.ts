import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import type { Clock } from '../util/clock.js';

/** CredentialChecker verifies a user name and password. */
export interface CredentialChecker {
  /** verify is true for a known user with this password; it never throws for bad input. */
  verify(user: string, password: string): Promise<boolean>;
}

const BCRYPT = /^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$/;

/** parseHtpasswd reads `user:bcrypt-hash` lines; other hash types and junk are skipped. */
export function parseHtpasswd(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const hash = line.slice(i + 1);
    if (BCRYPT.test(hash)) out.set(line.slice(0, i), hash);
  }
  return out;
}

function costOf(hash: string): number {
  return Number(BCRYPT.exec(hash)?.[1] ?? 10);
}

export interface HtpasswdOptions {
  clock: Clock;
  /** cacheSeconds keeps successful checks (bcrypt costs ~50-100 ms at cost 10). */
  cacheSeconds?: number;
  /** reloadCheckMs is how often the file's mtime is looked at. */
  reloadCheckMs?: number;
}

/**
 * Htpasswd checks credentials against an htpasswd file of bcrypt entries, re-reading the file
 * when its modification time or size changes. An unknown user is compared against a dummy hash
 * of the same cost as the file's entries, so the answer takes as long as for a known user
 * (distribution's dummy used cost 5: timing still told them apart). Successful checks are cached
 * for `cacheSeconds` under a hash of the credentials.
 */
export class Htpasswd implements CredentialChecker {
  private users = new Map<string, string>();
  private dummy = '';
  private version = '';
  private lastCheck = -Infinity;
  private readonly ok = new Map<string, number>();

  private constructor(
    private readonly path: string,
    private readonly o: HtpasswdOptions,
  ) {}

  /** open loads the file; it must exist and be readable (throws otherwise). */
  static open(path: string, o: HtpasswdOptions): Htpasswd {
    const h = new Htpasswd(path, o);
    const st = statSync(path);
    h.load(readFileSync(path, 'utf8'), `${st.mtimeMs}:${st.size}:${st.ino}`);
    h.dummy = bcrypt.hashSync(randomBytes(16).toString('hex'), h.cost());
    h.lastCheck = o.clock.now();
    return h;
  }

  private load(text: string, version: string): void {
    this.users = parseHtpasswd(text);
    this.version = version;
    this.ok.clear();
  }

  /** cost is the largest bcrypt cost in the file (10 when it is empty). */
  private cost(): number {
    const costs = [...this.users.values()].map(costOf);
    return costs.length === 0 ? 10 : Math.max(...costs);
  }

  /** dummyCost is the bcrypt cost of the hash unknown users are compared against. */
  get dummyCost(): number {
    return costOf(this.dummy);
  }

  /** size is the number of usable entries. */
  get size(): number {
    return this.users.size;
  }

  private async reload(): Promise<void> {
    const now = this.o.clock.now();
    if (now - this.lastCheck < (this.o.reloadCheckMs ?? 1000)) return;
    this.lastCheck = now;
    const st = await stat(this.path);
    const version = `${st.mtimeMs}:${st.size}:${st.ino}`;
    if (version === this.version) return;
    this.load(await readFile(this.path, 'utf8'), version);
    const cost = this.cost();
    if (costOf(this.dummy) !== cost)
      this.dummy = await bcrypt.hash(randomBytes(16).toString('hex'), cost);
  }

  async verify(user: string, password: string): Promise<boolean> {
    await this.reload().catch(() => undefined);
    if (user.length > 256 || password.length > 1024) return false;
    const key = createHash('sha256').update(`${user}\0${password}`).digest('hex');
    const now = this.o.clock.now();
    const until = this.ok.get(key);
    if (until !== undefined && until > now) return true;
    const hash = this.users.get(user);
    // Always one bcrypt compare of the same cost, known user or not.
    const match = await bcrypt.compare(password, hash ?? this.dummy);
    const good = match && hash !== undefined;
    if (good) {
      if (this.ok.size > 10_000) this.ok.clear();
      this.ok.set(key, now + (this.o.cacheSeconds ?? 60) * 1000);
    }
    return good;
  }
}
