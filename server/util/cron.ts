/**
 * Cron is a parsed five-field cron schedule (minute, hour, day of month, month, day of week),
 * read in UTC, as crontab(5) writes them: `*`, numbers, ranges `a-b`, steps `/n`, lists `,`,
 * month and weekday names (`jan`, `mon`), 7 for Sunday, and the macros `@hourly`, `@daily`
 * (`@midnight`), `@weekly`, `@monthly` and `@yearly` (`@annually`). When both the day of
 * month and the day of week are restricted, a day matching either fires, as in cron.
 */
export interface Cron {
  /** source is the expression as written. */
  readonly source: string;
  /** next is the first firing time (ms, a whole minute) strictly after `afterMs`. */
  next(afterMs: number): number;
}

/** CronError is an expression that does not parse; its message names the field. */
export class CronError extends Error {}

interface Field {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

const MACROS: Readonly<Record<string, string>> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const MINUTE = 60_000;
/** HORIZON_DAYS bounds the search for the next firing (a leap day on a weekday recurs within 28 years). */
const HORIZON_DAYS = 366 * 29;

/** parseCron parses `expr`; throws CronError naming the field at fault. */
export function parseCron(expr: string): Cron {
  const text = expr.trim().toLowerCase();
  const fields = (MACROS[text] ?? text).split(/\s+/);
  if (fields.length !== 5) {
    throw new CronError(
      `want five fields (minute hour day-of-month month day-of-week) or a macro such as @daily, got ${fields.length}`,
    );
  }
  const sets = fields.map((f, i) => parseField(f, FIELDS[i]!));
  const [minutes, hours, days, months, weekdays] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  if (weekdays.has(7)) weekdays.add(0);
  const domAny = fields[2] === '*' || fields[2]!.startsWith('*/');
  const dowAny = fields[4] === '*' || fields[4]!.startsWith('*/');
  const dayMatches = (d: Date): boolean => {
    const dom = days.has(d.getUTCDate());
    const dow = weekdays.has(d.getUTCDay());
    if (!domAny && !dowAny) return dom || dow;
    return (domAny || dom) && (dowAny || dow);
  };
  const cron: Cron = {
    source: expr,
    next(afterMs: number): number {
      const t = new Date(Math.floor(afterMs / MINUTE) * MINUTE + MINUTE);
      const limit = afterMs + HORIZON_DAYS * 24 * 60 * MINUTE;
      while (t.getTime() <= limit) {
        if (!months.has(t.getUTCMonth() + 1)) {
          t.setUTCMonth(t.getUTCMonth() + 1, 1);
          t.setUTCHours(0, 0, 0, 0);
        } else if (!dayMatches(t)) {
          t.setUTCDate(t.getUTCDate() + 1);
          t.setUTCHours(0, 0, 0, 0);
        } else if (!hours.has(t.getUTCHours())) {
          t.setUTCHours(t.getUTCHours() + 1, 0, 0, 0);
        } else if (!minutes.has(t.getUTCMinutes())) {
          t.setUTCMinutes(t.getUTCMinutes() + 1, 0, 0);
        } else {
          return t.getTime();
        }
      }
      throw new CronError(`${expr} never fires`);
    },
  };
  // A schedule that can never fire (the 30th of February) is an error now, not a silent job.
  cron.next(Date.UTC(2000, 0, 1));
  return cron;
}

/** parseField reads one field into the set of values it allows. */
function parseField(text: string, f: Field): Set<number> {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:\/(\d+))?$/.exec(part);
    if (!m) throw new CronError(`${f.name}: ${JSON.stringify(part)} is not a value, range or step`);
    const step = m[2] === undefined ? 1 : Number(m[2]);
    if (step < 1 || step > f.max) throw new CronError(`${f.name}: step ${m[2]} is out of range`);
    let lo = f.min;
    let hi = f.name === 'day of week' ? 6 : f.max;
    if (m[1] !== '*') {
      const [a, b] = m[1]!.split('-');
      lo = value(a!, f);
      hi = b === undefined ? (m[2] === undefined ? lo : f.max) : value(b, f);
      if (hi < lo) throw new CronError(`${f.name}: range ${m[1]} runs backwards`);
    }
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return out;
}

function value(text: string, f: Field): number {
  const named = f.names?.indexOf(text) ?? -1;
  const v =
    named >= 0 ? named + (f.name === 'month' ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(v) || v < f.min || v > f.max) {
    throw new CronError(
      `${f.name}: ${JSON.stringify(text)} is not between ${f.min} and ${f.max}${f.names ? ' or a name' : ''}`,
    );
  }
  return v;
}
