import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

let origin: http.Server;
let originUrl: string;
const hits: string[] = [];
let hoard: TestServer;

before(async () => {
  origin = http.createServer((req, res) => {
    hits.push(`${req.url} auth=${req.headers.authorization ?? ''} cookie=${req.headers.cookie ?? ''} x-static=${req.headers['x-static'] ?? ''}`);
    const url = req.url ?? '';
    if (url.includes('missing')) return res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
    if (url.includes('broken')) {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000));
      setTimeout(() => res.destroy(), 20);
      return;
    }
    if (url.includes('redirect')) return res.writeHead(302, { location: `${originUrl}/files/target.bin` }).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'set-cookie': 'a=b', etag: '"upstream"' });
    res.end(`body of ${url}`);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  hoard = await startTestServer({
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
strategy host "${originUrl}" {
  headers = { "X-Static" = "from-config" }
}
strategy gomod { proxy = "${originUrl}/goproxy" }
strategy github-releases {
  private-orgs = []
  download-url = "${originUrl}/gh"
}
`,
  });
});
after(async () => {
  await hoard.close();
  origin.closeAllConnections();
  await new Promise((resolve) => origin.close(resolve));
});

const host = () => originUrl.replace('http://', '');

describe('generic caching handler (host strategy)', () => {
  test('a route prefix spelled with percent-escapes is refused, never re-sliced into another upstream', async () => {
    const before = hits.length;
    // "%31" is "1": decodes to the configured host, but the raw text is longer than the prefix.
    const encodedHost = host().replace(/^1/, '%31');
    for (const p of [`/${encodedHost}/files/a.bin`, '/%67omod/example.com/@v/list']) {
      const res = await fetch(`${hoard.url}${p}`);
      assert.equal(res.status, 400, p);
    }
    assert.equal(hits.length, before, 'no upstream request was made');
  });

  test('an encoded slash in a proxied path reaches the upstream as written (registry APIs need it)', async () => {
    const res = await fetch(`${hoard.url}/${host()}/api/v4/projects/group%2Fproject/raw`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'body of /api/v4/projects/group%2Fproject/raw');
  });

  test('miss fetches upstream once, hit is served from cache with our own ETag; credentials are not forwarded', async () => {
    const url = `${hoard.url}/${host()}/files/a.bin?v=1`;
    const first = await fetch(url, { headers: { authorization: 'Bearer caller', cookie: 'c=1', 'accept-encoding': 'identity' } });
    assert.equal(first.status, 200);
    assert.equal(await first.text(), 'body of /files/a.bin?v=1');
    const second = await fetch(url, { headers: { 'accept-encoding': 'identity' } });
    assert.equal(await second.text(), 'body of /files/a.bin?v=1');
    assert.notEqual(second.headers.get('etag'), '"upstream"');
    assert.equal(second.headers.get('set-cookie'), null);
    assert.equal(second.headers.get('content-type'), 'application/octet-stream');
    const upstreamHits = hits.filter((h) => h.startsWith('/files/a.bin'));
    assert.equal(upstreamHits.length, 1);
    assert.match(upstreamHits[0] ?? '', /auth= cookie= x-static=from-config/);
    const ranged = await fetch(url, { headers: { range: 'bytes=0-3', 'accept-encoding': 'identity' } });
    assert.equal(ranged.status, 206);
    assert.equal(await ranged.text(), 'body');
  });

  test('upstream 404 is relayed and not cached; a body cut short is not cached', async () => {
    const miss = `${hoard.url}/${host()}/files/missing.bin`;
    assert.equal((await fetch(miss)).status, 404);
    assert.equal((await fetch(miss)).status, 404);
    assert.equal(hits.filter((h) => h.startsWith('/files/missing')).length, 2);
    const broken = `${hoard.url}/${host()}/files/broken.bin`;
    await assert.rejects(async () => {
      const res = await fetch(broken);
      await res.arrayBuffer();
    });
    await assert.rejects(async () => {
      const res = await fetch(broken);
      await res.arrayBuffer();
    });
    assert.equal(hits.filter((h) => h.startsWith('/files/broken')).length, 2);
  });

  test('redirects are followed and the final body cached', async () => {
    const res = await fetch(`${hoard.url}/${host()}/files/redirect`);
    assert.equal(await res.text(), 'body of /files/target.bin');
  });
});

describe('gomod and github-releases', () => {
  test('canonical module files are cached; lists are cached for mutable-ttl; bad paths 404', async () => {
    const zip = `${hoard.url}/gomod/github.com/x/y/@v/v1.2.3.zip`;
    assert.equal(await (await fetch(zip)).text(), 'body of /goproxy/github.com/x/y/@v/v1.2.3.zip');
    await (await fetch(zip)).text();
    assert.equal(hits.filter((h) => h.startsWith('/goproxy/github.com/x/y/@v/v1.2.3.zip')).length, 1);
    await (await fetch(`${hoard.url}/gomod/github.com/x/y/@v/list`)).text();
    await (await fetch(`${hoard.url}/gomod/github.com/x/y/@v/list`)).text();
    // Within mutable-ttl (1m by default) the second list is a hit; test/strategies/stale.test.ts covers revalidation.
    assert.equal(hits.filter((h) => h.startsWith('/goproxy/github.com/x/y/@v/list')).length, 1);
    assert.equal((await fetch(`${hoard.url}/gomod/github.com/BadCase/y/@v/list`)).status, 404);
    assert.equal((await fetch(`${hoard.url}/gomod/sumdb/sum.golang.org/supported`)).status, 200);
  });

  test('public release assets are cached under /github.com/...', async () => {
    const url = `${hoard.url}/github.com/org/tool/releases/download/v1.0/tool-linux.tgz`;
    assert.equal(await (await fetch(url)).text(), 'body of /gh/org/tool/releases/download/v1.0/tool-linux.tgz');
    await (await fetch(url)).text();
    assert.equal(hits.filter((h) => h.startsWith('/gh/org/tool')).length, 1);
  });
});
