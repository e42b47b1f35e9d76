import { describe, expect, it } from 'vitest';
import { targets, type Row } from '../../bench/bench.js';

function row(key: string, registry: string, value: number, errors = 0): Row {
  return {
    workload: key.startsWith('ceil') ? 0 : 1,
    key,
    label: key,
    registry,
    value,
    unit: 'MB/s',
    p50: 1,
    p99: 2,
    ops: 1,
    errors,
    errorSamples: [],
    calls: 0,
    readCalls: 0,
    callsText: '-',
    rss: 0,
    cpu: 0,
  };
}

const goal = (ts: ReturnType<typeof targets>, measure: string) => {
  const t = ts.find((x) => x.measure === measure);
  if (!t) throw new Error(`no target ${measure}`);
  return t;
};

describe('targets: the pull goals of issue 19 against the clients’ ceilings', () => {
  const rows = [
    row('w1-pull-ctr', 'berth', 110),
    row('w1-pull-ctr', 'distribution-v3', 100),
    row('w1-pull-curl', 'berth', 2000),
    row('w1-pull-curl', 'distribution-v3', 1000),
  ];

  it('GIVEN a containerd ceiling WHEN a goal is read THEN it says the most that client allows', () => {
    const ts = targets(rows, [row('ceil-ctr', 'trivial node:http server', 130)]);
    const t = goal(ts, '1 GiB later pulls (proxied), containerd');
    expect(t.measured).toBe(
      "1.10× (110 MB/s vs 100 MB/s; p99 2.00 ms vs 2.00 ms); the client's ceiling here (130 MB/s) allows at most 1.30×",
    );
    expect(t.met).toBe(false);
    // The curl goal has no curl ceiling in this run: nothing is added to it.
    expect(goal(ts, '1 GiB later pulls (proxied), curl').measured).not.toContain('ceiling');
    expect(goal(ts, '1 GiB later pulls (proxied), curl').met).toBe(true);
  });

  it('GIVEN curl ceilings against the trivial server and MinIO WHEN the first-pull goal is read THEN the lower binds', () => {
    const ts = targets(
      [
        ...rows,
        row('w1-pull-first-curl', 'berth', 1200),
        row('w1-pull-first-curl', 'distribution-v3', 1000),
      ],
      [row('ceil-curl', 'trivial node:http server', 3000), row('ceil-minio-curl', 'MinIO', 1400)],
    );
    expect(goal(ts, '1 GiB first pull (proxied), curl').measured).toContain(
      "the client's ceiling here (1400 MB/s) allows at most 1.40×",
    );
    // Later pulls read no MinIO: only curl's own ceiling bounds them.
    expect(goal(ts, '1 GiB later pulls (proxied), curl').measured).toContain(
      '(3000 MB/s) allows at most 3.00×',
    );
  });

  it('GIVEN a ceiling row that failed WHEN a goal is read THEN no bound is claimed', () => {
    const ts = targets(rows, [row('ceil-ctr', 'trivial node:http server', 130, 1)]);
    expect(goal(ts, '1 GiB later pulls (proxied), containerd').measured).not.toContain('ceiling');
  });

  it('GIVEN no ceilings WHEN targets are read THEN the goals are judged on the rows alone', () => {
    const ts = targets(rows);
    expect(goal(ts, '1 GiB later pulls (proxied), containerd').measured).toBe(
      '1.10× (110 MB/s vs 100 MB/s; p99 2.00 ms vs 2.00 ms)',
    );
  });
});
