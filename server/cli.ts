#!/usr/bin/env node
/*
 * Each command's module is imported when that command runs, so a command loads only what it
 * needs: node-config, run on every node under a small memory limit, stays at a bare Node's size.
 */
import { ConfigError } from './config/error.js';
import { configFlag } from './config/flag.js';

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

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'operator':
      return (await import('../operator/main.js')).operatorCommand();
    case 'server':
      return (await import('./serve.js')).serveCommand(rest);
    case 'node-config': {
      const code = await (await import('../operator/nodeconfig.js')).nodeConfigCommand(rest);
      return process.exit(code);
    }
    case 'gc': {
      const { gcCommand } = await import('./gc/cli.js');
      return process.exit(await gcCommand(rest, configFlag(rest)));
    }
    case 'search': {
      const { searchCommand } = await import('./search/cli.js');
      return process.exit(await searchCommand(rest, configFlag(rest)));
    }
    case 'sync': {
      const { syncCommand } = await import('./sync/cli.js');
      return process.exit(await syncCommand(rest, configFlag(rest)));
    }
    case 'image':
      return process.exit(await (await import('./image/cli.js')).imageCommand(rest));
    case 'backup':
    case 'restore':
      return process.exit(await (await import('./backup/cli.js')).backupCommand(command, rest));
    case 'copy':
      return process.exit(await (await import('./copy/cli.js')).copyCommand(rest));
    case 'import':
      return process.exit(await (await import('./import/cli.js')).importCommand(rest));
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
