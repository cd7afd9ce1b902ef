import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

const run = promisify(execFile);

/**
 * A loopback stand-in for an Artifactory remote repository: content under
 * /artifactory/<repo>/..., API-key or Basic authentication, and (like Artifactory backed by a blob
 * store) a redirect to a signed storage URL unless the client sends
 * `X-JFrog-Download-Redirect-To: None`.
 */
let artifactory: http.Server;
let target: string;
const hits: Array<{ url: string; apiKey?: string | undefined; authorization?: string | undefined; redirectTo?: string | undefined }> = [];
let hoard: TestServer;

const KEYS = new Set(['key-alice', 'key-bob']);
const BASIC = `Basic ${Buffer.from('carol:pw').toString('base64')}`;

before(async () => {
  artifactory = http.createServer((req, res) => {
    const apiKey = req.headers['x-jfrog-art-api'] as string | undefined;
    const redirectTo = req.headers['x-jfrog-download-redirect-to'] as string | undefined;
    hits.push({ url: req.url ?? '', apiKey, authorization: req.headers.authorization, redirectTo });
    if (!(req.url ?? '').startsWith('/artifactory/libs-remote/')) return res.writeHead(404).end('no such repository');
    const authed = (apiKey && KEYS.has(apiKey)) || req.headers.authorization === BASIC;
    if (!authed) return res.writeHead(401, { 'www-authenticate': 'Basic realm="Artifactory"' }).end('unauthorized');
    if (redirectTo !== 'None') return res.writeHead(302, { location: 'http://127.0.0.1:1/signed-blob' }).end();
    res.writeHead(200, { 'content-type': 'application/java-archive', 'set-cookie': 'JSESSIONID=secret' });
    res.end(`jar ${req.url}`);
  });
  await new Promise<void>((resolve) => artifactory.listen(0, '127.0.0.1', resolve));
  target = `http://127.0.0.1:${(artifactory.address() as AddressInfo).port}/artifactory`;
  hoard = await startTestServer({
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
strategy artifactory "${target}" { hosts = ["maven.example.test"] }
`,
  });
});
after(async () => {
  await hoard.close();
  artifactory.closeAllConnections();
  await new Promise((resolve) => artifactory.close(resolve));
});

const prefix = () => `${hoard.url}/${new URL(target).host}/artifactory`;

async function curl(args: string[]): Promise<{ status: number; body: string; headers: string }> {
  const { stdout } = await run('curl', ['-sS', '-i', '-w', '\n%{http_code}', ...args]);
  const cut = stdout.lastIndexOf('\n');
  const full = stdout.slice(0, cut);
  const split = full.indexOf('\r\n\r\n');
  return { status: Number(stdout.slice(cut + 1)), headers: full.slice(0, split), body: full.slice(split + 4) };
}

const hitsFor = (path: string) => hits.filter((h) => h.url === path);

describe('strategy artifactory', () => {
  test('path-prefix route: fetched with the caller’s credentials, streamed (no redirect) and cached', async () => {
    const url = `${prefix()}/libs-remote/org/a/1.0/a-1.0.jar`;
    const first = await curl(['-H', 'X-JFrog-Art-Api: key-alice', url]);
    assert.equal(first.status, 200);
    assert.equal(first.body, 'jar /artifactory/libs-remote/org/a/1.0/a-1.0.jar');
    const [hit] = hitsFor('/artifactory/libs-remote/org/a/1.0/a-1.0.jar');
    assert.equal(hit?.apiKey, 'key-alice');
    assert.equal(hit?.redirectTo, 'None');
    const second = await curl(['-H', 'X-JFrog-Art-Api: key-alice', url]);
    assert.equal(second.status, 200);
    assert.equal(second.body, first.body);
    assert.equal(hitsFor('/artifactory/libs-remote/org/a/1.0/a-1.0.jar').length, 1, 'the second GET was a cache hit');
    assert.doesNotMatch(second.headers, /set-cookie/i, 'upstream cookies are not stored');
  });

  test('content fetched with one caller’s credentials is never served to another caller', async () => {
    const path = '/artifactory/libs-remote/org/b/1.0/b-1.0.jar';
    const url = `${prefix()}/libs-remote/org/b/1.0/b-1.0.jar`;
    assert.equal((await curl(['-H', 'X-JFrog-Art-Api: key-alice', url])).status, 200);
    // No credentials, and wrong credentials: each goes to Artifactory, which refuses.
    assert.equal((await curl([url])).status, 401);
    assert.equal((await curl(['-H', 'X-JFrog-Art-Api: key-mallory', url])).status, 401);
    // Another valid caller gets its own fetch, not alice's copy.
    assert.equal((await curl(['-H', 'X-JFrog-Art-Api: key-bob', url])).status, 200);
    assert.deepEqual(
      hitsFor(path).map((h) => h.apiKey ?? '(none)'),
      ['key-alice', '(none)', 'key-mallory', 'key-bob'],
    );
    // 401s are not cached: mallory is asked again.
    assert.equal((await curl(['-H', 'X-JFrog-Art-Api: key-mallory', url])).status, 401);
    assert.equal(hitsFor(path).length, 5);
  });

  test('host-based route: a request for a configured Host maps its whole path onto the target, sharing entries with the prefix route', async () => {
    const path = '/artifactory/libs-remote/org/c/1.0/c-1.0.jar';
    const viaHost = await curl(['-u', 'carol:pw', '-H', 'Host: maven.example.test:8081', `${hoard.url}/libs-remote/org/c/1.0/c-1.0.jar`]);
    assert.equal(viaHost.status, 200);
    assert.equal(viaHost.body, `jar ${path}`);
    assert.equal(hitsFor(path)[0]?.authorization, BASIC);
    const viaPrefix = await curl(['-u', 'carol:pw', `${prefix()}/libs-remote/org/c/1.0/c-1.0.jar`]);
    assert.equal(viaPrefix.body, viaHost.body);
    assert.equal(hitsFor(path).length, 1, 'both routes name the same upstream URL and the same caller, so one entry');
  });

  test('host-based route refuses dot segments and leaves other hosts to the router', async () => {
    const dots = await curl(['--path-as-is', '-u', 'carol:pw', '-H', 'Host: maven.example.test', `${hoard.url}/libs-remote/../../etc/passwd`]);
    assert.equal(dots.status, 400);
    const other = await curl(['-H', 'Host: other.example.test', `${hoard.url}/libs-remote/org/c/1.0/c-1.0.jar`]);
    assert.equal(other.status, 404, 'not a configured host: the router has no such route');
  });
});

describe('strategy artifactory config', () => {
  test('a label without a scheme is refused at start-up with a message saying what is expected', async () => {
    await assert.rejects(
      startTestServer({ hcl: 'cache memory {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy artifactory "example.jfrog.io" {}\n' }),
      /artifactory: target must be http\(s\)|must be the target URL with its scheme/,
    );
  });
});
