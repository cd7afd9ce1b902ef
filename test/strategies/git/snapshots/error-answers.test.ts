/**
 * How snapshot and bundle requests fail (issue 10 leftovers): a repository the upstream lacks is
 * 404 "repository not found" and a clone refused for a redirect outside allowed-hosts is 502
 * naming the refused host, as ensure-refs answers; while the authoritative S3 tier is down a
 * cold snapshot read is 503 naming the tier, and the generic caching handler serves from
 * upstream instead of refusing. No answer carries a server path.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startGitUpstream, type GitUpstream } from '../../../fixtures/git-upstream.js';
import { s3ConfigBlock, type S3rverHandle, startS3rver } from '../../../fixtures/s3rver.js';
import { startTestServer, type TestServer } from '../../../fixtures/server.js';

const BASE = 'a'.repeat(40);
let upstream: GitUpstream;
let redirector: http.Server;
let redirectorHost: string;
/** Not in allowed-hosts: must never be asked anything. */
let forbidden: http.Server;
let forbiddenHost: string;
const forbiddenHits: string[] = [];

before(async () => {
  upstream = await startGitUpstream();
  await upstream.createRepo('org/app.git');
  forbidden = http.createServer((req, res) => {
    forbiddenHits.push(`${req.method} ${req.url}`);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => forbidden.listen(0, '127.0.0.1', resolve));
  forbiddenHost = `127.0.0.1:${(forbidden.address() as AddressInfo).port}`;
  // Allowed, but sends every request to `forbidden`, which is not.
  redirector = http.createServer((req, res) => {
    req.resume();
    res.writeHead(302, { location: `http://${forbiddenHost}${req.url}`, 'content-length': '0' }).end();
  });
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  redirectorHost = `127.0.0.1:${(redirector.address() as AddressInfo).port}`;
});
after(async () => {
  for (const server of [redirector, forbidden]) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await upstream.close();
});

/** Fails when `text` names a directory of the server (its state directory, or any /tmp path). */
function assertNoServerPath(text: string, hoard: TestServer): void {
  assert.ok(!text.includes(hoard.stateDir), `the answer names the state directory: ${text}`);
  assert.doesNotMatch(text, /(^|[\s'"])\/(tmp|var|work|home|root)\//, `the answer names a server path: ${text}`);
}

describe('snapshot and bundle requests for a repository whose clone was refused', () => {
  let hoard: TestServer;
  before(async () => {
    hoard = await startTestServer({
      hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
strategy git {
  allowed-hosts = ["${upstream.hostPort}", "${redirectorHost}"]
  plain-http-hosts = ["${upstream.hostPort}", "${redirectorHost}"]
}
`,
    });
  });
  after(() => hoard.close());

  for (const [name, suffix] of [
    ['snapshot', 'snapshot.tar.zst'],
    ['bundle', `snapshot.bundle?base=${BASE}`],
  ] as const) {
    test(`${name}: the upstream lacks the repository → 404 repository not found`, async () => {
      const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/${name}-missing.git/${suffix}`);
      const text = await res.text();
      assert.equal(res.status, 404, text);
      assert.match(text, new RegExp(`^repository not found: .*org/${name}-missing`));
      assertNoServerPath(text, hoard);
    });

    test(`${name}: the upstream redirects outside allowed-hosts → 502 naming the refused host, which sees nothing`, async () => {
      const res = await fetch(`${hoard.url}/git/${redirectorHost}/org/${name}-moved.git/${suffix}`);
      const text = await res.text();
      assert.equal(res.status, 502, text);
      assert.ok(text.includes(`redirected to ${forbiddenHost}, which is not in allowed-hosts`), text);
      assertNoServerPath(text, hoard);
      assert.deepEqual(forbiddenHits, [], 'the refused host was never contacted');
    });
  }
});

describe('while the authoritative S3 tier is down', () => {
  let s3: S3rverHandle;
  let files: http.Server;
  let filesHost: string;
  let hoard: TestServer;
  before(async () => {
    s3 = await startS3rver();
    files = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`file ${req.url}`));
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    filesHost = `127.0.0.1:${(files.address() as AddressInfo).port}`;
    hoard = await startTestServer({
      hcl: `${s3ConfigBlock(s3.endpoint)}
cache disk {}
cache s3 { bucket = "${s3.bucket}" }
metadata memory {}
metrics { port = 0 }
strategy git {
  plain-http-hosts = ["${upstream.hostPort}"]
}
strategy host "http://${filesHost}" {}
`,
    });
    await s3.stop();
  });
  after(async () => {
    await hoard.close();
    files.closeAllConnections();
    await new Promise((resolve) => files.close(resolve));
  });

  test('a cold snapshot read answers 503 naming the tier', async () => {
    const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/app.git/snapshot.tar.zst`);
    const text = await res.text();
    assert.equal(res.status, 503, text);
    assert.match(text, /cache tier s3 \(bucket hoard-test\) unavailable: .*ECONNREFUSED/);
    assertNoServerPath(text, hoard);
  });

  test('the generic caching handler serves from upstream instead of refusing', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await fetch(`${hoard.url}/${filesHost}/some/file.txt`, { method });
      const text = await res.text();
      assert.equal(res.status, 200, `${method}: ${text}`);
      if (method === 'GET') assert.equal(text, 'file /some/file.txt');
    }
  });
});
