import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { dockerConfigCredentials, type Credentials } from '../client/auth.js';
import { RegistryClient, RegistryClientError } from '../client/registry.js';
import { GLOB_PATTERN } from '../util/glob.js';
import { backup, BackupError, restore } from './backup.js';

export const BACKUP_USAGE = `usage:
  berth backup  --registry HOST[:PORT] --out DIR  [--repository GLOB]... [--username USER] [--plain-http] [--insecure]
  berth restore --registry HOST[:PORT] --from DIR [--repository GLOB]... [--username USER] [--plain-http] [--insecure]
    (password: $BERTH_REGISTRY_PASSWORD with --username, else ~/.docker/config.json auths)
`;

class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * backupCommand is `berth backup` and `berth restore`: copy repositories between a registry
 * and an OCI layout. Prints one JSON line of counts on stdout and resolves with the exit
 * status: 0 done, 1 failed (one line on stderr naming the step), 2 bad command-line input.
 */
export async function backupCommand(
  command: 'backup' | 'restore',
  args: string[],
): Promise<number> {
  try {
    const { values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        registry: { type: 'string' },
        out: { type: 'string' },
        from: { type: 'string' },
        repository: { type: 'string', multiple: true },
        username: { type: 'string' },
        'plain-http': { type: 'boolean' },
        insecure: { type: 'boolean' },
      },
    });
    if (values.registry === undefined) throw new UsageError('--registry HOST[:PORT] is required');
    if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$/.test(values.registry))
      throw new UsageError(`--registry: ${JSON.stringify(values.registry)} is not HOST[:PORT]`);
    const dir = command === 'backup' ? values.out : values.from;
    const dirFlag = command === 'backup' ? '--out' : '--from';
    if (dir === undefined) throw new UsageError(`${dirFlag} DIR is required`);
    const globs = values.repository ?? [];
    for (const g of globs)
      if (!new RegExp(GLOB_PATTERN).test(g))
        throw new UsageError(`--repository: ${JSON.stringify(g)} is not a repository glob`);
    let credentials: Credentials | undefined;
    if (values.username !== undefined) {
      const password = process.env.BERTH_REGISTRY_PASSWORD;
      if (!password)
        throw new UsageError('--username needs the password in $BERTH_REGISTRY_PASSWORD');
      credentials = { username: values.username, password };
    } else {
      credentials = await dockerConfigCredentials(values.registry);
    }
    const client = new RegistryClient({
      registry: values.registry,
      plainHttp: values['plain-http'] === true,
      insecure: values.insecure === true,
      credentials,
    });
    const result =
      command === 'backup'
        ? await backup(client, resolve(dir), globs)
        : await restore(client, resolve(dir), globs);
    await new Promise<void>((r) => process.stdout.write(JSON.stringify(result) + '\n', () => r()));
    return 0;
  } catch (err) {
    const usage = err instanceof UsageError || isParseArgsError(err);
    const known = usage || err instanceof BackupError || err instanceof RegistryClientError;
    process.stderr.write(
      `berth: ${command}: ${known ? (err as Error).message : ((err as Error).stack ?? String(err))}\n`,
    );
    if (usage) process.stderr.write(BACKUP_USAGE);
    return usage ? 2 : 1;
  }
}

function isParseArgsError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}
