/** At most this many problems are spelled out in one ConfigError message. */
const MAX_LISTED = 5;

/**
 * ConfigError is any problem with the configuration: the file, its YAML, a value, or an
 * environment variable. `problems` holds every problem found; the message lists the first few.
 */
export class ConfigError extends Error {
  readonly problems: readonly string[];

  constructor(problems: string | readonly string[]) {
    const list = typeof problems === 'string' ? [problems] : [...problems];
    const shown = list.slice(0, MAX_LISTED).join('; ');
    const more = list.length > MAX_LISTED ? `; and ${list.length - MAX_LISTED} more` : '';
    super(`config: ${shown}${more}`);
    this.name = 'ConfigError';
    this.problems = list;
  }
}
