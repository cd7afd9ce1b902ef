import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseHcl } from '../../src/config/hcl.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { EMBEDDED_DEFAULT_CONFIG, resolveConfigSource } from '../../src/config/source.js';
import { renderSchema } from '../../src/config/render-schema.js';
import { duration } from '../../src/config/duration.js';
import type { ProviderSpec } from '../../src/config/provider.js';

const specs: ProviderSpec[] = [
  { kind: 'cache', name: 'disk', description: 'disk', schema: z.strictObject({ root: z.string().optional(), 'limit-mb': z.number().default(10), 'max-ttl': duration().default(3_600_000) }) },
  { kind: 'cache', name: 'memory', description: 'memory', schema: z.strictObject({ 'limit-mb': z.number().default(1) }) },
  { kind: 'metadata', name: 'memory', description: 'md', schema: z.strictObject({}) },
  { kind: 'strategy', name: 'git', description: 'git', schema: z.strictObject({ 'allowed-hosts': z.array(z.string()).default([]), 'snapshot-interval': duration().default(0) }) },
  { kind: 'strategy', name: 'gomod', description: 'gomod', schema: z.strictObject({ proxy: z.string().default('https://proxy.golang.org') }) },
  { kind: 'strategy', name: 'github-releases', description: 'gh', schema: z.strictObject({ 'private-orgs': z.array(z.string()), token: z.string().optional() }) },
  { kind: 'strategy', name: 'hermit', description: 'hermit', schema: z.strictObject({}) },
  { kind: 'strategy', name: 'host', description: 'host', label: 'required', schema: z.strictObject({ headers: z.record(z.string(), z.string()).default({}) }) },
];

/** A strategy with the remaining kinds of checks (non-empty string, pattern, list length). */
const probe: ProviderSpec = {
  kind: 'strategy',
  name: 'probe',
  description: 'probe',
  schema: z.strictObject({ name: z.string().min(1).optional(), hosts: z.array(z.string().regex(/^[a-z0-9.-]+(:\d+)?$/, 'expected host[:port]')).max(2).default([]) }),
};

const load = (text: string, env: NodeJS.ProcessEnv = {}) => loadConfig({ text, env, cwd: '/srv', specs, source: 'test.hcl' });

