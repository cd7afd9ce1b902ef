import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

const run = promisify(execFile);

// The origin records every request it gets, with the headers a leak would show.
let origin: http.Server;
let originHost: string;
const hits: Array<{ url: string; authorization?: string | undefined; cookie?: string | undefined }> = [];
let hoard: TestServer;

before(async () => {
  origin = http.createServer((req, res) => {
    hits.push({ url: req.url ?? '', authorization: req.headers.authorization, cookie: req.headers.cookie });
    if ((req.url ?? '').includes('missing')) return res.writeHead(404, { 'content-type': 'text/plain' }).end('no such file');
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'set-cookie': 'session=upstream' });
    res.end(`origin body of ${req.url}`);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originHost = `127.0.0.1:${(origin.address() as AddressInfo).port}`;
  hoard = await startTestServer({
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
strategy proxy { plain-http-hosts = ["${originHost}"] }
`,
  });
});
after(async () => {
  await hoard.close();
  origin.closeAllConnections();
  await new Promise((resolve) => origin.close(resolve));
});

/** Runs the real curl (hoard as its proxy via the arguments or env); returns status and body. */
async function curl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number; body: string }> {
  const base = { ...process.env };
  for (const name of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY']) delete base[name];
  const { stdout } = await run('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', ...args], { env: { ...base, ...env } });
  const cut = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(cut + 1)), body: stdout.slice(0, cut) };
}

const hitsFor = (path: string) => hits.filter((h) => h.url === path).length;

describe('strategy proxy (absolute-form HTTP proxy)', () => {
  test('curl -x fetches through hoard and the second request is served from the cache', async () => {
    const first = await curl(['-x', hoard.url, `http://${originHost}/pkgs/a.zip`]);
    assert.equal(first.status, 200);
    assert.equal(first.body, 'origin body of /pkgs/a.zip');
    const second = await curl(['-x', hoard.url, `http://${originHost}/pkgs/a.zip`]);
    assert.equal(second.status, 200);
    assert.equal(second.body, 'origin body of /pkgs/a.zip');
    assert.equal(hitsFor('/pkgs/a.zip'), 1, 'one upstream fetch for two proxied GETs');
  });

  test('a client configured through http_proxy goes through hoard', async () => {
    const res = await curl([`http://${originHost}/pkgs/env.zip`], { http_proxy: hoard.url, NO_PROXY: '', no_proxy: '' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'origin body of /pkgs/env.zip');
    const again = await curl([`http://${originHost}/pkgs/env.zip`], { http_proxy: hoard.url, NO_PROXY: '', no_proxy: '' });
    assert.equal(again.body, 'origin body of /pkgs/env.zip');
    assert.equal(hitsFor('/pkgs/env.zip'), 1);
  });

  test("a proxied http://host/api/v1/... goes to that host, never to hoard's own object API", async () => {
    const res = await curl(['-x', hoard.url, `http://${originHost}/api/v1/object/default/key`]);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'origin body of /api/v1/object/default/key');
    assert.equal(hitsFor('/api/v1/object/default/key'), 1);
  });

  test('caller credentials and cookies are not forwarded; upstream cookies are not replayed from the cache', async () => {
    await curl(['-x', hoard.url, '-H', 'Authorization: Bearer caller-secret', '-b', 'sid=caller', `http://${originHost}/pkgs/creds.zip`]);
    const hit = hits.find((h) => h.url === '/pkgs/creds.zip');
    assert.ok(hit);
    assert.equal(hit.authorization, undefined);
    assert.equal(hit.cookie, undefined);
    const cached = await fetchViaProxy(`http://${originHost}/pkgs/creds.zip`);
    assert.equal(cached.status, 200);
    assert.equal(cached.headers['set-cookie'], undefined);
  });

  test('upstream errors are relayed and not cached; only GET and HEAD are intercepted', async () => {
    const missing = await curl(['-x', hoard.url, `http://${originHost}/pkgs/missing.zip`]);
    assert.equal(missing.status, 404);
    await curl(['-x', hoard.url, `http://${originHost}/pkgs/missing.zip`]);
    assert.equal(hitsFor('/pkgs/missing.zip'), 2, '404 is not cached');
    const post = await curl(['-x', hoard.url, '-X', 'POST', '--data', 'x', `http://${originHost}/pkgs/post`]);
    assert.equal(post.status, 400, 'a POST in absolute form is left to the router, which refuses it');
    assert.equal(hitsFor('/pkgs/post'), 0);
    const head = await fetchViaProxy(`http://${originHost}/pkgs/a.zip`, 'HEAD');
    assert.equal(head.status, 200);
  });

  test('an http:// target not in plain-http-hosts is fetched over https (and fails cleanly here)', async () => {
    const other = `localhost:${originHost.split(':')[1]}`;
    const res = await curl(['-x', hoard.url, `http://${other}/pkgs/upgraded.zip`]);
    assert.equal(res.status, 502);
    assert.equal(hitsFor('/pkgs/upgraded.zip'), 0, 'no plain-text request reached the origin');
  });
});

describe('strategy proxy allowed-hosts', () => {
  test('a target host outside allowed-hosts is refused with 403 and never contacted', async () => {
    const limited = await startTestServer({
      hcl: `cache memory {}
metadata memory {}
metrics { port = 0 }
strategy proxy {
  allowed-hosts = ["mirror.example.com"]
  plain-http-hosts = ["${originHost}"]
}
`,
    });
    try {
      const before = hits.length;
      const res = await curl(['-x', limited.url, `http://${originHost}/pkgs/refused.zip`]);
      assert.equal(res.status, 403);
      assert.match(res.body, /not in allowed-hosts/);
      assert.equal(hits.length, before);
    } finally {
      await limited.close();
    }
  });
});

/** A raw proxy-form request (Node's fetch cannot send an absolute-form target). */
function fetchViaProxy(target: string, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const proxy = new URL(hoard.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, method, path: target, headers: { host: new URL(target).host } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}
