/**
 * Tenancy policy: what a Registry may ask the operator for. The platform team sets it on the
 * operator (chart values → environment); whoever may create a Registry cannot widen it.
 */
import type { Registry } from './types.js';

/**
 * AdmissionPolicy lists what the operator accepts. An absent or empty list allows everything
 * (the default install); a non-empty one allows only what one of its patterns matches.
 * Patterns are whole-string globs where `*` matches any run of characters (`/` included):
 * `ghcr.io/berth-dev/berth:*`, `https://minio.storage.svc:9000`, `https://*.s3.amazonaws.com`.
 */
export interface AdmissionPolicy {
  images?: readonly string[];
  s3Endpoints?: readonly string[];
}

/** Refusal names the spec field a Registry may not set as it does, and why. */
export interface Refusal {
  field: 'spec.image' | 'spec.storage.s3.endpoint';
  value: string;
  message: string;
}

/** globMatch says whether `value` matches the whole-string glob `pattern` (`*` only). */
export function globMatch(pattern: string, value: string): boolean {
  const re = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${re}$`).test(value);
}

function allowed(patterns: readonly string[] | undefined, value: string): boolean {
  if (!patterns || patterns.length === 0) return true;
  return patterns.some((p) => globMatch(p, value));
}

/**
 * refusals lists what `r` asks for that `policy` does not allow, image first. `r` must have
 * its image resolved (withImage); `operatorImage`, the operator's own image, is always allowed,
 * so a Registry that pins nothing is never refused for its image.
 */
export function refusals(r: Registry, policy: AdmissionPolicy, operatorImage: string): Refusal[] {
  const out: Refusal[] = [];
  const image = r.spec.image ?? operatorImage;
  if (image !== operatorImage && !allowed(policy.images, image))
    out.push({
      field: 'spec.image',
      value: image,
      message: `spec.image ${JSON.stringify(image)} is not allowed by the operator (allowed: ${(policy.images ?? []).join(', ')})`,
    });
  const endpoint = r.spec.storage.s3.endpoint;
  if (!allowed(policy.s3Endpoints, endpoint))
    out.push({
      field: 'spec.storage.s3.endpoint',
      value: endpoint,
      message: `spec.storage.s3.endpoint ${JSON.stringify(endpoint)} is not allowed by the operator (allowed: ${(policy.s3Endpoints ?? []).join(', ')})`,
    });
  return out;
}

/** endpointAllowed says whether the operator may send credentials to `endpoint`. */
export function endpointAllowed(policy: AdmissionPolicy, endpoint: string): boolean {
  return allowed(policy.s3Endpoints, endpoint);
}

/** listFromEnv splits a comma- or newline-separated environment value; unset or blank is []. */
export function listFromEnv(value: string | undefined): string[] {
  return (value ?? '')
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
