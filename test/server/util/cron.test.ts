import { describe, expect, it } from 'vitest';
import { CronError, parseCron } from '../../../server/util/cron.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

/** nexts lists the first `n` firings of `expr` after `from`. */
function nexts(expr: string, from: string, n: number): string[] {
  const c = parseCron(expr);
  const out: string[] = [];
  let t = at(from);
  for (let i = 0; i < n; i++) {
    t = c.next(t);
    out.push(iso(t));
  }
  return out;
}

describe('cron schedules (UTC)', () => {
  it('GIVEN a fixed minute and hour WHEN asked for the next firings THEN they fall daily at that time, strictly after the time given', () => {
    expect(nexts('30 2 * * *', '2026-12-04T02:30:00.000Z', 2)).toEqual([
      '2026-12-05T02:30:00.000Z',
      '2026-12-06T02:30:00.000Z',
    ]);
    expect(nexts('30 2 * * *', '2026-12-04T02:29:59.999Z', 1)).toEqual([
      '2026-12-04T02:30:00.000Z',
    ]);
  });

  it('GIVEN steps, ranges, lists and names WHEN asked THEN each matches what crontab(5) says', () => {
    expect(nexts('*/15 * * * *', '2026-12-04T10:07:00Z', 3)).toEqual([
      '2026-12-04T10:15:00.000Z',
      '2026-12-04T10:30:00.000Z',
      '2026-12-04T10:45:00.000Z',
    ]);
    expect(nexts('0 9-17/4 * * mon-fri', '2026-12-04T16:00:00Z', 3)).toEqual([
      '2026-12-04T17:00:00.000Z', // Friday; then Monday, past the weekend
      '2026-12-07T09:00:00.000Z',
      '2026-12-07T13:00:00.000Z',
    ]);
    expect(nexts('0 0 1 jan,jul *', '2026-12-04T00:00:00Z', 2)).toEqual([
      '2027-01-01T00:00:00.000Z',
      '2027-07-01T00:00:00.000Z',
    ]);
    expect(nexts('5/20 * * * *', '2026-12-04T10:00:00Z', 3)).toEqual([
      '2026-12-04T10:05:00.000Z',
      '2026-12-04T10:25:00.000Z',
      '2026-12-04T10:45:00.000Z',
    ]);
  });

  it('GIVEN both day of month and day of week restricted WHEN asked THEN a day matching either fires; 7 is Sunday', () => {
    // 2026-12-04 is a Friday: the 13th, or any Sunday.
    expect(nexts('0 0 13 * 7', '2026-12-04T00:00:00Z', 3)).toEqual([
      '2026-12-06T00:00:00.000Z',
      '2026-12-13T00:00:00.000Z',
      '2026-12-20T00:00:00.000Z',
    ]);
  });

  it('GIVEN macros and a leap day WHEN asked THEN they fire as their five-field forms', () => {
    expect(nexts('@hourly', '2026-12-04T10:59:30Z', 1)).toEqual(['2026-12-04T11:00:00.000Z']);
    expect(nexts('@weekly', '2026-12-04T10:00:00Z', 1)).toEqual(['2026-12-06T00:00:00.000Z']);
    expect(nexts('@monthly', '2026-12-04T10:00:00Z', 1)).toEqual(['2027-01-01T00:00:00.000Z']);
    expect(nexts('0 12 29 2 *', '2026-12-04T00:00:00Z', 1)).toEqual(['2028-02-29T12:00:00.000Z']);
  });

  it.each([
    ['* * * *', 'five fields'],
    ['60 * * * *', 'minute: "60" is not between 0 and 59'],
    ['* 24 * * *', 'hour: "24" is not between 0 and 23'],
    ['* * 0 * *', 'day of month: "0" is not between 1 and 31'],
    ['* * * foo *', 'month: "foo" is not between 1 and 12 or a name'],
    ['* * * * 8', 'day of week: "8" is not between 0 and 7 or a name'],
    ['5-1 * * * *', 'minute: range 5-1 runs backwards'],
    ['*/0 * * * *', 'minute: step 0 is out of range'],
    ['1,,2 * * * *', 'minute: "" is not a value'],
    ['0 0 30 2 *', 'never fires'],
  ])('GIVEN %j WHEN parsed THEN it is refused naming the field (%s)', (expr, message) => {
    expect(() => parseCron(expr)).toThrow(CronError);
    expect(() => parseCron(expr)).toThrow(message);
  });
});
