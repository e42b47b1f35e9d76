import { readFileSync } from 'node:fs';
import { RegistryClient } from '../client/registry.js';
import { resolveUpstream, type ResolvedUpstream, type UpstreamConfig } from '../config/mirrors.js';
import type { Clock } from '../util/clock.js';
import { GlobSet } from '../util/glob.js';

/** Upstream is one configured upstream registry with its client. */
export interface Upstream {
  config: ResolvedUpstream;
  client: RegistryClient;
}

/** Target is where a local repository's missing content comes from. */
export interface Target {
  upstream: Upstream;
  /** remote is the repository's name at the upstream. */
  remote: string;
}

interface Entry extends Upstream {
  repositories: GlobSet | undefined;
}

/**
 * Upstreams maps local repository names to upstream registries (ADR 0024): by the
 * upstream's prefix (removed from the name) and its repository globs, first match wins; and
 * a containerd mirror request's `?ns=<host>` to the local name it reads.
 */
export class Upstreams {
  private readonly entries: Entry[];

  constructor(configs: readonly UpstreamConfig[], clock: Clock) {
    this.entries = configs.map((c) => {
      const config = resolveUpstream(c);
      const url = new URL(config.url);
      const password =
        config.passwordFile === undefined
          ? undefined
          : readFileSync(config.passwordFile, 'utf8').trim();
      const client = new RegistryClient({
        registry: url.host,
        plainHttp: url.protocol === 'http:',
        insecure: config.insecure,
        ca: config.caFile === undefined ? undefined : readFileSync(config.caFile, 'utf8'),
        credentials:
          config.username === undefined
            ? undefined
            : { username: config.username, password: password ?? '' },
        retries: config.maxRetries,
        pause: (ms) => clock.sleep(ms),
        sameSiteRealmOnly: true,
        idleTimeoutMs: config.idleTimeoutSeconds > 0 ? config.idleTimeoutSeconds * 1000 : undefined,
      });
      const repositories = config.repositories?.length
        ? new GlobSet(config.repositories)
        : undefined;
      return { config, client, repositories };
    });
  }

  /** byName is the upstream named `name` in the config, if any. */
  byName(name: string): Upstream | undefined {
    return this.entries.find((e) => e.config.name === name);
  }

  get empty(): boolean {
    return this.entries.length === 0;
  }

  /** target is the upstream `local` maps to, or undefined when it maps to none. */
  target(local: string): Target | undefined {
    for (const e of this.entries) {
      const prefix = e.config.prefix;
      let remote: string;
      if (prefix === '') remote = local;
      else if (local.startsWith(prefix + '/')) remote = local.slice(prefix.length + 1);
      else continue;
      if (e.repositories && !e.repositories.matches(remote)) continue;
      return { upstream: e, remote };
    }
    return undefined;
  }

  /**
   * localName is the repository a containerd mirror request for `name` with `?ns=<host>`
   * reads: `<prefix>/<name>` of the first upstream naming the host, else `name` unchanged.
   */
  localName(name: string, ns: string | undefined): string {
    if (ns === undefined) return name;
    const e = this.entries.find((x) => x.config.ns.includes(ns.toLowerCase()));
    if (e === undefined || e.config.prefix === '') return name;
    return `${e.config.prefix}/${name}`;
  }
}
