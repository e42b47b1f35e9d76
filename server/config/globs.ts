import { GLOB_PATTERN } from '../util/glob.js';

/** globs is the schema of a list of repository or tag globs (the one dialect of util/glob.ts). */
export const globs = <D extends string>(description: D) =>
  ({
    description,
    type: 'array',
    maxItems: 1000,
    items: { type: 'string', pattern: GLOB_PATTERN },
  }) as const;
