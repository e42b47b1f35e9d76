import { globs } from './globs.js';
import { defaultsOf, type Resolved } from './json-schema.js';

/** retentionPolicySchema is one entry of `gc.policies` (file only, no env variables). */
const retentionPolicySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['repositories'],
  properties: {
    repositories: globs(
      'Repository glob patterns (`*` within a path segment, `**` across, `?` one character); the first policy matching a repository applies.',
    ),
    keepTags: {
      description:
        'Tags to keep; a tag kept by any rule stays. Without keepTags every tag stays. Tags pushed within the grace window always stay.',
      type: 'array',
      maxItems: 100,
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          patterns: {
            description:
              'Regular expressions; the rule covers tags matching any (all tags when absent).',
            type: 'array',
            maxItems: 100,
            items: { type: 'string', minLength: 1 },
          },
          mostRecentlyPushed: {
            description: 'Keep only this many of the covered tags, the most recently pushed.',
            type: 'integer',
            minimum: 0,
          },
        },
      },
    },
    deleteUntaggedAfterSeconds: {
      description:
        'Delete manifests reachable from no kept tag (nor as an index child or a referrer of one) once older than this.',
      type: 'integer',
      minimum: 0,
    },
    deleteReferrers: {
      description: 'Delete referrers whose subject manifest is gone.',
      type: 'boolean',
    },
  },
} as const;

/** gcSchema is the `gc` section of berth.yaml: garbage collection and retention. */
export const gcSchema = {
  description: 'Online garbage collection, retention policies and upload purging.',
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    enabled: {
      description:
        'Run garbage collection on a schedule inside the server (one replica at a time).',
      type: 'boolean',
      default: false,
    },
    intervalSeconds: {
      description: 'Time between scheduled runs.',
      type: 'integer',
      minimum: 1,
      default: 3600,
    },
    graceSeconds: {
      description:
        'Nothing written more recently than this is ever deleted; must exceed the longest push.',
      type: 'integer',
      minimum: 1,
      default: 3600,
    },
    dryRun: {
      description: 'Scheduled runs only report what they would delete.',
      type: 'boolean',
      default: false,
    },
    leaseSeconds: {
      description: 'How long the run lease in storage lasts unrenewed (one run across replicas).',
      type: 'integer',
      minimum: 1,
      default: 120,
    },
    settleMillis: {
      description:
        'Pause after deleting links and manifests before re-checking for pushes that raced the deletion.',
      type: 'integer',
      minimum: 0,
      default: 2000,
    },
    policies: {
      description: 'Retention policies by repository pattern (file only).',
      type: 'array',
      maxItems: 100,
      default: [],
      items: retentionPolicySchema,
    },
  },
} as const;

/**
 * GcConfig drives online garbage collection: mark and sweep with a grace window while pushes
 * continue, retention policies, and upload purging, one run at a time across replicas.
 */
export type GcConfig = Resolved<typeof gcSchema>;

/**
 * RetentionPolicy says what retention deletes in the repositories it matches. A repository no
 * policy matches loses nothing to retention (unreferenced blobs are still collected).
 */
export type RetentionPolicy = GcConfig['policies'][number];

/** KeepTagsRule keeps the tags matching `patterns` (all when absent), at most the N most recent. */
export type KeepTagsRule = NonNullable<RetentionPolicy['keepTags']>[number];

/** gcDefaults is a fresh `gc` section for when berth.yaml has none. */
export function gcDefaults(): GcConfig {
  return defaultsOf(gcSchema);
}

/**
 * gcProblems finds what the schema cannot: tag patterns that are not valid regular
 * expressions. Each problem names the field, as ConfigError messages do.
 */
export function gcProblems(gc: GcConfig): string[] {
  const out: string[] = [];
  gc.policies.forEach((p, i) =>
    (p.keepTags ?? []).forEach((rule, j) =>
      (rule.patterns ?? []).forEach((pattern, k) => {
        try {
          new RegExp(pattern);
        } catch (err) {
          out.push(
            `gc.policies.${i}.keepTags.${j}.patterns.${k}: not a regular expression (${(err as Error).message})`,
          );
        }
      }),
    ),
  );
  return out;
}
