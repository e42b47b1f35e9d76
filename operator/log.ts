/**
 * Logger is the structured logger the operator writes with: static lowercase messages with
 * fields. The server's logger satisfies it.
 */
export interface Logger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

/** jsonLogger writes one JSON line per entry at or above `level` to `out`. */
export function jsonLogger(
  level: Level = 'info',
  out: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
  const min = LEVELS.indexOf(level);
  const at =
    (lvl: Level) =>
    (fields: Record<string, unknown>, msg: string): void => {
      if (LEVELS.indexOf(lvl) < min) return;
      out(`${JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields })}\n`);
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
