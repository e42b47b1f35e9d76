/** LOG_LEVELS are the log levels, least severe first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** LogLevel is one of LOG_LEVELS. */
export type LogLevel = (typeof LOG_LEVELS)[number];

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Logger writes one JSON object per line: static lowercase message, fields attached. */
export interface Logger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  level: LogLevel = 'info',
  base: Record<string, unknown> = {},
  write: (line: string) => void = (l) => process.stdout.write(l),
): Logger {
  const min = LEVELS[level];
  const emit = (lvl: LogLevel, fields: Record<string, unknown>, msg: string) => {
    if (LEVELS[lvl] < min) return;
    const rec: Record<string, unknown> = {
      time: new Date().toISOString(),
      level: lvl,
      msg,
      ...base,
    };
    for (const [k, v] of Object.entries(fields)) {
      rec[k] = v instanceof Error ? { message: v.message, name: v.name, stack: v.stack } : v;
    }
    write(JSON.stringify(rec) + '\n');
  };
  return {
    debug: (f, m) => emit('debug', f, m),
    info: (f, m) => emit('info', f, m),
    warn: (f, m) => emit('warn', f, m),
    error: (f, m) => emit('error', f, m),
    child: (f) => createLogger(level, { ...base, ...f }, write),
  };
}

/** silentLogger drops everything (tests). */
export const silentLogger: Logger = createLogger('error', {}, () => undefined);
