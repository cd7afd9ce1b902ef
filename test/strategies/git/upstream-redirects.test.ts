import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { Repository } from '../../../src/strategies/git/repository.js';
import { git, startGitUpstream, gitClientEnv, type GitUpstream } from '../../fixtures/git-upstream.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';
import { testRepoSettings } from '../../fixtures/repo-settings.js';

const execFileAsync = promisify(execFile);

// A (allowed) answers every request with a redirect to B, a real git upstream holding the
// repository that hoard must never reach: were any hop followed, the clone would succeed from B.
let target: GitUpstream;
let redirector: http.Server;
let redirectorHost: string;
const redirectorHits: string[] = [];
// A GitLab-like front (allowed): a repository URL without `.git` redirects, on the same host, to
// the one with it; `.git` URLs are served from `behind`, a real git upstream.
let behind: GitUpstream;
let front: http.Server;
let frontHost: string;
const frontHits: string[] = [];
let hoard: TestServer;
const logs: Array<Record<string, unknown>> = [];
let work: string;

before(async () => {
  target = await startGitUpstream();
  await target.createRepo('org/repo.git');
  redirector = http.createServer((req, res) => {
    redirectorHits.push(`${req.method} ${req.url}`);
    req.resume();
    // A redirect within the upstream's own host, written relative (as servers often do).
    if (req.url?.includes('relative=1')) return res.writeHead(301, { location: '/moved/repo.git/info/refs', 'content-length': '0' }).end();
    res.writeHead(302, { location: `${target.url}${req.url}`, 'content-length': '0' }).end();
  });
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve));
  redirectorHost = `127.0.0.1:${(redirector.address() as AddressInfo).port}`;
  behind = await startGitUpstream();
  await behind.createRepo('org/lab.git');
  front = http.createServer((req, res) => {
    const url = req.url ?? '';
    frontHits.push(`${req.method} ${url}`);
    const [pathname = '', query] = url.split('?');
    if (!pathname.includes('.git/')) {
      req.resume();
      if (!pathname.endsWith('/info/refs')) return res.writeHead(404, { 'content-length': '0' }).end();
      return res.writeHead(302, { location: `${pathname.replace(/\/info\/refs$/, '.git/info/refs')}${query ? `?${query}` : ''}`, 'content-length': '0' }).end();
    }
    const upstream = http.request(`${behind.url}${url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  frontHost = `127.0.0.1:${(front.address() as AddressInfo).port}`;
  hoard = await startTestServer({
    logs,
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
strategy git {
  allowed-hosts = ["${redirectorHost}", "${frontHost}"]
  plain-http-hosts = ["${redirectorHost}", "${target.hostPort}", "${frontHost}"]
}
`,
  });
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-redirect-client-'));
});

after(async () => {
  await hoard.close();
  redirector.closeAllConnections();
  await new Promise((resolve) => redirector.close(resolve));
  await target.close();
  front.closeAllConnections();
  await new Promise((resolve) => front.close(resolve));
  await behind.close();
  await fs.rm(work, { recursive: true, force: true });
});