function problems(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('HCL parser', () => {
  test('every syntax form', () => {
    const body = parseHcl(
      `# comment
// another
/* block
   comment */
a = "str\\n\\"q\\" \${HOME}"
b = 42
c = -1.5
d = true
e = null
f = [1, "two",
  [3],
]
g = { k = "v", "quoted key" = 1, colon: false }
h = <<EOF
  line one
EOF
i = <<-EOT
    indented
      more
    EOT
block "label" bare {
  x = 1
}
one { y = 2 }
`,
      'f.hcl',
    );
    const attrs = Object.fromEntries(body.items.filter((i) => i.kind === 'attribute').map((i) => [i.name, i.value]));
    assert.equal(attrs['a'], 'str\n"q" ${HOME}');
    assert.equal(attrs['b'], 42);
    assert.equal(attrs['c'], -1.5);
    assert.equal(attrs['d'], true);
    assert.equal(attrs['e'], null);
    assert.deepEqual(attrs['f'], [1, 'two', [3]]);
    assert.deepEqual(attrs['g'], { k: 'v', 'quoted key': 1, colon: false });
    assert.equal(attrs['h'], '  line one\n');
    assert.equal(attrs['i'], 'indented\n  more\n');
    const blocks = body.items.filter((i) => i.kind === 'block');
    assert.equal(blocks.length, 2);
    assert.equal(blocks[0]?.kind === 'block' && blocks[0].labels.join(','), 'label,bare');
    assert.equal(blocks[0]?.line, 21);
  });

  test('syntax errors carry file:line:col', () => {
    assert.throws(() => parseHcl('a = "unterminated\n', 'x.hcl'), /x\.hcl:1:\d+: unterminated string/);
    assert.throws(() => parseHcl('\n\nblock {\n  a = 1\n', 'x.hcl'), /x\.hcl:5:\d+: unclosed block "block" opened on line 3/);
    assert.throws(() => parseHcl('a = 1 b = 2', 'x.hcl'), /x\.hcl:1:7: expected a newline/);
    assert.throws(() => parseHcl('a = bareword', 'x.hcl'), /unsupported expression "bareword"/);
  });
});

describe('loadConfig', () => {
  test('a cachew config loads unchanged', () => {
    const cfg = load(`
state = "/var/lib/cachew"
bind = "0.0.0.0:8080"
url = "https://cache.example.com/"
shutdown-readiness-delay = "2s"
log {
  level = "debug"
  json = true
}
metrics {
  service-name = "cachew"
  port = 9102
}
scheduler { concurrency = 8 }
git-clone {
  mirror-root = "\${CACHEW_STATE}/mirrors"
  fetch-interval = "5m"
}
s3 { endpoint = "s3.example.com" }
github-app {
  app-id = "1"
  private-key-path = "/k.pem"
}
cache memory { limit-mb = 256 }
cache disk {
  limit-mb = 1000
  max-ttl = "24h"
}
metadata memory {}
strategy git { allowed-hosts = ["github.com"] }
strategy host "https://example.com" { headers = { "X-A" = "b" } }
`);
    assert.equal(cfg.global.state, '/var/lib/cachew');
    assert.equal(cfg.global.url, 'https://cache.example.com');
    assert.equal(cfg.global['shutdown-readiness-delay'], 2000);
    assert.equal(cfg.global['shutdown-timeout'], 150_000);
    assert.equal(cfg.global.log.level, 'debug');
    assert.equal(cfg.global.log.json, true);
    assert.equal(cfg.global.scheduler.concurrency, 8);
    assert.equal(cfg.global['git-clone']['mirror-root'], '/var/lib/cachew/mirrors');
    assert.equal(cfg.global['git-clone']['fetch-interval'], 300_000);
    assert.equal(cfg.global['github-app'].length, 1);
    assert.deepEqual(cfg.providers.map((p) => `${p.kind}:${p.name}`), ['cache:memory', 'cache:disk', 'metadata:memory', 'strategy:git', 'strategy:host']);
    assert.equal(cfg.providers[1]?.config['max-ttl'], 86_400_000);
    assert.equal(cfg.providers[4]?.label, 'https://example.com');
    assert.equal(cfg.providers[1]?.line, 25);
  });

  test('unknown blocks, attributes and names name file:line:col and the valid choices', () => {
    assert.equal(problems(() => load('cache disk {}\nmetadata memory {}\nbogus {}\n')), 'test.hcl:3:1: unknown block "bogus" (valid: cache, git-clone, github-app, log, metadata, metrics, opa, s3, scheduler, strategy)');
    assert.equal(problems(() => load('cache disk {\n  colour = 1\n}\nmetadata memory {}\n')), 'test.hcl:2:3: unknown attribute "colour" in cache disk (valid: limit-mb, max-ttl, root)');
    assert.equal(problems(() => load('cache disk {}\nmetadata memory {}\nstrategy git { nope = 1 }\n')), 'test.hcl:3:16: unknown attribute "nope" in strategy git (valid: allowed-hosts, snapshot-interval)');
    assert.equal(problems(() => load('cache disk {}\nmetadata memory { x = 1 }\n')), 'test.hcl:2:19: unknown attribute "x" in metadata memory (this block takes no attributes)');
    assert.equal(problems(() => load('cache floppy {}\nmetadata memory {}\n')), 'test.hcl:1:1: unknown cache "floppy" (valid: disk, memory)');
    assert.match(problems(() => load('cache disk {}\nmetadata memory {}\nlog { colour = 1 }\n')), /^test\.hcl:3:7: unknown attribute "colour" in log block \(valid: headers, json, level, remap\)$/);
    assert.equal(problems(() => load('cache disk {}\nmetadata memory {}\nstatee = "x"\n')), 'test.hcl:3:1: unknown attribute "statee" (valid: bind, shutdown-readiness-delay, shutdown-timeout, state, url)');
    assert.equal(problems(() => load('cache disk {}\nmetadata memory {}\nstrategy host {}\n')), 'test.hcl:3:1: strategy host needs a label, e.g. strategy host "https://example.com" {}');
    assert.equal(problems(() => load('metadata memory {}\n')), 'test.hcl: expected at least one cache backend, e.g. cache disk {}');
    assert.equal(problems(() => load('cache disk {}\n')), 'test.hcl: expected a metadata backend, e.g. metadata memory {}');
    assert.equal(problems(() => load('cache disk {}\nmetadata memory {}\n  metadata memory {}\n')), 'test.hcl:3:3: only one metadata block is allowed (first at test.hcl:2:1)');
    // Every problem at once, in file order.
    assert.equal(
      problems(() => load('foo {}\ncache disk { a = 1 }\nmetadata memory {}\n')),
      'test.hcl:1:1: unknown block "foo" (valid: cache, git-clone, github-app, log, metadata, metrics, opa, s3, scheduler, strategy)\ntest.hcl:2:14: unknown attribute "a" in cache disk (valid: limit-mb, max-ttl, root)',
    );
  });

  test('variables expand everywhere, $$ escapes, state is exported', () => {
    const cfg = load('state = "${BASE}/st"\ncache disk { root = "${HOARD_STATE}/c$$x" }\nmetadata memory {}\nstrategy gomod { proxy = "${PROXY}" }\n', { BASE: '/data', PROXY: 'https://p' });
    assert.equal(cfg.global.state, '/data/st');
    assert.equal(cfg.providers[0]?.config['root'], '/data/st/c$x');
    assert.equal(cfg.providers[2]?.config['proxy'], 'https://p');
    assert.equal(cfg.global.scheduler['scheduler-db'], '/data/st/scheduler.db');
  });

  test('env injection fills absent global attributes only', () => {
    const cfg = load('bind = "127.0.0.1:1"\ncache disk {}\nmetadata memory {}\n', {
      HOARD_BIND: '0.0.0.0:9',
      CACHEW_LOG_LEVEL: 'warn',
      HOARD_SCHEDULER_CONCURRENCY: '3',
      CACHEW_SCHEDULER_CONCURRENCY: '5',
      HOARD_LOG_JSON: 'true',
      CACHEW_STATE: '/from-env',
    });
    assert.equal(cfg.global.bind, '127.0.0.1:1');
    assert.equal(cfg.global.log.level, 'warn');
    assert.equal(cfg.global.log.json, true);
    assert.equal(cfg.global.scheduler.concurrency, 3);
    assert.equal(cfg.global.state, '/from-env');
    assert.equal(cfg.global['github-app'].length, 0);
  });

  test('the embedded default loads', () => {
    const cfg = load(EMBEDDED_DEFAULT_CONFIG);
    assert.equal(cfg.global.state, '/srv/state');
    assert.equal(cfg.global.bind, '127.0.0.1:8080');
    assert.equal(cfg.global.url, 'http://127.0.0.1:8080');
    assert.deepEqual(cfg.providers.map((p) => p.name), ['disk', 'memory', 'git', 'gomod', 'github-releases', 'hermit']);
  });

  test('env injection applies to the embedded default too', () => {
    const hoard = load(EMBEDDED_DEFAULT_CONFIG, { HOARD_BIND: '0.0.0.0:9090', HOARD_STATE: '/var/lib/hoard', HOARD_LOG_LEVEL: 'debug', HOARD_SHUTDOWN_TIMEOUT: '10s' });
    assert.equal(hoard.global.bind, '0.0.0.0:9090');
    assert.equal(hoard.global.state, '/var/lib/hoard');
    assert.equal(hoard.global.url, 'http://0.0.0.0:9090');
    assert.equal(hoard.global.log.level, 'debug');
    assert.equal(hoard.global['shutdown-timeout'], 10_000);
    // State-derived defaults follow the injected state.
    assert.equal(hoard.global.scheduler['scheduler-db'], '/var/lib/hoard/scheduler.db');
    // cachew's names work as well (the Docker image sets CACHEW_BIND=0.0.0.0:8080); HOARD_* wins.
    const cachew = load(EMBEDDED_DEFAULT_CONFIG, { CACHEW_BIND: '0.0.0.0:8080', CACHEW_STATE: 'st' });
    assert.equal(cachew.global.bind, '0.0.0.0:8080');
    assert.equal(cachew.global.state, '/srv/st');
    assert.equal(load(EMBEDDED_DEFAULT_CONFIG, { CACHEW_BIND: '0.0.0.0:1', HOARD_BIND: '127.0.0.1:2' }).global.bind, '127.0.0.1:2');
  });

  test('schema rendering lists every attribute with type and default', () => {
    const text = renderSchema(specs);
    for (const needle of ['state = "./state"', 'fetch-interval = "15m" # duration', 'cache disk {', 'strategy host "<label>" {', 'private-orgs = <list(string)>', 'github-app {']) {
      assert.ok(text.includes(needle), `missing ${needle}\n${text}`);
    }
  });
});

describe('config errors say what is wrong, and where', () => {
  // Every kind of zod issue a config can trigger, each with its exact message and file:line:col.
  const cases: Array<[string, string, string]> = [
    ['wrong type', 'cache disk {\n  limit-mb = "10"\n}\nmetadata memory {}\n', 'test.hcl:2:14: cache disk: limit-mb: expected a number, got a string'],
    ['wrong type (null)', 'cache disk { limit-mb = null }\nmetadata memory {}\n', 'test.hcl:1:25: cache disk: limit-mb: expected a number, got null'],
    ['wrong type (boolean)', 'log { json = "yes" }\ncache disk {}\nmetadata memory {}\n', 'test.hcl:1:14: log block: json: expected a boolean (true or false), got a string'],
    ['wrong type (a list)', 'cache disk {}\nmetadata memory {}\nstrategy git { allowed-hosts = "github.com" }\n', 'test.hcl:3:32: strategy git: allowed-hosts: expected a list, got a string'],
    ['wrong type at top level', 'state = 5\ncache disk {}\nmetadata memory {}\n', 'test.hcl:1:9: state: expected a string, got a number'],
    ['not a whole number', 'scheduler { concurrency = 1.5 }\ncache disk {}\nmetadata memory {}\n', 'test.hcl:1:27: scheduler block: concurrency: expected a whole number, got 1.5'],
    ['unknown enum value', 'log {\n  level = "loud"\n}\ncache disk {}\nmetadata memory {}\n', 'test.hcl:2:11: log block: level: expected one of "debug", "info", "warn", "error", got "loud"'],
    ['bad duration', 'shutdown-timeout = "soon"\ncache disk { max-ttl = "1 day" }\nmetadata memory {}\n', 'test.hcl:1:20: shutdown-timeout: invalid duration "soon" (use Go syntax such as "90s", "1h30m")\ntest.hcl:2:24: cache disk: max-ttl: invalid duration "1 day" (use Go syntax such as "90s", "1h30m")'],
    ['number too large', 'metrics { port = 70000 }\ncache disk {}\nmetadata memory {}\n', 'test.hcl:1:18: metrics block: port: expected a number <= 65535, got 70000'],
    ['number too small', 'scheduler {\n  concurrency = -1\n}\ncache disk {}\nmetadata memory {}\n', 'test.hcl:2:17: scheduler block: concurrency: expected a number >= 0, got -1'],
    ['empty string', 'cache disk {}\nmetadata memory {}\nstrategy probe { name = "" }\n', 'test.hcl:3:25: strategy probe: name: must not be empty'],
    ['pattern (format)', 'cache disk {}\nmetadata memory {}\nstrategy probe { hosts = ["ok.example", "https://bad.example/"] }\n', 'test.hcl:3:41: strategy probe: hosts[1]: expected host[:port], got "https://bad.example/"'],
    ['too many elements', 'cache disk {}\nmetadata memory {}\nstrategy probe { hosts = ["a", "b", "c"] }\n', 'test.hcl:3:26: strategy probe: hosts: expected at most 2 elements, got 3'],
    ['unknown attribute', 'cache disk {\n  colour = 1\n}\nmetadata memory {}\n', 'test.hcl:2:3: unknown attribute "colour" in cache disk (valid: limit-mb, max-ttl, root)'],
    ['missing required attribute', 'cache disk {}\nmetadata memory {}\n  strategy github-releases {}\n', 'test.hcl:3:3: strategy github-releases: private-orgs: required attribute is missing'],
    ['missing required attribute of a global block', 'github-app {\n  app-id = "1"\n}\ncache disk {}\nmetadata memory {}\n', 'test.hcl:1:1: github-app block: private-key-path: required attribute is missing'],
    ['wrong element type in a list', 'cache disk {}\nmetadata memory {}\nstrategy git {\n  allowed-hosts = ["github.com",\n    42]\n}\n', 'test.hcl:5:5: strategy git: allowed-hosts[1]: expected a string, got a number'],
    ['wrong value type in a map', 'cache disk {}\nmetadata memory {}\nstrategy host "https://x" { headers = { "X-A" = "a", "X-B" = true } }\n', 'test.hcl:3:62: strategy host: headers["X-B"]: expected a string, got a boolean'],
  ];
  for (const [kind, text, expected] of cases) {
    test(kind, () => assert.equal(problems(() => loadConfig({ text, env: {}, cwd: '/srv', specs: [...specs, probe], source: 'test.hcl' })), expected));
  }

  test('an attribute set twice names both places, in a block and at top level', () => {
    assert.equal(
      problems(() => load('state = "/a"\ncache disk {\n  limit-mb = 1\n  limit-mb = 2\n}\nmetadata memory {}\n  state = "/b"\n')),
      'test.hcl:4:3: duplicate attribute "limit-mb" in cache disk (first set at test.hcl:3:3)\ntest.hcl:7:3: duplicate attribute "state" (first set at test.hcl:1:1)',
    );
    assert.equal(problems(() => load('log {\n  level = "info"\n  level = "debug"\n}\ncache disk {}\nmetadata memory {}\n')), 'test.hcl:3:3: duplicate attribute "level" in log block (first set at test.hcl:2:3)');
    assert.equal(
      problems(() => load('cache disk {}\nmetadata memory {}\nstrategy host "https://x" {\n  headers = { "X-A" = "1",\n    "X-A" = "2" }\n}\n')),
      'test.hcl:5:5: duplicate key "X-A" (first set at test.hcl:4:23)',
    );
  });

  test('a ${VAR} that is not set names the variable and its place; an empty one is set', () => {
    assert.equal(
      problems(() => load('state = "${DATA}/hoard"\ncache disk {\n  root = "$CACHE_ROOT/x/${CACHE_ROOT}"\n}\nmetadata memory {}\nstrategy host "${ORIGIN}" {}\nstrategy gomod { proxy = "${HOARD_STATE}" }\n')),
      [
        'test.hcl:1:9: state: environment variable DATA is not set (an empty value counts as set; write $$ for a literal $)',
        'test.hcl:3:10: cache disk: root: environment variable CACHE_ROOT is not set (an empty value counts as set; write $$ for a literal $)',
        'test.hcl:6:1: strategy host label: environment variable ORIGIN is not set (an empty value counts as set; write $$ for a literal $)',
      ].join('\n'),
    );
    const cfg = load('state = "/d${EMPTY}"\ncache disk { root = "a$$b" }\nmetadata memory {}\n', { EMPTY: '' });
    assert.equal(cfg.global.state, '/d');
    assert.equal(cfg.providers[0]?.config['root'], 'a$b');
  });

  test('a bad value injected from the environment names the variable', () => {
    assert.equal(
      problems(() => load('cache disk {}\nmetadata memory {}\n', { HOARD_SCHEDULER_CONCURRENCY: 'many', CACHEW_LOG_JSON: 'yes' })),
      [
        'environment variable CACHEW_LOG_JSON="yes": log block: json: expected a boolean (true or false), got a string',
        'environment variable HOARD_SCHEDULER_CONCURRENCY="many": scheduler block: concurrency: expected a number, got a string',
      ].join('\n'),
    );
  });

  test('hoard serve --config: exit code 1 and every problem on stderr', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-cfg-'));
    try {
      const file = path.join(dir, 'hoard.hcl');
      await fs.writeFile(file, `state = "${dir}/state"\ncache disk {\n  limit-mb = "10"\n}\nmetadata memory {}\nstrategy gomod { proxy = "\${UPSTREAM_PROXY}" }\n`);
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--config', file], {
        env: { PATH: process.env['PATH'], HOME: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const deadline = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearTimeout(deadline);
      assert.equal(code, 1);
      assert.equal(
        stderr,
        `hoard: config error: ${file}:3:14: cache disk: limit-mb: expected a number, got a string\n` +
          `hoard: config error: ${file}:6:26: strategy gomod: proxy: environment variable UPSTREAM_PROXY is not set (an empty value counts as set; write $$ for a literal $)\n`,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('resolveConfigSource', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
  });
  test('flag, then HOARD_CONFIG, then ./hoard.hcl, then the embedded default', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-cfg-'));
    dirs.push(dir);
    assert.equal(resolveConfigSource({ env: {}, cwd: dir }).source, 'embedded default');
    await fs.writeFile(path.join(dir, 'hoard.hcl'), 'x');
    assert.equal(resolveConfigSource({ env: {}, cwd: dir }).path, path.join(dir, 'hoard.hcl'));
    assert.equal(resolveConfigSource({ env: { HOARD_CONFIG: 'a.hcl' }, cwd: dir }).path, path.join(dir, 'a.hcl'));
    assert.equal(resolveConfigSource({ flag: '/b.hcl', env: { HOARD_CONFIG: 'a.hcl' }, cwd: dir }).path, '/b.hcl');
  });
  test('a missing file is a clear error', () => {
    assert.match(problems(() => loadConfig({ path: '/nonexistent/hoard.hcl', specs })), /\/nonexistent\/hoard\.hcl: cannot read config/);
  });
});
