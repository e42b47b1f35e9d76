#!/usr/bin/env node
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from './config/load.js';
import { backupCommand } from './backup/cli.js';
import { copyCommand } from './copy/cli.js';
import { gcCommand } from './gc/cli.js';
import { imageCommand } from './image/cli.js';
import { importCommand } from './import/cli.js';
import { searchCommand } from './search/cli.js';
import { syncCommand } from './sync/cli.js';
import { sharedSigningKeyFile } from './auth/keys.js';
import { startServer } from './server.js';
import { createLogger } from './util/log.js';

const USAGE = `usage: berth <command> [--config <file>]

commands:
  operator   run the Kubernetes operator (in-cluster config, else $KUBECONFIG; leader election on a Lease)
  server     run the registry (config: --config, $BERTH_CONFIG or ./berth.yaml; env BERTH_<PATH> overrides)
  gc         collect garbage and apply retention once [--dry-run: only report]; prints a JSON report
  sync       sync run <job>: one pass of a mirrors.sync job (copy chosen upstream tags here); prints a JSON summary
  search     search reindex: rebuild every repository's search document from storage; prints counts as JSON
  image      build the Berth image as an OCI layout and archive (no Docker engine), or push one:
               image build [--out DIR] [--archive FILE] [--tag REF] [--revision REV] [--source-date-epoch N]
               image push --layout DIR [--from-ref NAME] [--username USER] [--plain-http] [--insecure] REFERENCE
  backup     copy repositories (tags, their manifests and blobs, referrers) from a registry into an OCI layout:
               backup --registry HOST[:PORT] --out DIR [--repository GLOB]... [--username USER] [--plain-http] [--insecure]
  restore    push a backup (or any OCI layout naming <repository>:<tag>) into a registry:
               restore --registry HOST[:PORT] --from DIR [--repository GLOB]... [--username USER] [--plain-http] [--insecure]
  copy       copy one image (or with --all an index) between a registry, an OCI layout and an archive, digests kept:
               copy [--all] [--referrers] [--platform OS/ARCH] [--src-creds U:P] [--dest-creds U:P]
                    [--src-tls-verify=false] [--dest-tls-verify=false] SRC DST
               (docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REPO:TAG])
  import     import the images of an OCI layout or an archive on this machine straight into the storage
               (as POST /v2/_berth/import, no registry API, no authorization): import [--config FILE]
               [--repository NAME [--tag TAG]] oci:DIR | oci-archive:FILE | docker-archive:FILE
  node-config
             point this node's container runtime at a Registry until SIGTERM (run by the
               node-access DaemonSet): --address HOST:PORT --name NS/NAME [--scheme http|https]
               [--containerd-dir DIR] [--crio-dir DIR] [--ca-file FILE]
`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new ConfigError(`${name} needs a value`);
  return v;
}

async function serve(args: string[]): Promise<void> {
  const config = await loadConfig({ file: flag(args, '--config') });
  const log = createLogger(config.log.level, { pid: process.pid });
  const workers = config.http.workers === 0 ? availableParallelism() : config.http.workers;
  if (workers > 1 && cluster.isPrimary) {
    // One secret for all workers, so any worker continues any upload.
    process.env.BERTH_HTTP_SECRET ??= config.http.secret ?? randomBytes(32).toString('hex');
    // One token-signing key for all workers, so a token from one is valid at all.
    const signingKey = sharedSigningKeyFile(config);
    if (signingKey) process.env.BERTH_AUTH_TOKEN_SIGNING_KEY_FILE = signingKey;
    for (let i = 0; i < workers; i++) cluster.fork();
    cluster.on('exit', (w, code, signal) => {
      if (!shuttingDown) {
        log.warn({ worker: w.process.pid, code, signal }, 'worker exited, restarting');
        cluster.fork();
      }
    });
    let shuttingDown = false;
    const stop = () => {
      shuttingDown = true;
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    return;
  }
  const running = await startServer(config, { log });
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    running.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'operator':
      return (await import('../operator/main.js')).operatorCommand();
    case 'server':
      return serve(rest);
    case 'node-config': {
      const code = await (await import('../operator/nodeconfig.js')).nodeConfigCommand(rest);
      return process.exit(code);
    }
    case 'gc': {
      const code = await gcCommand(rest, flag(rest, '--config'));
      return process.exit(code);
    }
    case 'search':
      return process.exit(await searchCommand(rest, flag(rest, '--config')));
    case 'sync':
      return process.exit(await syncCommand(rest, flag(rest, '--config')));
    case 'image':
      return process.exit(await imageCommand(rest));
    case 'backup':
    case 'restore':
      return process.exit(await backupCommand(command, rest));
    case 'copy':
      return process.exit(await copyCommand(rest));
    case 'import':
      return process.exit(await importCommand(rest));
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return;
    default:
      process.stderr.write(`berth: unknown command ${JSON.stringify(command)}\n${USAGE}`);
      process.exit(2);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`berth: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`berth: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
