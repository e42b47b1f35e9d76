import { parseArgs } from 'node:util';
import type { Credentials } from '../client/auth.js';
import { hostPlatform, type Platform } from './copy.js';
import type { RegistryRef } from './registry.js';

/** UsageError is bad command-line input; the message names the argument. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Endpoint is one side of a copy, by transport. */
export type Endpoint =
  | { kind: 'docker'; ref: RegistryRef }
  | { kind: 'oci' | 'oci-archive' | 'docker-archive'; path: string; ref?: string };

const REPO = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$/;

/**
 * parseEndpoint reads a transport reference as skopeo writes it:
 * `docker://host[:port]/repo[:tag|@digest]`, `oci:<dir>[:<ref>]`,
 * `oci-archive:<file>[:<ref>]`, `docker-archive:<file>[:<repo:tag>]`. `arg` names it in errors.
 */
export function parseEndpoint(text: string, arg: string): Endpoint {
  if (text.startsWith('docker://'))
    return { kind: 'docker', ref: parseRegistryRef(text.slice(9), arg) };
  const m = /^(oci|oci-archive|docker-archive):([^:]+)(?::(.+))?$/.exec(text);
  if (!m)
    throw new UsageError(
      `${arg}: ${JSON.stringify(text)} is not docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REPO:TAG]`,
    );
  const kind = m[1] as 'oci' | 'oci-archive' | 'docker-archive';
  return m[3] === undefined ? { kind, path: m[2]! } : { kind, path: m[2]!, ref: m[3] };
}

/** parseRegistryRef reads `host[:port]/repo[:tag|@digest]` (docker.io when no host is named). */
export function parseRegistryRef(text: string, arg: string): RegistryRef {
  const bad = (why: string) =>
    new UsageError(`${arg}: ${JSON.stringify(`docker://${text}`)}: ${why}`);
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad('the digest is not sha256:<64 hex>');
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const explicit = /[.:]/.test(first) || first === 'localhost';
  const registry = explicit ? first : 'docker.io';
  let path = explicit ? rest.slice(slash + 1) : rest;
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon !== -1) {
    tag = path.slice(colon + 1);
    path = path.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`${JSON.stringify(tag)} is not a tag`);
  }
  if (!explicit && registry === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  if (!REPO.test(path)) throw bad(`${JSON.stringify(path)} is not a repository name`);
  return { registry, repository: path, tag: tag ?? (digest ? undefined : 'latest'), digest };
}

/** CopyArgs are `berth copy`'s parsed arguments. */
export interface CopyArgs {
  src: Endpoint;
  dst: Endpoint;
  all: boolean;
  referrers: boolean;
  platform: Platform;
  srcCreds?: Credentials;
  destCreds?: Credentials;
  srcTlsVerify: boolean;
  destTlsVerify: boolean;
}

/** parseCopyArgs reads `berth copy [flags] SRC DST`; a UsageError names the bad argument. */
export function parseCopyArgs(args: string[]): CopyArgs {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      all: { type: 'boolean' },
      referrers: { type: 'boolean' },
      platform: { type: 'string' },
      'src-creds': { type: 'string' },
      'dest-creds': { type: 'string' },
      'src-tls-verify': { type: 'string' },
      'dest-tls-verify': { type: 'string' },
    },
  });
  if (positionals.length !== 2)
    throw new UsageError(`SRC DST: expected 2 arguments, got ${positionals.length}`);
  const dst = parseEndpoint(positionals[1]!, 'DST');
  if (dst.kind === 'docker-archive' && values.all)
    throw new UsageError('--all: a docker-archive holds one image, not every platform');
  if (dst.kind === 'docker-archive' && values.referrers)
    throw new UsageError('--referrers: a docker-archive holds one image, not its referrers');
  return {
    src: parseEndpoint(positionals[0]!, 'SRC'),
    dst,
    all: values.all === true,
    referrers: values.referrers === true,
    platform: values.platform === undefined ? hostPlatform() : parsePlatform(values.platform),
    srcCreds: creds(values['src-creds'], '--src-creds'),
    destCreds: creds(values['dest-creds'], '--dest-creds'),
    srcTlsVerify: bool(values['src-tls-verify'], '--src-tls-verify'),
    destTlsVerify: bool(values['dest-tls-verify'], '--dest-tls-verify'),
  };
}

function parsePlatform(text: string): Platform {
  const m = /^([a-z0-9]+)\/([a-z0-9_]+)(?:\/([a-z0-9]+))?$/.exec(text);
  if (!m) throw new UsageError(`--platform: ${JSON.stringify(text)} is not OS/ARCH[/VARIANT]`);
  return m[3] === undefined
    ? { os: m[1]!, architecture: m[2]! }
    : { os: m[1]!, architecture: m[2]!, variant: m[3] };
}

function creds(text: string | undefined, flag: string): Credentials | undefined {
  if (text === undefined) return undefined;
  const i = text.indexOf(':');
  if (i <= 0) throw new UsageError(`${flag}: expected USER:PASSWORD`);
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

function bool(text: string | undefined, flag: string): boolean {
  if (text === undefined || text === 'true') return true;
  if (text === 'false') return false;
  throw new UsageError(`${flag}: expected true or false, got ${JSON.stringify(text)}`);
}
