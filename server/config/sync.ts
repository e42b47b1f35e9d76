import { CronError, parseCron } from '../util/cron.js';
import { SemverRange } from '../util/semver.js';
import { globs } from './globs.js';
import { withDefaults, type Resolved, type Written } from './json-schema.js';

/** SYNC_NAME_PATTERN is a sync job's name: it appears in URLs, metrics and storage keys. */
export const SYNC_NAME_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';

/** PLATFORM_PATTERN is `os/architecture[/variant]`, e.g. `linux/arm64/v8`. */
export const PLATFORM_PATTERN = '^[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?$';

/**
 * syncJobSchema is one entry of `mirrors.sync` (file only): which repositories and tags of an
 * upstream are copied here, and when (ADR 0027). Defaults are filled in by resolveSyncJob,
 * not by parsing (list entries stay as written).
 */
const syncJobSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'upstream', 'repositories'],
  properties: {
    name: {
      description: 'Job name (the on-demand route, the CLI, metrics and logs).',
      type: 'string',
      pattern: SYNC_NAME_PATTERN,
    },
    upstream: {
      description:
        'Name of a `mirrors.upstreams` entry: its URL, credentials, CA and retries are used, and copied repositories land under its prefix as pulled-through ones do.',
      type: 'string',
    },
    repositories: globs(
      'Upstream repository names to copy; a glob with `*` or `?` lists the upstream catalog (`*` within a segment, `**` across), a literal name is used as is.',
    ),
    tags: {
      description:
        'Which tags to copy: a tag is chosen when it matches any form given. Absent: every tag.',
      type: 'object',
      additionalProperties: false,
      properties: {
        glob: globs('Tag globs, e.g. `latest`, `1.*`.'),
        regex: {
          description: 'A regular expression the whole tag must match, e.g. `^v?[0-9]+$`.',
          type: 'string',
          minLength: 1,
          maxLength: 1000,
        },
        semver: {
          description:
            'A semantic-version range, e.g. `>=1.2 <2` or `^3.19 || ~3.20` (a leading `v` in the tag is allowed; pre-releases only when the range names one).',
          type: 'string',
          minLength: 1,
          maxLength: 1000,
        },
      },
    },
    platforms: {
      description:
        'Platforms of an index to copy (`os/arch[/variant]`); the index is stored byte-exact, its other children are not copied (pulled through when asked for). Empty: all.',
      type: 'array',
      maxItems: 100,
      default: [],
      items: { type: 'string', pattern: PLATFORM_PATTERN },
    },
    referrers: {
      description:
        'Also copy the referrers (signatures, SBOMs) of every copied manifest, recursively: the referrers API, else the `sha256-<hex>` tag schema.',
      type: 'boolean',
      default: true,
    },
    schedule: {
      description:
        'Run at the times of this cron expression, in UTC: five fields (minute hour day-of-month month day-of-week, e.g. `30 2 * * 1-5`) or a macro (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`); one replica at a time. Replaces `intervalSeconds`, which must then be left out.',
      type: 'string',
      minLength: 1,
      maxLength: 200,
    },
    intervalSeconds: {
      description:
        'Run every this many seconds (one replica at a time); 0 = only on demand (route or CLI). Ignored with `schedule`.',
      type: 'integer',
      minimum: 0,
      maximum: 31_536_000,
      default: 3600,
    },
    onStart: {
      description: 'Also run once right after the server starts.',
      type: 'boolean',
      default: false,
    },
    leaseSeconds: {
      description:
        'Time-to-live of the job lease in storage, renewed while a run goes on; a replica that dies holding it blocks the job at most this long.',
      type: 'integer',
      minimum: 10,
      maximum: 3600,
      default: 120,
    },
  },
} as const;

/** syncListSchema is `mirrors.sync`: the scheduled sync jobs. */
export const syncListSchema = {
  description:
    'Scheduled sync (file only): copy chosen repositories and tags of an upstream here, with their referrers (docs/mirroring.md#scheduled-sync).',
  type: 'array',
  maxItems: 100,
  default: [],
  items: syncJobSchema,
} as const;

/** SyncJobConfig is one sync job, as written in the file. */
export type SyncJobConfig = Written<typeof syncJobSchema>;

/** ResolvedSyncJob is a sync job with every setting that has a default present. */
export type ResolvedSyncJob = Resolved<typeof syncJobSchema>;

/** resolveSyncJob is a copy of `j` with the settings it leaves out taken from the schema. */
export function resolveSyncJob(j: SyncJobConfig): ResolvedSyncJob {
  return withDefaults(syncJobSchema, j);
}

/**
 * syncProblems finds what the schema cannot in `mirrors.sync`: duplicate names, an upstream
 * that is not configured, no repositories, an empty `tags`, a regular expression, a semver
 * range or a cron schedule that does not parse (or one that never fires, or stands beside
 * `intervalSeconds`). Each problem names the field, as ConfigError messages do.
 */
export function syncProblems(
  jobs: readonly SyncJobConfig[],
  upstreams: readonly { name: string }[],
): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const known = new Set(upstreams.map((u) => u.name));
  jobs.forEach((j, i) => {
    const at = `mirrors.sync.${i}`;
    if (seen.has(j.name)) out.push(`${at}.name: ${JSON.stringify(j.name)} is used twice`);
    seen.add(j.name);
    if (!known.has(j.upstream))
      out.push(
        `${at}.upstream: no mirrors.upstreams entry is named ${JSON.stringify(j.upstream)}${known.size ? ` (known: ${[...known].join(', ')})` : ''}`,
      );
    if (j.repositories.length === 0) out.push(`${at}.repositories: name at least one repository`);
    out.push(...tagProblems(j.tags, `${at}.tags`));
    out.push(...scheduleProblems(j, `${at}.schedule`));
  });
  return out;
}

/** scheduleProblems: a cron expression that does not parse, or one beside `intervalSeconds`. */
function scheduleProblems(j: SyncJobConfig, at: string): string[] {
  if (j.schedule === undefined) return [];
  if (j.intervalSeconds !== undefined) {
    return [`${at}: set either schedule or intervalSeconds, not both`];
  }
  try {
    parseCron(j.schedule);
    return [];
  } catch (err) {
    if (err instanceof CronError) return [`${at}: ${err.message}`];
    throw err;
  }
}

function tagProblems(tags: SyncJobConfig['tags'], at: string): string[] {
  if (tags === undefined) return [];
  if (tags.glob === undefined && tags.regex === undefined && tags.semver === undefined)
    return [`${at}: give glob, regex or semver (or leave tags out to copy every tag)`];
  const out: string[] = [];
  if (tags.regex !== undefined) {
    try {
      new RegExp(tags.regex);
    } catch (err) {
      out.push(`${at}.regex: not a regular expression (${(err as Error).message})`);
    }
  }
  if (tags.semver !== undefined) {
    try {
      new SemverRange(tags.semver);
    } catch (err) {
      out.push(`${at}.semver: not a version range (${(err as Error).message})`);
    }
  }
  return out;
}
