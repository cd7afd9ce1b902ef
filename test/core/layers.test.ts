// The dependency rules of DESIGN §4, checked on every relative import in src/ (static and dynamic),
// so a layering mistake fails the suite instead of waiting for a reviewer.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const src = path.resolve(import.meta.dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? sourceFiles(full) : name.endsWith('.ts') ? [full] : [];
  });
}

/** Every file's relative imports, as paths under src/ (`strategies/git/strategy.ts` → `http/router.ts`). */
function importGraph(): Array<{ from: string; to: string }> {
  const edges: Array<{ from: string; to: string }> = [];
  const pattern = /(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+?)\.js['"]/g;
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(pattern)) {
      const to = path.relative(src, path.resolve(path.dirname(file), `${m[1]}.ts`));
      edges.push({ from: path.relative(src, file), to });
    }
  }
  return edges;
}

const layer = (p: string) => p.split(path.sep)[0] ?? '';
const CONCRETE_CACHES = ['cache/disk.ts', 'cache/memory.ts', 'cache/s3.ts', 'cache/tiered.ts', 'cache/registry.ts', 'cache/single.ts'];

function violations(rule: (e: { from: string; to: string }) => boolean): string[] {
  return importGraph()
    .filter(rule)
    .map((e) => `${e.from} → ${e.to}`);
}

describe('dependency rules (DESIGN §4)', () => {
  test('the graph is read at all (guards the checks below against a broken parser)', () => {
    const edges = importGraph();
    assert.ok(edges.length > 200, `only ${edges.length} imports found`);
    assert.ok(edges.some((e) => e.from.startsWith('strategies') && e.to.startsWith('http')));
  });

  test('strategies use the Cache interface, never a concrete backend, and never server/ or app/', () => {
    assert.deepEqual(
      violations((e) => layer(e.from) === 'strategies' && (CONCRETE_CACHES.includes(e.to) || ['server', 'app'].includes(layer(e.to)))),
      [],
    );
  });

  test('cache/ knows nothing above it', () => {
    assert.deepEqual(violations((e) => layer(e.from) === 'cache' && ['http', 'server', 'app', 'strategies', 'client', 'cli', 'jobs', 'github'].includes(layer(e.to))), []);
  });

  test('client/ never imports server/, app/ or strategies/', () => {
    assert.deepEqual(violations((e) => layer(e.from) === 'client' && ['server', 'app', 'strategies'].includes(layer(e.to))), []);
  });

  test('only app/ imports strategies (strategies may import each other)', () => {
    assert.deepEqual(violations((e) => layer(e.to) === 'strategies' && !['app', 'strategies'].includes(layer(e.from))), []);
  });

  test('http/, util/, s3/ and jobs/ stay below server/ and app/', () => {
    assert.deepEqual(violations((e) => ['http', 'util', 's3', 'jobs'].includes(layer(e.from)) && ['server', 'app', 'strategies', 'cli'].includes(layer(e.to))), []);
  });

  test('no file in src/ is over 400 lines without a comment at its top saying why', () => {
    const unexplained = sourceFiles(src)
      .map((file) => ({ file: path.relative(src, file), text: readFileSync(file, 'utf8') }))
      .filter(({ text }) => text.split('\n').length > 401)
      .filter(({ text }) => !/^\/\/ [^\n]*\b400 lines\b/.test(text))
      .map(({ file }) => file);
    assert.deepEqual(unexplained, [], 'start the file with a // comment that says why it is over 400 lines');
  });
});
