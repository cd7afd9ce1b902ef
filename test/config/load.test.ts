import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseHcl } from '../../src/config/hcl.js';
import { ConfigError, EMBEDDED_DEFAULT_CONFIG, loadConfig, resolveConfigSource } from '../../src/config/load.js';
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

  test('unknown blocks, attributes and names name file:line and the valid choices', () => {
    assert.match(problems(() => load('cache disk {}\nmetadata memory {}\nbogus {}\n')), /test\.hcl:3: unknown block "bogus" \(valid: .*cache.*git-clone/);
    assert.match(problems(() => load('cache disk {\n  colour = 1\n}\nmetadata memory {}\n')), /test\.hcl:\d: unknown attribute "colour" in cache disk \(valid: limit-mb, max-ttl, root\)/);
    assert.match(problems(() => load('cache disk {}\nmetadata memory {}\nstrategy git { nope = 1 }\n')), /test\.hcl:3: unknown attribute "nope" in strategy git/);
    assert.match(problems(() => load('cache floppy {}\nmetadata memory {}\n')), /test\.hcl:1: unknown cache "floppy" \(valid: disk, memory\)/);
    assert.match(problems(() => load('cache disk {}\nmetadata memory {}\nlog { colour = 1 }\n')), /test\.hcl:3: unknown attribute "colour" in log block/);
    assert.match(problems(() => load('cache disk {}\nmetadata memory {}\nstatee = "x"\n')), /test\.hcl:3: unknown attribute "statee" \(valid: bind/);
    assert.match(problems(() => load('cache disk {}\nmetadata memory {}\nstrategy host {}\n')), /needs a label/);
    assert.match(problems(() => load('cache disk { max-ttl = "soon" }\nmetadata memory {}\n')), /test\.hcl:1: cache disk: max-ttl: invalid duration "soon"/);
    assert.match(problems(() => load('metadata memory {}\n')), /expected at least one cache backend/);
    assert.match(problems(() => load('cache disk {}\n')), /expected a metadata backend/);
    const many = problems(() => load('cache disk { a = 1 }\nmetadata memory {}\nfoo {}\n'));
    assert.equal(many.split('\n').length, 2);
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
