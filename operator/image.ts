/**
 * The Berth image a Registry runs when its spec names none: the operator's own, so upgrading
 * the operator upgrades every Registry that does not pin an image.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Registry } from './types.js';

/** IMAGE_REPOSITORY is where released Berth images are published. */
export const IMAGE_REPOSITORY = 'ghcr.io/berth-dev/berth';

/** packageVersion is the version in Berth's package.json, found above this module. */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const json = JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string; version?: string };
      if (json.name === 'berth' && json.version !== undefined) return json.version;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the berth package.json above this module');
    dir = up;
  }
}

/**
 * operatorImage is the image Registries without `spec.image` run: `BERTH_IMAGE` (the chart
 * sets it to the chart's image, the one the operator itself runs), else the release image of
 * this version, `ghcr.io/berth-dev/berth:<package version>`.
 */
export function operatorImage(env: NodeJS.ProcessEnv = process.env): string {
  const set = env.BERTH_IMAGE?.trim();
  return set !== undefined && set !== '' ? set : `${IMAGE_REPOSITORY}:${packageVersion()}`;
}

/**
 * withImage is `r` with `spec.image` resolved: a pinned image stays, an absent or empty one
 * becomes `image` (the operator's). A Registry that follows the operator also gets the
 * defaults of settings its server is known to have (`tagCache.peerInvalidation`); a pinned
 * one only gets what its spec asks for, since its older server may lack them. Pure; `r` is
 * not modified.
 */
export function withImage(r: Registry, image: string): Registry {
  if (r.spec.image !== undefined && r.spec.image !== '') return r;
  const tagCache = {
    ...r.spec.tagCache,
    peerInvalidation: r.spec.tagCache?.peerInvalidation ?? true,
  };
  return { ...r, spec: { ...r.spec, image, tagCache } };
}
