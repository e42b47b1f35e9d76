import type { GcConfig } from '../config/types.js';

/** gcDefaults is the `gc` section used when berth.yaml has none. */
export function gcDefaults(): GcConfig {
  return {
    enabled: false,
    intervalSeconds: 3600,
    graceSeconds: 3600,
    dryRun: false,
    leaseSeconds: 120,
    settleMillis: 2000,
    policies: [],
  };
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
