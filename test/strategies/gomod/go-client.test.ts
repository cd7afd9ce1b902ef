import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildGoApp, goClientEnv, runGo } from '../../fixtures/go-client.js';
import { startGoproxy, writeGoproxyDir, type GoModuleVersion, type GoproxyServer } from '../../fixtures/goproxy.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

/**
 * hoard as a GOPROXY for the real `go` command, against a file-based GOPROXY upstream on
 * loopback: module paths and versions with upper-case letters (which Go escapes as `!x` and
 * percent-encodes as `%21x`), then an offline rebuild from hoard's cache alone.
 */


const MODULES: GoModuleVersion[] = [
  {
    module: 'example.com/BurntSushi/toml',
    version: 'v1.2.0',
    files: { 'go.mod': 'module example.com/BurntSushi/toml\n\ngo 1.18\n', 'toml.go': 'package toml\n\nfunc Name() string { return "toml-v1.2.0" }\n' },
  },
  {
    module: 'example.com/lib',
    version: 'v1.0.0-RC1',
    files: { 'go.mod': 'module example.com/lib\n\ngo 1.18\n', 'lib.go': 'package lib\n\nfunc Name() string { return "lib-v1.0.0-RC1" }\n' },
  },
];

const APP_GO_MOD = `module example.com/app

go 1.18

require (
\texample.com/BurntSushi/toml v1.2.0
\texample.com/lib v1.0.0-RC1
)
`;
// println (to stderr) keeps the build to the runtime: no fmt to compile in a fresh build cache.
const APP_MAIN = `package main

import (
\t"example.com/BurntSushi/toml"
\t"example.com/lib"
)

func main() { println(toml.Name(), lib.Name()) }
`;

let tmp: string;
let upstream: GoproxyServer;
let upstreamOpen = false;
let hoard: TestServer;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-gomod-'));
  await writeGoproxyDir(path.join(tmp, 'upstream'), MODULES);
  upstream = await startGoproxy(path.join(tmp, 'upstream'));
  upstreamOpen = true;
  hoard = await startTestServer({ hcl: `cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy gomod { proxy = "${upstream.url}" }\n` });
});

after(async () => {
  if (upstreamOpen) await upstream.close();
  await hoard?.close();
  if (tmp) {
    // Go writes its module cache read-only.
    spawnSync('chmod', ['-R', 'u+w', tmp]);
    await fs.rm(tmp, { recursive: true, force: true });
  }
});

/** The environment of an isolated go command using hoard as its only proxy. */
const goEnv = (home: string) => goClientEnv({ home, buildCache: path.join(tmp, 'gocache'), proxy: `${hoard.url}/gomod` });

/** Writes the app, downloads its modules through hoard, builds it and returns what it prints. */
const buildApp = (home: string) => buildGoApp(home, { goMod: APP_GO_MOD, main: APP_MAIN }, goEnv(home));

describe('gomod with the real go client', () => {
  test('upper-case module paths and pre-releases download, build, and rebuild offline from the cache', async () => {
    const online = await buildApp(path.join(tmp, 'online'));
    assert.equal(online, 'toml-v1.2.0 lib-v1.0.0-RC1');
    const fetched = upstream.hits.map((h) => h.path);
    for (const file of ['/example.com/!burnt!sushi/toml/@v/v1.2.0.zip', '/example.com/lib/@v/v1.0.0-!r!c1.zip', '/example.com/lib/@v/v1.0.0-!r!c1.mod']) {
      assert.ok(fetched.includes(file), `upstream never asked for ${file}: ${fetched.join(', ')}`);
    }

    // Upstream gone, module cache empty: everything must come from hoard's cache.
    await upstream.close();
    upstreamOpen = false;
    const hitsBefore = upstream.hits.length;
    const offline = await buildApp(path.join(tmp, 'offline'));
    assert.equal(offline, 'toml-v1.2.0 lib-v1.0.0-RC1');
    assert.equal(upstream.hits.length, hitsBefore);

    // The `%21` spelling Go sends and a literal `!` name the same cached object (same
    // Accept-Encoding as Go's, which selects the cached variant).
    const literal = await fetch(`${hoard.url}/gomod/example.com/!burnt!sushi/toml/@v/v1.2.0.mod`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(literal.status, 200);
    assert.equal(await literal.text(), MODULES[0]!.files['go.mod']);
  });
});

describe('gomod pass-through routes', () => {
  let own: GoproxyServer;
  let server: TestServer;
  before(async () => {
    own = await startGoproxy(path.join(tmp, 'upstream'));
    server = await startTestServer({ hcl: `cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy gomod { proxy = "${own.url}/" }\n` });
  });
  after(async () => {
    await server?.close();
    await own?.close();
  });

  test("the caller's Authorization and cookies never reach the upstream proxy, and its cookies never reach the caller", async () => {
    const credentials = { authorization: 'Bearer meant-for-hoard', cookie: 'session=secret', 'accept-encoding': 'gzip' };
    const paths = [
      'example.com/%21burnt%21sushi/toml/@v/list',
      'example.com/%21burnt%21sushi/toml/@latest',
      'example.com/lib/@v/master.info', // a version query: passed through, never cached
      'example.com/lib/@v/v1.0.0-%21r%21c1.info', // canonical: the caching handler
    ];
    for (const p of paths) {
      const before = own.hits.length;
      const res = await fetch(`${server.url}/gomod/${p}`, { headers: credentials });
      await res.arrayBuffer();
      assert.ok([200, 404].includes(res.status), `${p}: ${res.status}`);
      const reached = own.hits.slice(before);
      assert.equal(reached.length, 1, `${p} reached the upstream once`);
      assert.equal(reached[0]?.headers['authorization'], undefined, p);
      assert.equal(reached[0]?.headers['cookie'], undefined, p);
      assert.equal(res.headers.get('set-cookie'), null, p);
    }
    assert.deepEqual(
      own.hits.slice(-4).map((h) => h.path),
      ['/example.com/!burnt!sushi/toml/@v/list', '/example.com/!burnt!sushi/toml/@latest', '/example.com/lib/@v/master.info', '/example.com/lib/@v/v1.0.0-!r!c1.info'],
    );
    const list = await fetch(`${server.url}/gomod/example.com/%21burnt%21sushi/toml/@v/list`);
    assert.equal(await list.text(), 'v1.2.0\n');
  });

  test('paths Go would never send are refused with the reason, without asking the upstream', async () => {
    const before = own.hits.length;
    const refused: Array<[string, RegExp]> = [
      ['example.com/BurntSushi/toml/@v/list', /invalid escaped module path "example\.com\/BurntSushi\/toml"/],
      ['example.com/%21/@v/list', /invalid escaped module path/],
      ['example.com/x%21/@v/list', /invalid escaped module path/],
      ['%21example.com/x/@v/list', /invalid character in first path element "Example\.com"/],
      ['nodot/x/@v/list', /missing dot in first path element/],
      ['example.com/.hidden/@v/list', /leading dot/],
      ['example.com/x/v1/@v/list', /invalid major version suffix \/v1/],
      ['example.com/x/@v/v1.0.0-RC1.info', /invalid escaped version "v1\.0\.0-RC1"/],
      ['example.com/x/@v/list/extra', /^not found\n$/],
      ['example.com/x', /not a module proxy path/],
    ];
    for (const [p, message] of refused) {
      const res = await fetch(`${server.url}/gomod/${p}`);
      assert.equal(res.status, 404, p);
      assert.match(await res.text(), message, p);
    }
    assert.equal(own.hits.length, before, 'no refused path reached the upstream');
  });
});
