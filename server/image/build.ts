import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { writeArchive, LayoutWriter } from './layout.js';
import { formatReference, parseReference } from './reference.js';
import { runtimeEntries } from './runtime.js';
import {
  labels,
  MediaTypes,
  renderConfig,
  renderDockerManifest,
  renderIndex,
  renderManifest,
  type Descriptor,
  type ImageSpec,
} from './spec.js';
import type { TarEntry } from './tar.js';
import { hostTree } from './tree.js';

const exec = promisify(execFile);

/** SOURCE is the project's repository, the image's `org.opencontainers.image.source`. */
export const SOURCE = 'https://github.com/berth-dev/berth';
/** DEFAULT_REPOSITORY is where released images live; the tag is the package version. */
export const DEFAULT_REPOSITORY = 'ghcr.io/berth-dev/berth';

export interface BuildOptions {
  /** root is the project folder: package.json, package-lock.json and a built dist/. */
  root: string;
  /** out is the OCI layout folder (absent, empty or a layout: it is replaced). */
  out: string;
  /** archive is the tar file of the layout. */
  archive: string;
  /** reference names the image; default `ghcr.io/berth-dev/berth:<version>`. */
  reference?: string;
  /** revision is the source revision label; default `git rev-parse HEAD`, else "unknown". */
  revision?: string;
  /** epoch is the source date epoch; default $SOURCE_DATE_EPOCH, the HEAD commit time, 0. */
  epoch?: number;
  /** nodeBinary is the Node put in the image; default the one running. */
  nodeBinary?: string;
}

/** BuildResult is what `berth image build` prints. `size` is the image's bytes (config, layers, manifest). */
export interface BuildResult {
  reference: string;
  digest: string;
  layout: string;
  archive: string;
  size: number;
}

/** ociArch maps Node's `process.arch` to the OCI architecture; throws for others. */
export function ociArch(arch: string): string {
  const m: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
  const a = m[arch];
  if (!a) throw new Error(`unsupported architecture ${arch}: only x64 and arm64 are built`);
  return a;
}

/**
 * buildImage writes the Berth image for this host's platform as an OCI layout and an archive
 * of it. Three layers: the runtime (node, its libraries, /etc, /tmp, the data folder), the
 * production node_modules (`npm ci --omit=dev` from the lockfile in a temp folder) and the
 * app (package.json, dist/server, dist/operator, dist/ui). Deterministic: the same inputs (files,
 * revision, epoch, reference) give the same manifest digest. Throws when dist/ is not built.
 */
export async function buildImage(o: BuildOptions): Promise<BuildResult> {
  const pkg = await readPackage(o.root);
  const ref = parseReference(o.reference ?? `${DEFAULT_REPOSITORY}:${pkg.version}`);
  if (ref.digest) throw new Error('an image reference to build cannot carry a digest');
  ref.tag ??= 'latest';
  const spec = await imageSpec(o, pkg);
  const layout = await LayoutWriter.open(o.out);
  const written = await writeLayers(layout, o, spec.epoch);
  const config = await layout.bytes(renderConfig(spec, written), MediaTypes.config);
  const layerDescs = written.map((w) => w.descriptor);
  const body = renderManifest(config, layerDescs, labels(spec));
  const manifest = await layout.bytes(body, MediaTypes.manifest);
  const reference = formatReference(ref);
  await layout.index(
    renderIndex(
      { ...manifest, platform: { architecture: spec.arch, os: 'linux' } },
      reference,
      ref.tag,
    ),
  );
  await mkdir(dirname(o.archive), { recursive: true });
  await writeArchive(o.out, o.archive, spec.epoch, {
    'manifest.json': renderDockerManifest(config, layerDescs, reference),
  });
  return {
    reference,
    digest: manifest.digest,
    layout: o.out,
    archive: o.archive,
    size: [config, manifest, ...layerDescs].reduce((n, d) => n + d.size, 0),
  };
}

interface PackageJson {
  version: string;
  license?: string;
  description?: string;
}

