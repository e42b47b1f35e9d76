import { resolve } from 'node:path';
import { dockerConfigCredentials, type Credentials } from '../client/auth.js';
import { RegistryClientError } from '../client/registry.js';
import { ArchiveDest, DockerArchiveSource, openOciArchive } from './archive.js';
import { copy, type ProgressSink } from './copy.js';
import { dirFiles, LayoutDest, LayoutSource } from './layout.js';
import { barProgress, logProgress } from './progress.js';
import { parseCopyArgs, UsageError, type Endpoint } from './reference.js';
import { connect, RegistryDest, RegistrySource } from './registry.js';
import { CopyError } from './spec.js';
import type { Destination, Source } from './transport.js';

export const COPY_USAGE = `usage:
  berth copy [--all] [--referrers] [--platform OS/ARCH[/VARIANT]] [--src-creds USER:PASS] [--dest-creds USER:PASS]
             [--src-tls-verify=false] [--dest-tls-verify=false] SRC DST
    SRC, DST: docker://HOST[:PORT]/REPO[:TAG|@DIGEST] | oci:DIR[:REF] | oci-archive:FILE[:REF]
              | docker-archive:FILE[:REPO:TAG]
`;

/**
 * copyCommand is `berth copy`: one image (or index with --all) between a registry, an OCI
 * layout and an archive. Prints a JSON summary on stdout and resolves with the exit status:
 * 0 done, 1 failed (one line on stderr), 2 bad command-line input.
 */
export async function copyCommand(args: string[]): Promise<number> {
  try {
    const a = parseCopyArgs(args);
    const src = await openSource(a.src, a.srcCreds, a.srcTlsVerify);
    const dst = await openDestination(a.dst, a.destCreds, a.destTlsVerify);
    const result = await copy(src, dst, {
      all: a.all,
      referrers: a.referrers,
      platform: a.platform,
      progress: progressSink(),
    });
    await src.close();
    await new Promise<void>((r) => process.stdout.write(JSON.stringify(result) + '\n', () => r()));
    return 0;
  } catch (err) {
    const usage = err instanceof UsageError || isParseArgsError(err);
    const known =
      usage || err instanceof CopyError || err instanceof RegistryClientError || isFsError(err);
    const text = known ? (err as Error).message : ((err as Error).stack ?? String(err));
    process.stderr.write(`berth: copy: ${text}\n`);
    if (usage) process.stderr.write(COPY_USAGE);
    return usage ? 2 : 1;
  }
}

function progressSink(): ProgressSink | undefined {
  const write = (s: string) => void process.stderr.write(s);
  return process.stderr.isTTY ? barProgress(write) : logProgress(write);
}

async function credentialsFor(
  registry: string,
  given?: Credentials,
): Promise<Credentials | undefined> {
  return given ?? (await dockerConfigCredentials(registry));
}

/** openSource opens the transport `e` names for reading. */
export async function openSource(
  e: Endpoint,
  creds: Credentials | undefined,
  tlsVerify: boolean,
): Promise<Source> {
  const describe = describeEndpoint(e);
  switch (e.kind) {
    case 'docker': {
      const credentials = await credentialsFor(e.ref.registry, creds);
      return new RegistrySource(describe, await connect(e.ref, { credentials, tlsVerify }), e.ref);
    }
    case 'oci':
      return new LayoutSource(describe, dirFiles(resolve(e.path)), e.ref);
    case 'oci-archive':
      return openOciArchive(describe, resolve(e.path), e.ref);
    case 'docker-archive':
      return DockerArchiveSource.open(describe, resolve(e.path), e.ref);
  }
}

/** openDestination opens the transport `e` names for writing. */
export async function openDestination(
  e: Endpoint,
  creds: Credentials | undefined,
  tlsVerify: boolean,
): Promise<Destination> {
  const describe = describeEndpoint(e);
  switch (e.kind) {
    case 'docker': {
      const credentials = await credentialsFor(e.ref.registry, creds);
      return new RegistryDest(describe, await connect(e.ref, { credentials, tlsVerify }), e.ref);
    }
    case 'oci':
      return new LayoutDest(describe, resolve(e.path), e.ref).open();
    case 'oci-archive':
    case 'docker-archive':
      return ArchiveDest.open(describe, resolve(e.path), e.ref, e.kind === 'docker-archive');
  }
}

function describeEndpoint(e: Endpoint): string {
  if (e.kind === 'docker') {
    const { registry, repository, tag, digest } = e.ref;
    return `docker://${registry}/${repository}${digest ? `@${digest}` : `:${tag}`}`;
  }
  return `${e.kind}:${e.path}${e.ref ? `:${e.ref}` : ''}`;
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

function isFsError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return typeof e.syscall === 'string' && typeof e.code === 'string';
}
