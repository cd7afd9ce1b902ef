import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startGoproxy, writeGoproxyDir, type GoproxyServer } from '../../fixtures/goproxy.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

/**
 * The GOPROXY answers' Cache-Control values (cachew-cache-strategies §5.6), the go command's
 * `Disable-Module-Fetch: true` (cache only), the checksum database proxied with its cached copy
 * as the fallback, and the start-up errors of private-paths.
 */

type SumdbMode = 'up' | 'down' | 'error';

/** A loopback stand-in for sum.golang.org: fixed bodies per endpoint, and a switch to fail. */
async function startSumdb(): Promise<{ url: string; hits: string[]; mode: SumdbMode; close(): Promise<void> }> {
  const state = { mode: 'up' as SumdbMode, hits: [] as string[] };
  const server = http.createServer((req, res) => {
    state.hits.push(req.url ?? '');
    if (state.mode === 'down') return void req.socket.destroy();
    if (state.mode === 'error') return void res.writeHead(503).end('overloaded\n');
    if (req.url?.startsWith('/lookup/example.com/unknown@')) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: unknown module\n');
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'private, max-age=1' }).end(`sumdb answer for ${req.url}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, {
    url,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

let tmp: string;
let upstream: GoproxyServer;
let sumdb: Awaited<ReturnType<typeof startSumdb>>;
let hoard: TestServer;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-gomod-semantics-'));
  await writeGoproxyDir(path.join(tmp, 'upstream'), [
    { module: 'example.com/lib', version: 'v1.0.0', files: { 'go.mod': 'module example.com/lib\n', 'lib.go': 'package lib\n' } },
    { module: 'example.com/lib', version: 'v1.1.0', files: { 'go.mod': 'module example.com/lib\n', 'lib.go': 'package lib\n' } },
  ]);
  upstream = await startGoproxy(path.join(tmp, 'upstream'));
  sumdb = await startSumdb();
  hoard = await startTestServer({ hcl: `cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy gomod {\n  proxy = "${upstream.url}"\n  sumdb = "${sumdb.url}"\n}\n` });
});

after(async () => {
  await hoard?.close();
  await upstream?.close();
  await sumdb?.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
});

async function get(p: string, headers: Record<string, string> = {}): Promise<{ status: number; cacheControl: string | null; body: string }> {
  const res = await fetch(`${hoard.url}/gomod/${p}`, { headers });
  return { status: res.status, cacheControl: res.headers.get('cache-control'), body: await res.text() };
}

describe('gomod Cache-Control', () => {
  test('a minute for what changes, a week for canonical module files (fetched or cached), a day for non-protocol paths', async () => {
    const expect = async (p: string, status: number, cacheControl: string) => {
      const got = await get(p);
      assert.equal(got.status, status, `${p}: ${got.body}`);
      assert.equal(got.cacheControl, cacheControl, p);
    };
    await expect('example.com/lib/@v/list', 200, 'public, max-age=60');
    await expect('example.com/lib/@latest', 200, 'public, max-age=60');
    await expect('example.com/lib/@v/main.info', 404, 'public, max-age=60');
    for (const ext of ['info', 'mod', 'zip']) {
      await expect(`example.com/lib/@v/v1.0.0.${ext}`, 200, 'public, max-age=604800'); // fetched
      await expect(`example.com/lib/@v/v1.0.0.${ext}`, 200, 'public, max-age=604800'); // cached
    }
    await expect('example.com/lib', 404, 'public, max-age=86400');
    await expect('sumdb/sum.golang.org/supported', 200, 'public, max-age=86400');
    await expect('sumdb/other.example/supported', 404, 'public, max-age=86400');
  });
});

describe('gomod Disable-Module-Fetch: true', () => {
  test('serves cached module files and nothing else, never asking the upstream', async () => {
    const warm = await get('example.com/lib/@v/v1.1.0.mod');
    assert.equal(warm.status, 200);
    const before = upstream.hits.length;
    const cacheOnly = { 'disable-module-fetch': 'true' };
    // The fill commits just after the last byte reached the client: poll until it is visible.
    let cached = await get('example.com/lib/@v/v1.1.0.mod', cacheOnly);
    for (let i = 0; cached.status !== 200 && i < 100; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      cached = await get('example.com/lib/@v/v1.1.0.mod', cacheOnly);
    }
    assert.equal(cached.status, 200);
    assert.equal(cached.body, 'module example.com/lib\n');
    for (const p of ['example.com/lib/@v/v1.1.0.zip', 'example.com/lib/@v/list', 'example.com/lib/@latest', 'example.com/lib/@v/main.info']) {
      const got = await get(p, cacheOnly);
      assert.equal(got.status, 404, p);
      assert.match(got.body, /Disable-Module-Fetch/, p);
    }
    assert.equal(upstream.hits.length, before, 'no request reached the upstream');
    // Without the header the same file is fetched as usual.
    assert.equal((await get('example.com/lib/@v/v1.1.0.zip')).status, 200);
    assert.equal(upstream.hits.length, before + 1);
  });
});

describe('gomod sumdb proxy', () => {
  const endpoints: Array<[string, string]> = [
    ['latest', 'public, max-age=3600'],
    ['lookup/example.com/lib@v1.0.0', 'public, max-age=86400'],
    ['tile/8/0/001', 'public, max-age=86400'],
  ];

  test('proxied while upstream answers; its stored copy served when upstream is down or failing', async () => {
    sumdb.mode = 'up';
    for (const [endpoint, cacheControl] of endpoints) {
      const got = await get(`sumdb/sum.golang.org/${endpoint}`, { authorization: 'Bearer for-hoard' });
      assert.equal(got.status, 200, endpoint);
      assert.equal(got.body, `sumdb answer for /${endpoint}\n`);
      assert.equal(got.cacheControl, cacheControl, endpoint);
    }
    // Upstream still answers: it is asked every time (the cache is only the fallback).
    const hits = sumdb.hits.length;
    await get('sumdb/sum.golang.org/latest');
    assert.equal(sumdb.hits.length, hits + 1);

    for (const mode of ['down', 'error'] as const) {
      sumdb.mode = mode;
      for (const [endpoint, cacheControl] of endpoints) {
        const got = await get(`sumdb/sum.golang.org/${endpoint}`);
        assert.equal(got.status, 200, `${mode} ${endpoint}: ${got.body}`);
        assert.equal(got.body, `sumdb answer for /${endpoint}\n`);
        assert.equal(got.cacheControl, cacheControl);
      }
      const never = await get('sumdb/sum.golang.org/tile/8/0/002');
      assert.equal(never.status, 502, mode);
      assert.equal(never.cacheControl, 'no-cache, no-store');
      assert.match(never.body, /nothing is cached/);
    }
  });

  test("upstream's 4xx is relayed and never stored", async () => {
    sumdb.mode = 'up';
    const unknown = await get('sumdb/sum.golang.org/lookup/example.com/unknown@v1.0.0');
    assert.equal(unknown.status, 404);
    sumdb.mode = 'down';
    assert.equal((await get('sumdb/sum.golang.org/lookup/example.com/unknown@v1.0.0')).status, 502);
    sumdb.mode = 'up';
  });
});

describe('gomod private-paths at start-up', () => {
  const refused = async (hcl: string, message: RegExp) => {
    await assert.rejects(startTestServer({ hcl: `cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\n${hcl}` }), message);
  };
  test('needs a strategy git block, GOPRIVATE-style patterns, and private-repo-hosts only with private-paths', async () => {
    await refused('strategy gomod { private-paths = ["example.com/private/*"] }\n', /private-paths needs a strategy git \{\} block/);
    await refused('strategy git {}\nstrategy gomod { private-paths = ["example.com/[ab]/*"] }\n', /character classes and escapes are not supported/);
    await refused('strategy gomod { private-repo-hosts = { "example.com" = "git.example.com" } }\n', /private-repo-hosts has no effect without private-paths/);
    // The order of the blocks does not matter: git's mirrors exist before gomod is created.
    const server = await startTestServer({ hcl: 'cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy gomod { private-paths = ["example.com/private"] }\nstrategy git {}\n' });
    await server.close();
  });
});
