import { describe, expect, it } from 'vitest';
import { parseDuration, parseWrk } from '../../bench/lib/neutral.js';

// wrk 4.1's `--latency` report, as the bench's wrk rows read it.
const REPORT = `Running 3s test @ http://127.0.0.1:41234
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.48ms   15.12ms 210.35ms   91.02%
    Req/Sec     1.31k   234.11     1.80k    70.00%
  Latency Distribution
     50%  850.00us
     75%   12.01ms
     90%   25.44ms
     99%    1.20s
  7812 requests in 3.00s, 10.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   2603.71
Transfer/sec:      3.37MB
`;

describe('parseWrk', () => {
  it('reads requests, duration, errors and p50/p99 from a --latency report', () => {
    // GIVEN a report with socket errors and non-2xx answers
    // WHEN it is parsed
    const s = parseWrk(REPORT);
    // THEN every failed request is an error and the percentiles are in milliseconds
    expect(s.ops).toBe(7812);
    expect(s.wallMs).toBe(3000);
    expect(s.errors).toBe(8);
    expect(s.latencies).toEqual([0.85, 1200]);
  });

  it('counts no errors when wrk reports none', () => {
    const clean = REPORT.replace(/ {2}Socket errors.*\n {2}Non-2xx.*\n/, '');
    expect(parseWrk(clean).errors).toBe(0);
  });

  it('throws on output without a result', () => {
    expect(() => parseWrk('unable to connect to 127.0.0.1:1 Connection refused')).toThrow(
      /no result/,
    );
  });
});

describe('parseDuration', () => {
  it('reads every unit wrk prints', () => {
    expect(parseDuration('850.00us')).toBeCloseTo(0.85);
    expect(parseDuration('12.01ms')).toBe(12.01);
    expect(parseDuration('1.02s')).toBe(1020);
    expect(parseDuration('2.00m')).toBe(120_000);
    expect(parseDuration('?')).toBeNaN();
  });
});