/** Polls until the background clone of `upstream` has run its course; returns what the server logged about it. */
async function cloneOutcome(upstream: string): Promise<Record<string, unknown>> {
  for (;;) {
    const entry = logs.find((l) => l['upstream'] === upstream && (l['msg'] === 'clone failed' || l['msg'] === 'mirror ready'));
    if (entry) return entry;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('git upstream redirects', () => {
  test('a real git clone through hoard from an upstream that redirects to a host outside allowed-hosts fails with a 502 naming that host; the host sees nothing', async () => {
    const dest = path.join(work, 'clone');
    const failure = await execFileAsync('git', ['clone', `${hoard.url}/git/${redirectorHost}/org/repo.git`, dest], { env: gitClientEnv }).then(
      () => undefined,
      (err: Error & { stderr?: string }) => err,
    );
    assert.ok(failure, 'the clone must fail');
    const stderr = String((failure as { stderr?: string }).stderr);
    assert.match(stderr, /502/);
    // git shows a text/plain error body to the user as "remote: ...".
    assert.match(stderr, new RegExp(`redirected to ${target.hostPort.replace(/\./g, '\\.')}`));

    const logged = await cloneOutcome(`http://${redirectorHost}/org/repo`);
    assert.equal(logged['msg'], 'clone failed');
    assert.match(JSON.stringify(logged['err']), new RegExp(`upstream ${redirectorHost} redirected to ${target.hostPort}, which is not in allowed-hosts`.replace(/\./g, '\\.')));
    assert.ok(redirectorHits.some((h) => h.includes('/org/repo.git/info/refs')), 'hoard did ask the allowed upstream');
    assert.deepEqual(target.requests, [], 'the redirect target was never contacted');
  });

  test('a request that waits for the mirror (ensure-refs) gets 502 naming the refused host', async () => {
    const res = await fetch(`${hoard.url}/git/${redirectorHost}/org/repo.git/ensure-refs`, { method: 'POST', body: '{"refs":{"refs/heads/main":""}}' });
    const text = await res.text();
    assert.equal(res.status, 502, text);
    assert.match(text, new RegExp(`redirected to ${target.hostPort.replace(/\./g, '\\.')}, which is not in allowed-hosts`));
    assert.deepEqual(target.requests, []);
  });

  test('a forwarded request redirected within the upstream host is relayed with the Location made absolute (not resolved against hoard)', async () => {
    const res = await fetch(`${hoard.url}/git/${redirectorHost}/org/repo.git/info/refs?relative=1`, { redirect: 'manual' });
    await res.arrayBuffer();
    assert.equal(res.status, 301);
    assert.equal(res.headers.get('location'), `http://${redirectorHost}/moved/repo.git/info/refs`);
  });

  test('a ready mirror whose upstream starts redirecting: fetch fails naming the target, the ref check counts as fresh, the target sees nothing', async () => {
    // The mirror is made from the repository's files directly, then pointed at the redirecting upstream.
    const mirrors = path.join(work, 'mirrors');
    const dir = path.join(mirrors, redirectorHost, 'org', 'repo.git');
    git(['clone', '-q', '--mirror', path.join(target.root, 'repos', 'org', 'repo.git'), dir]);
    const upstreamURL = `http://${redirectorHost}/org/repo.git`;
    git(['config', 'remote.origin.url', upstreamURL], dir);
    const repo = new Repository(upstreamURL, dir, testRepoSettings(mirrors, { hostAllowed: (host) => host === redirectorHost }), 'ready');
    await assert.rejects(repo.fetch(), re(`upstream ${redirectorHost} redirected to ${target.hostPort}, which is not in allowed-hosts`));
    assert.equal(await repo.refsStale(), false);
    assert.deepEqual(target.requests, []);
  });

  test('a redirect within an allowed host (GitLab adding .git) is followed by hoard itself, hop checked: the mirror comes from the new URL and serves the next clone', async () => {
    const url = `${hoard.url}/git/${frontHost}/org/lab`;
    await execFileAsync('git', ['clone', '-q', url, path.join(work, 'lab-1')], { env: gitClientEnv });
    const outcome = await cloneOutcome(`http://${frontHost}/org/lab`);
    assert.equal(outcome['msg'], 'mirror ready', JSON.stringify(outcome));
    const posts = () => frontHits.filter((h) => h.startsWith('POST')).length;
    const postsBefore = posts();
    await execFileAsync('git', ['clone', '-q', url, path.join(work, 'lab-2')], { env: gitClientEnv });
    assert.equal(posts(), postsBefore, 'the second clone was served from the mirror');
    assert.equal(git(['rev-parse', 'HEAD'], path.join(work, 'lab-2')), git(['rev-parse', 'HEAD'], path.join(behind.root, 'repos', 'org', 'lab.git')));
  });
});

/** A RegExp matching `text` literally. */
function re(text: string): RegExp {
  return new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}