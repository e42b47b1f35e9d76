import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dockerConfigCredentials, type Credentials } from '../client/auth.js';
import { RegistryClient } from '../client/registry.js';
import { buildImage, ociArch, parseEpoch } from './build.js';
import { formatReference, InvalidReference, parseReference } from './reference.js';
import { pushLayout } from './push.js';

/** UsageError is bad command-line input: exit status 2, the message names the flag. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const IMAGE_USAGE = `usage:
  berth image build [--out DIR] [--archive FILE] [--tag REF] [--revision REV] [--source-date-epoch N]
  berth image push --layout DIR [--from-ref NAME] [--username USER] [--plain-http] [--insecure] REFERENCE
    (password: $BERTH_REGISTRY_PASSWORD with --username, else ~/.docker/config.json auths)
`;

/**
 * imageCommand is `berth image build|push`. It prints one JSON line on stdout and resolves
 * with the exit status: 0 done, 1 the build or push failed (one line on stderr naming the
 * step), 2 bad command-line input.
 */
export async function imageCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  try {
    let result: unknown;
    if (sub === 'build') result = await build(rest);
    else if (sub === 'push') result = await push(rest);
    else throw new UsageError(`unknown image command ${JSON.stringify(sub ?? '')}`);
    await new Promise<void>((r) => process.stdout.write(JSON.stringify(result) + '\n', () => r()));
    return 0;
  } catch (err) {
    const usage = err instanceof UsageError || isParseArgsError(err);
    process.stderr.write(`berth: image ${sub ?? ''}: ${(err as Error).message}\n`);
    if (usage) process.stderr.write(IMAGE_USAGE);
    return usage ? 2 : 1;
  }
}

async function build(args: string[]): Promise<unknown> {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      out: { type: 'string' },
      archive: { type: 'string' },
      tag: { type: 'string' },
      revision: { type: 'string' },
      'source-date-epoch': { type: 'string' },
    },
  });
  const root = projectRoot();
  const version = (
    JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }
  ).version;
  if (values.tag !== undefined) checkReference('--tag', values.tag);
  let epoch: number | undefined;
  if (values['source-date-epoch'] !== undefined) {
    try {
      epoch = parseEpoch(values['source-date-epoch'], '--source-date-epoch');
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  const result = await buildImage({
    root,
    out: resolve(values.out ?? join(root, 'dist', 'image', 'layout')),
    archive: resolve(
      values.archive ??
        join(root, 'dist', 'image', `berth-${version}-${ociArch(process.arch)}.oci.tar`),
    ),
    reference: values.tag,
    revision: values.revision,
    epoch,
  });
  return result;
}

async function push(args: string[]): Promise<unknown> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      layout: { type: 'string' },
      'from-ref': { type: 'string' },
      username: { type: 'string' },
      'plain-http': { type: 'boolean' },
      insecure: { type: 'boolean' },
    },
  });
  if (values.layout === undefined) throw new UsageError('--layout DIR is required');
  if (positionals.length !== 1) throw new UsageError('give exactly one REFERENCE to push to');
  const ref = checkReference('REFERENCE', positionals[0]!);
  if (ref.digest) throw new UsageError('REFERENCE must name a tag, not a digest');
  const tag = ref.tag ?? 'latest';
  let credentials: Credentials | undefined;
  if (values.username !== undefined) {
    const password = process.env.BERTH_REGISTRY_PASSWORD;
    if (!password)
      throw new UsageError('--username needs the password in $BERTH_REGISTRY_PASSWORD');
    credentials = { username: values.username, password };
  } else {
    credentials = await dockerConfigCredentials(ref.registry);
  }
  const client = new RegistryClient({
    registry: ref.registry === 'docker.io' ? 'registry-1.docker.io' : ref.registry,
    plainHttp: values['plain-http'] === true,
    insecure: values.insecure === true,
    credentials,
  });
  const pushed = await pushLayout(
    client,
    resolve(values.layout),
    ref.repository,
    tag,
    values['from-ref'],
  );
  return { reference: formatReference({ ...ref, tag }), ...pushed };
}

function checkReference(flag: string, value: string) {
  try {
    return parseReference(value);
  } catch (err) {
    if (err instanceof InvalidReference)
      throw new UsageError(`${flag}: ${JSON.stringify(value)}: ${err.message}`);
    throw err;
  }
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/** projectRoot is the nearest folder above this module with Berth's package.json. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (
      existsSync(pkg) &&
      (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'berth'
    )
      return dir;
    const up = dirname(dir);
    if (up === dir)
      throw new Error('cannot find the berth project folder (package.json) above this module');
    dir = up;
  }
}
