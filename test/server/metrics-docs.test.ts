import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { freePort } from '../fixtures/metrics-scrape.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Series Prometheus itself adds to every target, which no exporter exports. */
const PROMETHEUS_OWN = new Set(['up']);

/** PromQL words that look like metric names: functions (followed by `(`) are dropped separately. */
const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers outside label matchers `{...}`,
 * ranges `[...]`, strings and grouping lists, that are no function, keyword or number.
 */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\w+/g, ' ')
    // Grouping label lists: by (a, b), on (x), group_left (y).
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?/g)) {
    const word = m[0].replace(/\s*\($/, '');
    if (m[1] || PROMQL_WORDS.has(word.toLowerCase())) continue;
    names.add(word);
  }
  return [...names];
}

let hoard: TestServer;
/** Every series name /metrics exports (histograms as their _bucket/_sum/_count series). */
const exported = new Set<string>();

before(async () => {
  const port = await freePort();
  hoard = await startTestServer({ hcl: `cache memory {}\ncache disk {}\nmetadata memory {}\nmetrics {\n  bind = "127.0.0.1"\n  port = ${port}\n}\nstrategy git {}\n` });
  const text = await (await fetch(`http://127.0.0.1:${hoard.server.metricsPort}/metrics`)).text();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    if (type === 'histogram' || type === 'summary') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${name}${suffix}`);
    else exported.add(name);
  }
});
after(async () => {
  await hoard?.close();
});

describe('monitoring docs match the metrics hoard exports', () => {
  test('the PromQL name extraction', () => {
    assert.deepEqual(promqlMetricNames('histogram_quantile(0.95, sum by (host, le) (rate(hoard_x_bucket{a="b"}[5m])))'), ['hoard_x_bucket']);
    assert.deepEqual(promqlMetricNames('time() - hoard_t > 6 * 3600 and on (r) up{job="x"} == 0'), ['hoard_t', 'up']);
  });

  test('docs/grafana-dashboard.json parses and every metric its panels query is exported', async () => {
    const dashboard = JSON.parse(await fs.readFile(path.join(root, 'docs/grafana-dashboard.json'), 'utf8')) as { title: string; panels: Array<{ title: string; type: string; targets?: Array<{ expr: string }> }> };
    assert.equal(dashboard.title, 'hoard');
    const queried = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    assert.ok(queried.length >= 15, `${queried.length} queries`);
    const used = new Set<string>();
    for (const { panel, expr } of queried) {
      const names = promqlMetricNames(expr);
      assert.ok(names.length > 0, `panel "${panel}" queries no metric: ${expr}`);
      for (const name of names) {
        assert.ok(exported.has(name), `panel "${panel}" queries ${name}, which /metrics does not export`);
        used.add(name);
      }
    }
    // The dashboard shows every hoard_ metric family at least once.
    const families = [...exported].filter((n) => n.startsWith('hoard_') && !/_(sum|count)$/.test(n)).map((n) => n.replace(/_bucket$/, ''));
    const usedFamilies = new Set([...used].map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    assert.deepEqual(families.filter((f) => !usedFamilies.has(f)), []);
  });

  test('docs/alerts.yml parses as Prometheus rule groups and references exported metrics only', async () => {
    const rules = parseYaml(await fs.readFile(path.join(root, 'docs/alerts.yml'), 'utf8')) as { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }> };
    assert.ok(Array.isArray(rules.groups) && rules.groups.length > 0);
    const all = rules.groups.flatMap((g) => g.rules);
    assert.ok(all.length >= 8);
    for (const rule of all) {
      assert.match(rule.alert, /^[A-Z][A-Za-z]+$/);
      assert.equal(typeof rule.expr, 'string');
      if (rule.for !== undefined) assert.match(rule.for, /^\d+[smhd]$/);
      assert.ok(rule.labels?.['severity'], `${rule.alert} has a severity`);
      assert.ok(rule.annotations?.['summary'], `${rule.alert} has a summary`);
      for (const name of promqlMetricNames(rule.expr)) assert.ok(exported.has(name) || PROMETHEUS_OWN.has(name), `alert ${rule.alert} uses ${name}, which /metrics does not export`);
    }
  });
});
