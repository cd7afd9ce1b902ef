import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gitAsync, hoardOwn } from '../../fixtures/git-client.js';
import { gitHoardHcl, mirrorPath } from '../../fixtures/git-hoard.js';
import { startGitUpstream, git, type GitUpstream } from '../../fixtures/git-upstream.js';
import { waitFor } from '../../fixtures/poll.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';
import { loadConfig } from '../../../src/config/load.js';
import { allProviderSpecs } from '../../../src/app/wiring.js';
import { githubRepositoryNames, verifyGithubSignature } from '../../../src/strategies/git/webhook.js';

const SECRET = 'It’s a Secret to Everybody';

const sign = (body: string, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** A GitHub push payload (the fields hoard reads, plus some it ignores) for a repository on the test upstream. */
function pushPayload(hostPort: string, fullName: string, after: string): string {
  return JSON.stringify({
    ref: 'refs/heads/main',
    after,
    repository: { full_name: fullName, html_url: `http://${hostPort}/${fullName}`, clone_url: `http://${hostPort}/${fullName}.git`, private: false },
    pusher: { name: 'someone' },
  });
}

async function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.status, text: await res.text() };
}

describe('GitHub signatures and payloads', () => {
  test('X-Hub-Signature-256 is the HMAC-SHA256 of the raw body (GitHub documentation example)', () => {
    // The example from GitHub's "Validating webhook deliveries" page.
    assert.ok(verifyGithubSignature("It's a Secret to Everybody", Buffer.from('Hello, World!'), 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'));
    assert.equal(verifyGithubSignature('other secret', Buffer.from('Hello, World!'), 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'), false);
    assert.equal(verifyGithubSignature("It's a Secret to Everybody", Buffer.from('Hello, World!'), undefined), false);
    assert.equal(verifyGithubSignature("It's a Secret to Everybody", Buffer.from('Hello, World!'), 'sha256=757107'), false);
    assert.equal(verifyGithubSignature("It's a Secret to Everybody", Buffer.from('Hello, World!'), 'sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'), false);
  });

  test('a repository is known by clone_url, html_url and full_name on their host; unusable names are dropped', () => {
    const names = (payload: unknown) => githubRepositoryNames(payload).map((n) => ({ host: n.host, repoPath: n.repoPath }));
    assert.deepEqual(names({ repository: { full_name: 'Org/Repo', html_url: 'https://github.com/Org/Repo', clone_url: 'https://github.com/Org/Repo.git' } }), [{ host: 'github.com', repoPath: 'Org/Repo' }]);
    assert.deepEqual(names({ repository: { full_name: 'a/b', html_url: 'https://ghe.example.com:8443/a/b' } }), [{ host: 'ghe.example.com:8443', repoPath: 'a/b' }]);
    assert.deepEqual(names({ repository: { full_name: '../etc', clone_url: 'https://github.com/-x/y.git' } }), []);
    assert.deepEqual(names({ zen: 'no repository' }), []);
    assert.deepEqual(names(null), []);
  });

  test('an empty webhook-secret (an unset or empty ${VAR}) is refused at start-up with its line', () => {
    const text = 'cache disk {}\nmetadata memory {}\nstrategy git {\n  webhook-secret = "${HOARD_TEST_UNSET_SECRET}"\n}\n';
    for (const env of [{}, { HOARD_TEST_UNSET_SECRET: '' }]) {
      assert.throws(() => loadConfig({ text, env, cwd: os.tmpdir(), specs: allProviderSpecs(), source: 'test.hcl' }), /test\.hcl:4:\d+: strategy git: webhook-secret: .*(empty|not set)/);
    }
  });
});

describe('push webhooks and the refresh route', () => {
  let upstream: GitUpstream;
  let hoard: TestServer;
  let remoteView: TestServer;
  let work: string;
  const viaHoard = (repo: string) => `${hoard.url}/git/${upstream.hostPort}/${repo}`;
  const mirrorDir = (repo: string) => mirrorPath(hoard, upstream.hostPort, repo);
  const mirrorMain = (repo: string) => git(['rev-parse', 'refs/heads/main'], mirrorDir(repo));
  const lsRemoteMain = async (repo: string) => (await gitAsync(['ls-remote', viaHoard(repo), 'refs/heads/main'])).split('\t')[0];

  before(async () => {
    upstream = await startGitUpstream();
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-webhook-'));
    // An hour between ref checks and no background refresh: only the webhook can bring a push in.
    const hcl = (secret: boolean) =>
      gitHoardHcl(upstream.hostPort, { clone: 'ref-check-interval = "1h"\n  fetch-interval = "0"', git: secret ? 'webhook-secret = "${HOARD_TEST_WEBHOOK_SECRET}"' : '' });
    hoard = await startTestServer({ hcl: hcl(true), env: { HOARD_TEST_WEBHOOK_SECRET: SECRET } });
    // The same server as a caller from another machine sees it (and without a webhook secret).
    remoteView = await startTestServer({ hcl: hcl(false), trustedRemote: () => false });
    await upstream.createRepo('org/hooked.git');
    await gitAsync(['clone', '-q', viaHoard('org/hooked'), path.join(work, 'hooked')]);
    await waitFor('the mirror', () => fs.stat(path.join(mirrorDir('org/hooked'), 'HEAD')).then(() => true, () => false));
  });
  after(async () => {
    await hoard.close();
    await remoteView.close();
    await upstream.close();
    await fs.rm(work, { recursive: true, force: true });
  });

  test('a signed push webhook makes the new commit visible on the very next fetch through hoard', async () => {
    const head = await upstream.commit('org/hooked.git', 'pushed to GitHub');
    assert.notEqual(await lsRemoteMain('org/hooked'), head, 'control: without the webhook hoard still advertises the old commit');
    const body = pushPayload(upstream.hostPort, 'org/hooked', head);
    const res = await post(`${hoard.url}/git/webhook/github`, body, { 'x-github-event': 'push', 'x-github-delivery': 'd-1', 'x-hub-signature-256': sign(body) });
    assert.equal(res.status, 202, res.text);
    assert.match(res.text, /refreshing http:\/\/127\.0\.0\.1:\d+\/org\/hooked/);
    const clone = path.join(work, 'hooked');
    await gitAsync(['fetch', '-q', 'origin'], clone);
    assert.equal(await gitAsync(['rev-parse', 'origin/main'], clone), head);
    await waitFor('the mirror to fetch the push', () => mirrorMain('org/hooked') === head);
  });

  test('a wrong or missing signature is 401 and refreshes nothing', async () => {
    const seen = await lsRemoteMain('org/hooked');
    const head = await upstream.commit('org/hooked.git', 'pushed again');
    const before = hoardOwn(upstream.requests, 'org/hooked').length;
    const body = pushPayload(upstream.hostPort, 'org/hooked', head);
    for (const signature of [sign(body, 'wrong secret'), sign(`${body} `), undefined, 'sha256=zz']) {
      const res = await post(`${hoard.url}/git/webhook/github`, body, { 'x-github-event': 'push', ...(signature ? { 'x-hub-signature-256': signature } : {}) });
      assert.equal(res.status, 401, `${signature}: ${res.text}`);
    }
    assert.equal(await lsRemoteMain('org/hooked'), seen, 'hoard still advertises what it had');
    assert.equal(hoardOwn(upstream.requests, 'org/hooked').length, before, 'hoard did not contact upstream');
  });

  test('ping, other events and unknown repositories are answered without cloning anything', async () => {
    const ping = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
    assert.deepEqual(await post(`${hoard.url}/git/webhook/github`, ping, { 'x-github-event': 'ping', 'x-hub-signature-256': sign(ping) }), { status: 200, text: 'pong\n' });
    const issue = JSON.stringify({ action: 'opened', repository: { full_name: 'org/hooked', html_url: `http://${upstream.hostPort}/org/hooked` } });
    assert.equal((await post(`${hoard.url}/git/webhook/github`, issue, { 'x-github-event': 'issues', 'x-hub-signature-256': sign(issue) })).status, 200);

    await upstream.createRepo('org/unmirrored.git');
    const body = pushPayload(upstream.hostPort, 'org/unmirrored', '0'.repeat(40));
    const res = await post(`${hoard.url}/git/webhook/github`, body, { 'x-github-event': 'create', 'x-hub-signature-256': sign(body) });
    assert.equal(res.status, 200, res.text);
    assert.match(res.text, /not mirrored/);
    assert.equal(hoardOwn(upstream.requests, 'org/unmirrored').length, 0);
    assert.equal(await fs.stat(mirrorDir('org/unmirrored')).then(() => true, () => false), false);

    // Form-encoded deliveries carry the JSON in `payload`; the signature covers the raw form body.
    const head = await upstream.commit('org/hooked.git', 'form delivery');
    const form = new URLSearchParams({ payload: pushPayload(upstream.hostPort, 'ORG/Hooked', head) }).toString();
    const formRes = await fetch(`${hoard.url}/git/webhook/github`, { method: 'POST', body: form, headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-github-event': 'push', 'x-hub-signature-256': sign(form) } });
    assert.equal(formRes.status, 202, await formRes.text());
    assert.equal(await lsRemoteMain('org/hooked'), head, 'the name matched case-insensitively, as on GitHub');
    await waitFor('the mirror to fetch the push', () => mirrorMain('org/hooked') === head);
  });

  test('POST /git/{host}/{repo}/refresh from loopback refreshes at once; a remote caller gets 403', async () => {
    // A repository of its own: the catch-up fetches the tests above caused cannot blur the control.
    await upstream.createRepo('org/forge.git');
    await gitAsync(['clone', '-q', viaHoard('org/forge'), path.join(work, 'forge')]);
    await waitFor('the mirror', () => fs.stat(path.join(mirrorDir('org/forge'), 'HEAD')).then(() => true, () => false));
    const head = await upstream.commit('org/forge.git', 'pushed to some other forge');
    assert.notEqual(await lsRemoteMain('org/forge'), head, 'control: without a refresh hoard still advertises the old commit');
    const res = await post(`${hoard.url}/git/${upstream.hostPort}/org/forge/refresh`, '', {});
    assert.equal(res.status, 202, res.text);
    assert.equal(await lsRemoteMain('org/forge'), head);
    await gitAsync(['fetch', '-q', 'origin'], path.join(work, 'forge'));
    assert.equal(await gitAsync(['rev-parse', 'origin/main'], path.join(work, 'forge')), head);
    assert.equal((await post(`${hoard.url}/git/${upstream.hostPort}/org/nothing-here/refresh`, '', {})).status, 200);
    assert.equal((await post(`${hoard.url}/git/${upstream.hostPort}/org/hooked/info/refs/refresh`, '', {})).status, 400);

    const remote = await post(`${remoteView.url}/git/${upstream.hostPort}/org/hooked/refresh`, '', {});
    assert.equal(remote.status, 403, remote.text);
    // Reading through hoard stays open to remote callers; only the refresh is gated.
    assert.equal((await fetch(`${remoteView.url}/git/${upstream.hostPort}/org/hooked/info/refs?service=git-upload-pack`)).status, 200);
  });

  test('the webhook is open to remote callers (the signature is its guard); without a secret it answers 404 saying how to enable it', async () => {
    const res = await post(`${remoteView.url}/git/webhook/github`, '{}', { 'x-github-event': 'ping' });
    assert.equal(res.status, 404);
    assert.match(res.text, /webhook-secret/);
  });
});
