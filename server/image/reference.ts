/** ImageReference is a parsed `[registry/]repository[:tag][@digest]`. */
export interface ImageReference {
  /** registry is the host (and port) as written, `docker.io` when none was. */
  registry: string;
  /** repository is the name within the registry (`library/` added on docker.io). */
  repository: string;
  tag?: string;
  digest?: string;
}

/** InvalidReference is a reference that does not parse; the message names the reason. */
export class InvalidReference extends Error {
  override readonly name = 'InvalidReference';
}

const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;

/**
 * parseReference reads an image reference the way docker and containerd do: the first
 * path component is the registry when it has a `.` or `:` or is `localhost`, else the
 * registry is docker.io (and a single-component name gets `library/`). Throws
 * InvalidReference naming what is wrong.
 */
export function parseReference(ref: string): ImageReference {
  if (ref === '' || ref.length > 512) throw new InvalidReference('empty or too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new InvalidReference(`bad digest ${JSON.stringify(digest)}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new InvalidReference(`bad tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!HOST.test(first)) throw new InvalidReference(`bad registry host ${JSON.stringify(first)}`);
    registry = first;
    parts.shift();
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p)))
    throw new InvalidReference(`bad repository name ${JSON.stringify(parts.join('/'))}`);
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  const out: ImageReference = { registry, repository: parts.join('/') };
  if (tag !== undefined) out.tag = tag;
  if (digest !== undefined) out.digest = digest;
  return out;
}

/** formatReference writes a reference back in its full form (registry always present). */
export function formatReference(r: ImageReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}
