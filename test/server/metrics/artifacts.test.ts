import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const read = (...p: string[]) => readFile(join(repoRoot, ...p), 'utf8');

/** metricNames finds metric names in PromQL (suffixes of histograms folded back). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b((?:registry|berth|process|nodejs)_[a-z_]+)/g)].map((m) =>
    m[1]!.replace(/_(bucket|sum|count)$/, ''),
  );
}

async function documented(): Promise<Set<string>> {
  const md = await read('docs', 'metrics.md');
  return new Set([...md.matchAll(/^\| `([a-z_:]+)`/gm)].map((m) => m[1]!));
}

describe('shipped dashboard and alert rules', () => {
  it('GIVEN the Grafana dashboard WHEN its queries are read THEN every panel queries documented metrics and ids are unique', async () => {
    const dash = JSON.parse(await read('charts', 'berth', 'dashboards', 'berth.json')) as {
      uid: string;
      panels: { id: number; type: string; targets?: { expr: string }[] }[];
    };
    const known = await documented();
    expect(dash.uid).toBe('berth-registry');
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const used = new Set<string>();
    for (const p of dash.panels.filter((x) => x.type !== 'row')) {
      expect(p.targets?.length, `panel ${p.id}`).toBeGreaterThan(0);
      for (const t of p.targets ?? []) for (const n of metricNames(t.expr)) used.add(n);
    }
    for (const n of used) expect(known, `${n} is documented`).toContain(n);
    expect(used.size).toBeGreaterThan(15);
  });

  it('GIVEN the alert rules WHEN parsed THEN each rule is complete and uses documented metrics', async () => {
    const rules = parse(await read('charts', 'berth', 'alerts', 'berth.rules.yaml')) as {
      groups: { name: string; rules: Record<string, unknown>[] }[];
    };
    const known = await documented();
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.length).toBeGreaterThan(5);
    for (const r of all) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Berth[A-Za-z]+$/);
      expect(typeof r.expr).toBe('string');
      expect((r.labels as { severity?: string }).severity).toMatch(/^(info|warning|critical)$/);
      expect((r.annotations as { summary?: string }).summary).toBeTruthy();
      for (const n of metricNames(r.expr as string))
        expect(known, `${n} in ${String(r.alert)}`).toContain(n);
    }
  });
});