/** readPackage reads the project's package.json, after checking that dist/ is built. */
async function readPackage(root: string): Promise<PackageJson> {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as PackageJson;
  await stat(join(root, 'dist', 'server', 'cli.js')).catch(() => {
    throw new Error(`${root}/dist/server/cli.js is missing: run \`npm run build\` first`);
  });
  await stat(join(root, 'dist', 'ui', 'berth-ui.json')).catch(() => {
    throw new Error(`${root}/dist/ui (the web UI) is missing: run \`npm run build\` first`);
  });
  return pkg;
}

/** imageSpec is the image's platform and labels, revision and epoch taken from git if not given. */
async function imageSpec(o: BuildOptions, pkg: PackageJson): Promise<ImageSpec> {
  return {
    arch: ociArch(process.arch),
    version: pkg.version,
    revision: o.revision ?? (await git(o.root, ['rev-parse', 'HEAD'])) ?? 'unknown',
    epoch: o.epoch ?? (await sourceDateEpoch(o.root)),
    source: SOURCE,
    title: 'berth',
    description: pkg.description ?? '',
    licenses: pkg.license ?? 'NOASSERTION',
  };
}

type WrittenLayer = { descriptor: Descriptor; diffId: string; createdBy: string };

/** writeLayers writes the three layers (runtime, production modules, app) into `layout`. */
async function writeLayers(
  layout: LayoutWriter,
  o: BuildOptions,
  epoch: number,
): Promise<WrittenLayer[]> {
  const work = await mkdtemp(join(tmpdir(), 'berth-image-'));
  const layers = [
    {
      createdBy: 'berth image build: runtime (node, libraries, /etc)',
      entries: () => runtimeEntries(o.nodeBinary ?? process.execPath),
    },
    {
      createdBy: 'berth image build: npm ci --omit=dev',
      entries: () => productionModules(o.root, work),
    },
    { createdBy: 'berth image build: app (package.json, dist)', entries: () => appEntries(o.root) },
  ];
  const written: WrittenLayer[] = [];
  try {
    for (const l of layers)
      written.push({ ...(await layout.layer(await l.entries(), epoch)), createdBy: l.createdBy });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return written;
}

/** productionModules installs the lockfile's production dependencies into `work`. */
async function productionModules(root: string, work: string): Promise<TarEntry[]> {
  await copyFile(join(root, 'package.json'), join(work, 'package.json'));
  await copyFile(join(root, 'package-lock.json'), join(work, 'package-lock.json'));
  await exec(
    'npm',
    ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
    { cwd: work, maxBuffer: 16 << 20 },
  );
  const out: TarEntry[] = [];
  // A project without production dependencies gets no node_modules folder from npm.
  const modules = join(work, 'node_modules');
  if (
    await stat(modules).then(
      () => true,
      () => false,
    )
  )
    await hostTree(modules, 'app/node_modules', out);
  return out;
}

async function appEntries(root: string): Promise<TarEntry[]> {
  const out: TarEntry[] = [{ type: 'dir', path: 'app', mode: 0o755 }];
  const pkg = join(root, 'package.json');
  out.push({
    type: 'file',
    path: 'app/package.json',
    mode: 0o644,
    size: (await stat(pkg)).size,
    source: pkg,
  });
  const noMaps = (p: string) => p.endsWith('.map');
  await hostTree(join(root, 'dist', 'server'), 'app/dist/server', out, noMaps);
  await hostTree(join(root, 'dist', 'operator'), 'app/dist/operator', out, noMaps);
  await hostTree(join(root, 'dist', 'ui'), 'app/dist/ui', out, noMaps);
  return out;
}

async function sourceDateEpoch(root: string): Promise<number> {
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env !== undefined && env !== '') return parseEpoch(env, 'SOURCE_DATE_EPOCH');
  const t = await git(root, ['log', '-1', '--format=%ct']);
  return t === undefined ? 0 : parseEpoch(t, 'the HEAD commit time');
}

/** parseEpoch reads a source date epoch: whole seconds, not negative. */
export function parseEpoch(v: string, what: string): number {
  if (!/^[0-9]{1,12}$/.test(v))
    throw new Error(`${what} must be whole seconds, got ${JSON.stringify(v)}`);
  return Number(v);
}

async function git(cwd: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout } = await exec('git', args, { cwd });
    const s = stdout.trim();
    return s === '' ? undefined : s;
  } catch {
    return undefined;
  }
}
