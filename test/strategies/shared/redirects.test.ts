import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

/** A loopback server that logs `<path> auth=<authorization>` for every request. */
async function loggingServer(handle: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ server: http.Server; host: string; url: string; hits: string[] }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.url} auth=${req.headers.authorization ?? ''}`);
    req.resume();
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, host, url: `http://${host}`, hits };
}

const close = async (server: http.Server) => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
};

// A: the configured (allowed) upstream. S: an allowed storage host. B: a host nobody allowed.
let a: Awaited<ReturnType<typeof loggingServer>>;
let s: Awaited<ReturnType<typeof loggingServer>>;
let b: Awaited<ReturnType<typeof loggingServer>>;
let hoard: TestServer;

const redirect = (res: http.ServerResponse, location: string) => res.writeHead(302, { location, 'content-length': '0' }).end();

before(async () => {
  b = await loggingServer((_req, res) => res.writeHead(200).end('from B'));
  s = await loggingServer((req, res) => res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(`stored ${req.url}`));
  a = await loggingServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/files/to-b') return redirect(res, `${b.url}/files/x`);
    if (url === '/files/to-storage') return redirect(res, `${s.url}/blob?sig=1`);
    if (url === '/files/same-host') return redirect(res, '/files/final');
    if (url === '/gh/pub/repo/releases/download/v1/to-b.bin') return redirect(res, `${b.url}/asset`);
    if (url === '/gh/pub/repo/releases/download/v1/ok.bin') return redirect(res, `${s.url}/release-asset?sig=2`);
    if (url === '/api/repos/priv/repo/releases/tags/v1') {
      const assets = [
        { name: 'secret.bin', url: `${a.url}/api/assets/1` },
        { name: 'bounce.bin', url: `${a.url}/api/assets/2` },
        // An API answer naming an asset URL on a host nobody allowed: the first hop is checked too.
        { name: 'elsewhere.bin', url: `${b.url}/api/assets/3` },
      ];
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ assets }));
    }
    if (url === '/goproxy/example.com/mod/@v/v1.0.0.zip') return redirect(res, `${s.url}/proxy-zip?sig=5`);
    if (url === '/goproxy/example.com/mod/@v/v1.0.1.zip') return redirect(res, `${b.url}/proxy-zip?sig=6`);
    if (url === '/api/assets/1') return redirect(res, `${s.url}/signed?sig=3`);
    if (url === '/api/assets/2') return redirect(res, `${b.url}/signed?sig=4`);
    res.writeHead(200).end(`A ${url}`);
  });
  hoard = await startTestServer({
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
strategy host "${a.url}" {
  redirect-hosts = ["${s.host}"]
}
strategy gomod {
  proxy = "${a.url}/goproxy"
  redirect-hosts = ["${s.host}"]
}
strategy github-releases {
  private-orgs = ["priv"]
  token = "sekrit"
  api-url = "${a.url}/api"
  download-url = "${a.url}/gh"
  redirect-hosts = ["${s.host}"]
}
`,
  });
});

after(async () => {
  await hoard.close();
  await Promise.all([close(a.server), close(s.server), close(b.server)]);
});

/** Escapes a host for a RegExp. */
const re = (text: string) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

describe('redirects of the host strategy', () => {
  test('a redirect to a host outside redirect-hosts answers 502 naming it, and that host sees nothing', async () => {
    const res = await fetch(`${hoard.url}/${a.host}/files/to-b`);
    const text = await res.text();
    assert.equal(res.status, 502, text);
    assert.match(text, re(`upstream ${a.host} redirected to ${b.host}, which is not in redirect-hosts of strategy host`));
    assert.deepEqual(b.hits, []);
  });

  test('a redirect to a host listed in redirect-hosts is followed and cached', async () => {
    const first = await fetch(`${hoard.url}/${a.host}/files/to-storage`);
    assert.equal(first.status, 200);
    assert.equal(await first.text(), 'stored /blob?sig=1');
    const second = await fetch(`${hoard.url}/${a.host}/files/to-storage`);
    assert.equal(await second.text(), 'stored /blob?sig=1');
    assert.equal(s.hits.filter((h) => h.startsWith('/blob')).length, 1, 'the second request was a cache hit');
  });

  test('a redirect within the target host still works', async () => {
    const res = await fetch(`${hoard.url}/${a.host}/files/same-host`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'A /files/final');
  });
});

describe('redirects of github-releases', () => {
  test('a public asset redirected to a host outside redirect-hosts answers 502 naming it; B sees nothing', async () => {
    const res = await fetch(`${hoard.url}/github.com/pub/repo/releases/download/v1/to-b.bin`);
    const text = await res.text();
    assert.equal(res.status, 502, text);
    assert.match(text, re(`redirected to ${b.host}, which is not in redirect-hosts of strategy github-releases`));
    assert.deepEqual(b.hits, []);
  });

  test('a public asset redirected to an allowed storage host is served', async () => {
    const res = await fetch(`${hoard.url}/github.com/pub/repo/releases/download/v1/ok.bin`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'stored /release-asset?sig=2');
  });

  test('a private asset: the token goes to the API host only, never to the storage host it redirects to', async () => {
    const res = await fetch(`${hoard.url}/github.com/priv/repo/releases/download/v1/secret.bin`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'stored /signed?sig=3');
    assert.ok(a.hits.includes('/api/assets/1 auth=Bearer sekrit'), a.hits.join('\n'));
    assert.deepEqual(s.hits.filter((h) => h.startsWith('/signed')), ['/signed?sig=3 auth=']);
  });

  test('a private asset redirected to a host outside redirect-hosts answers 502 naming it', async () => {
    const res = await fetch(`${hoard.url}/github.com/priv/repo/releases/download/v1/bounce.bin`);
    const text = await res.text();
    assert.equal(res.status, 502, text);
    assert.match(text, re(`upstream ${a.host} redirected to ${b.host}, which is not in redirect-hosts`));
    assert.deepEqual(b.hits, []);
  });

  test('an asset URL from the API on a host outside the list is refused before any request', async () => {
    const res = await fetch(`${hoard.url}/github.com/priv/repo/releases/download/v1/elsewhere.bin`);
    const text = await res.text();
    assert.equal(res.status, 502, text);
    assert.match(text, re(`refusing to fetch from ${b.host}, which is not in redirect-hosts`));
    assert.deepEqual(b.hits, []);
  });
});

describe('redirects of gomod', () => {
  test('a module zip redirected to a storage host in redirect-hosts is served (proxy.golang.org does this)', async () => {
    const res = await fetch(`${hoard.url}/gomod/example.com/mod/@v/v1.0.0.zip`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'stored /proxy-zip?sig=5');
  });

  test('a module zip redirected anywhere else answers 502 naming the host; B sees nothing', async () => {
    const res = await fetch(`${hoard.url}/gomod/example.com/mod/@v/v1.0.1.zip`);
    const text = await res.text();
    assert.equal(res.status, 502, text);
    assert.match(text, re(`redirected to ${b.host}, which is not in redirect-hosts of strategy gomod`));
    assert.deepEqual(b.hits, []);
  });
});

describe('redirect-hosts config', () => {
  test('an entry that is a URL rather than host[:port] is a config error', async () => {
    await assert.rejects(
      startTestServer({ hcl: `cache memory {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy host "https://example.com" {\n  redirect-hosts = ["https://cdn.example.com/x"]\n}\n` }),
      /redirect-hosts[\s\S]*expected host\[:port\]/,
    );
  });
});
