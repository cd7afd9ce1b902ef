// cachew's own sample config and every HCL example of its README, as a migrating user would feed
// them to hoard (fixtures: test/fixtures/cachew-configs, verbatim). Each either loads and serves,
// or fails with a precise message for a documented reason; the README's stale bare-block form is
// also checked once migrated the way hoard's error tells the user to.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { allProviderSpecs } from '../../src/app/wiring.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const dir = path.resolve(import.meta.dirname, '../fixtures/cachew-configs');
const read = (name: string) => readFileSync(path.join(dir, name), 'utf8');
const ENV = { GITHUB_TOKEN: 'gh-token', GHCR_TOKEN: 'ghcr-token' };
const haveOpa = !spawnSync('opa', ['version']).error;

/** Only what must change to run here: no fixed state/bind/url, the metrics listener on port 0. */
function adjust(text: string): string {
  let out = text.replace(/^(state|bind|url)\s*=.*$/gm, '');
  if (/^metrics\s*\{/m.test(out)) out = out.replace(/^metrics\s*\{/m, 'metrics {\n  port = 0\n');
  else out += '\nmetrics { port = 0 }\n';
  return out;
}

/** What hoard's hints tell a user to do with the README's form: kinds first, storage added if absent. */
function migrate(text: string): string {
  let out = text
    .replace(/^(git|github-releases|gomod|hermit|artifactory|host|proxy)(?=[\s"{])/gm, 'strategy $1')
    .replace(/^(memory|disk)(?=\s*\{)/gm, 'cache $1')
    .replace(/^s3(?=\s*\{[^}]*bucket)/gm, 'cache s3');
  if (!/^cache\s/m.test(out)) out += '\ncache memory {}\n';
  if (!/^metadata\s/m.test(out)) out += '\nmetadata memory {}\n';
  return out;
}

function loadError(text: string, env: NodeJS.ProcessEnv = ENV): string {
  try {
    loadConfig({ text, env, cwd: dir, specs: allProviderSpecs(), source: 'cachew.hcl' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('expected the config to be refused');
}

const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

/** Starts hoard on `hcl` and checks it answers; returns the server. */
async function serves(hcl: string): Promise<TestServer> {
  const s = await startTestServer({ hcl, env: ENV });
  servers.push(s);
  const live = await fetch(`${s.url}/_liveness`);
  return Object.assign(s, { liveStatus: live.status });
}

describe("cachew's sample config (cachew.hcl)", () => {
  test('loads and serves unchanged but for state/bind/url and the metrics port', { skip: haveOpa ? false : 'its opa block needs the opa binary' }, async () => {
    const s = await serves(adjust(read('cachew.hcl')));
    assert.equal((await fetch(`${s.url}/_liveness`)).status, 200);
    // Its opa policy is enforced: /api from 127.0.0.1 is allowed.
    assert.equal((await fetch(`${s.url}/api/v1/namespaces`)).status, 200);
    // Its strategies are mounted: the proxy intercepts, gomod answers, git refuses junk precisely.
    assert.equal((await fetch(`${s.url}/gomod/example.com/%21x/@v/nope`)).status, 404);
    assert.equal((await fetch(`${s.url}/git/github.com/`)).status, 400);
  });

  test('without GITHUB_TOKEN set it is refused, naming the variable (cachew would use an empty token)', () => {
    assert.match(loadError(adjust(read('cachew.hcl')), {}), /GITHUB_TOKEN/);
  });
});

describe("cachew's README examples", () => {
  // The README predates cachew #230/#238: bare provider blocks and no metadata block. cachew
  // itself refuses them; hoard does too, saying what to write instead.
  const bare: Array<[string, RegExp]> = [
    ['readme-01.hcl', /unknown block "git" .*did you mean strategy git \{ \.\.\. \}\?/],
    ['readme-02.hcl', /did you mean strategy github-releases/],
    ['readme-03.hcl', /did you mean strategy gomod/],
    ['readme-04.hcl', /did you mean strategy hermit/],
    ['readme-05.hcl', /did you mean strategy artifactory "example\.jfrog\.io"/],
    ['readme-06.hcl', /readme:1:1: unknown block "host".*did you mean strategy host "https:\/\/ghcr\.io"[\s\S]*readme:7:1: unknown block "host"/],
    ['readme-07.hcl', /did you mean strategy proxy/],
    ['readme-08.hcl', /did you mean cache memory/],
    ['readme-09.hcl', /did you mean cache disk/],
    ['readme-10.hcl', /unknown attribute "bucket" in s3 block .*a bucket belongs in cache s3/],
    ['readme-16.hcl', /unknown block "git"[\s\S]*unknown block "github-releases"[\s\S]*unknown block "disk"[\s\S]*unknown block "proxy"/],
  ];
  for (const [file, expected] of bare) {
    test(`${file} as written: refused with the block to write instead`, () => {
      const message = loadError(read(file).replace(/^/, ''));
      assert.match(message.replace(/cachew\.hcl/g, 'readme'), expected);
    });
  }

  for (const file of ['readme-01.hcl', 'readme-02.hcl', 'readme-04.hcl', 'readme-06.hcl', 'readme-07.hcl', 'readme-08.hcl', 'readme-09.hcl', 'readme-15.hcl']) {
    test(`${file} migrated as hoard suggests: loads and serves`, async () => {
      const s = await serves(adjust(migrate(read(file))));
      assert.equal((await fetch(`${s.url}/_liveness`)).status, 200);
    });
  }

  test('readme-10.hcl migrated to cache s3: endpoint and region are refused, saying they belong in the global s3 block', () => {
    const message = loadError(adjust(migrate(read('readme-10.hcl'))));
    assert.match(message, /unknown attribute "endpoint" in cache s3 .*belongs in the global s3 \{ endpoint = \.\.\. \} block/);
    assert.match(message, /unknown attribute "region" in cache s3 .*belongs in the global s3 \{ region = \.\.\. \} block/);
    // Moved where the hint says, it loads.
    const fixed = adjust(migrate(read('readme-10.hcl')).replace(/^\s*(endpoint|region)\s*=.*$/gm, '')) + '\ns3 {\n  endpoint = "s3.amazonaws.com"\n  region = "us-east-1"\n}\n';
    assert.doesNotThrow(() => loadConfig({ text: fixed, env: ENV, cwd: dir, specs: allProviderSpecs(), source: 'readme-10.hcl' }));
  });

  test('readme-03.hcl migrated: private-paths needs the git strategy, and start-up says so; with strategy git it serves', async () => {
    await assert.rejects(startTestServer({ hcl: adjust(migrate(read('readme-03.hcl'))), env: ENV }), /private-paths needs a strategy git \{\} block/);
    const s = await serves(`${adjust(migrate(read('readme-03.hcl')))}\nstrategy git {}\n`);
    assert.equal((await fetch(`${s.url}/_liveness`)).status, 200);
  });

  test('readme-05.hcl migrated: the stray target attribute is refused, saying the URL is the label', () => {
    assert.match(loadError(adjust(migrate(read('readme-05.hcl')))), /unknown attribute "target" in strategy artifactory .*the target URL is the block label/);
  });

  describe('opa examples', { skip: haveOpa ? false : 'the opa binary is not on PATH' }, () => {
    test('readme-11.hcl: requests without Authorization are denied, with it allowed', async () => {
      const s = await serves(adjust(migrate(read('readme-11.hcl'))));
      assert.equal((await fetch(`${s.url}/_liveness`)).status, 403);
      assert.equal((await fetch(`${s.url}/_liveness`, { headers: { authorization: 'Bearer x' } })).status, 200);
    });

    test('readme-12.hcl: the files it names do not exist here, and start-up says so', async () => {
      await assert.rejects(startTestServer({ hcl: adjust(migrate(read('readme-12.hcl'))), env: ENV }), /cannot read data-file \.\/opa-data\.json/);
    });

    test('readme-13.hcl: its tests pass at start-up and its POST-only policy is enforced', async () => {
      const s = await serves(adjust(migrate(read('readme-13.hcl'))));
      assert.equal((await fetch(`${s.url}/_liveness`)).status, 403);
      assert.notEqual((await fetch(`${s.url}/api/v1/object/ns/k`, { method: 'POST', body: 'x' })).status, 403);
    });
  });

  test('readme-14.hcl (github-app): the private key it names does not exist here, and start-up says so', async () => {
    await assert.rejects(startTestServer({ hcl: adjust(migrate(read('readme-14.hcl'))), env: ENV }), /github-app\.pem/);
  });
});
