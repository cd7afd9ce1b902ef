import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFlakyUpstream, type FlakyUpstream } from '../../fixtures/flaky-upstream.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

/** Negative answers through real HTTP: remembered 404/410, never-cached 5xx, 504 on timeouts. */

let goproxy: FlakyUpstream;
let origin: FlakyUpstream;
let hoard: TestServer;

before(async () => {
  goproxy = await startFlakyUpstream((req, res) => {
    const url = req.url ?? '';
    if (url.includes('v9.9.9')) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: unknown revision v9.9.9');
    if (url.includes('v0.0.1')) return void res.writeHead(410, { 'content-type': 'text/plain' }).end('gone: retracted');
    res.writeHead(200, { 'content-type': 'application/zip' }).end(`zip of ${url}`);
  });
  origin = await startFlakyUpstream((req, res) => {
    if ((req.url ?? '').includes('missing')) return void res.writeHead(404).end('no such file');
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`body of ${req.url}`);
  }, '127.0.0.2');
  hoard = await startTestServer({
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
strategy gomod {
  proxy = "${goproxy.url}/goproxy"
  negative-ttl = "10m"
}
strategy host "${origin.url}" {
  upstream-timeout = "1s"
}
`,
  });
});
after(async () => {
  await hoard?.close();
  await goproxy.close();
  await origin.close();
});

const upstreamCount = (u: FlakyUpstream, part: string) => u.requests.filter((r) => r.url.includes(part)).length;

test('a herd asking for a missing immutable version reaches the upstream once: 404 and 410 are remembered for negative-ttl', async () => {
  for (const [version, status, text] of [['v9.9.9', 404, 'not found: unknown revision v9.9.9'], ['v0.0.1', 410, 'gone: retracted']] as const) {
    const url = `${hoard.url}/gomod/example.com/m/@v/${version}.zip`;
    const burst = await Promise.all(Array.from({ length: 6 }, () => fetch(url).then(async (r) => ({ status: r.status, body: await r.text() }))));
    for (const answer of burst) assert.deepEqual(answer, { status, body: text });
    const later = await fetch(url);
    assert.equal(later.status, status);
    assert.equal(later.headers.get('x-hoard-cache'), 'hit');
    assert.equal(await later.text(), text);
    assert.equal(upstreamCount(goproxy, version), 1, `${version}: one upstream request for the burst and the later request`);
  }
});

test('a 404 for a mutable name (host strategy) is not remembered', async () => {
  const url = `${hoard.url}/${origin.host}/files/missing.txt`;
  assert.equal((await fetch(url)).status, 404);
  assert.equal((await fetch(url)).status, 404);
  assert.equal(upstreamCount(origin, 'missing.txt'), 2);
});

test('5xx answers are never cached', async () => {
  const url = `${hoard.url}/${origin.host}/files/flaky.txt`;
  origin.mode = 'error-503';
  assert.equal((await fetch(url)).status, 503);
  assert.equal((await fetch(url)).status, 503);
  origin.mode = 'up';
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'body of /files/flaky.txt');
  assert.equal(upstreamCount(origin, 'flaky.txt'), 3);
});

test('an upstream that does not answer in upstream-timeout gets 504 (so clients retry), not 404 or 502', async () => {
  origin.mode = 'hang';
  try {
    const res = await fetch(`${hoard.url}/${origin.host}/files/slow.txt`);
    assert.equal(res.status, 504);
    assert.match(await res.text(), /timed out/);
  } finally {
    origin.mode = 'up';
  }
  const res = await fetch(`${hoard.url}/${origin.host}/files/slow.txt`);
  assert.equal(res.status, 200, 'the timeout was not cached');
});
