import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitUpstream, git, gitClientEnv, type GitUpstream } from '../../fixtures/git-upstream.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';
import { generateAppKey, keyDir, startFakeGitHub, writeKeyFile, type FakeGitHub } from '../../fixtures/fake-github.js';

const execFileAsync = promisify(execFile);

/**
 * A private git host: answers 401 unless a request carries `Authorization: Basic
 * base64(x-access-token:<token>)` with a token the fake GitHub minted and still considers valid,
 * then passes it to the git upstream fixture.
 */
async function startPrivateFront(upstream: GitUpstream, github: FakeGitHub): Promise<{ hostPort: string; seen: Array<{ path: string; authorized: boolean; userAgent: string }>; close(): Promise<void> }> {
  const seen: Array<{ path: string; authorized: boolean; userAgent: string }> = [];
  const target = new URL(upstream.url);
  const server = http.createServer((req, res) => {
    const m = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    const [user, token] = m?.[1] ? Buffer.from(m[1], 'base64').toString().split(':') : [];
    const authorized = user === 'x-access-token' && token !== undefined && github.isValidToken(token);
    seen.push({ path: req.url ?? '', authorized, userAgent: String(req.headers['user-agent'] ?? '') });
    if (!authorized) {
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="private"', 'content-type': 'text/plain' }).end('authentication required\n');
      return;
    }
    const headers = { ...req.headers, host: target.host };
    const out = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    hostPort: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

let upstream: GitUpstream;
let github: FakeGitHub;
let front: Awaited<ReturnType<typeof startPrivateFront>>;
let hoard: TestServer;
let keys: string;
let work: string;
const logs: Array<Record<string, unknown>> = [];

async function clientGit(args: string[], cwd?: string): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, env: { ...gitClientEnv, GIT_HTTP_USER_AGENT: 'hoard-test-client' }, maxBuffer: 64 << 20 });
  return stdout.trim();
}

/** Every file under `dir` (recursively) as text. */
async function allText(dir: string): Promise<string> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(await fs.readFile(path.join(entry.parentPath, entry.name), 'latin1'));
  }
  return out.join('\n');
}

before(async () => {
  keys = await keyDir();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-gh-git-'));
  const key = generateAppKey();
  const keyFile = await writeKeyFile(keys, 'app.pem', key.pkcs1Pem);
  github = await startFakeGitHub([{ id: '4242', publicKey: key.publicKey, orgs: { acme: 77 } }]);
  upstream = await startGitUpstream();
  await upstream.createRepo('acme/private.git', { files: 5 });
  const mod = await upstream.createRepo('acme/mod.git', { files: 1 });
  await fs.writeFile(path.join(mod, 'go.mod'), 'module example.com/acme/mod\n\ngo 1.18\n');
  await fs.writeFile(path.join(mod, 'mod.go'), 'package mod\n');
  git(['add', '-A'], mod);
  git(['commit', '-q', '-m', 'module'], mod);
  git(['tag', '-a', '-m', 'v1.0.0', 'v1.0.0'], mod);
  git(['push', '-q', 'origin', 'main', 'v1.0.0'], mod);
  front = await startPrivateFront(upstream, github);
  hoard = await startTestServer({
    logs,
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { ref-check-interval = "0s" }
github-app {
  app-id = "4242"
  private-key-path = "${keyFile}"
  api-url = "${github.url}"
  git-host = "${front.hostPort}"
}
strategy git { plain-http-hosts = ["${front.hostPort}"] }
strategy gomod {
  proxy = "http://127.0.0.1:9"
  private-paths = ["example.com/acme/*"]
  private-repo-hosts = { "example.com" = "${front.hostPort}" }
}
`,
  });
});
after(async () => {
  await hoard?.close();
  await front?.close();
  await upstream?.close();
  await github?.close();
  await fs.rm(keys, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
});

describe('git upstream reads with GitHub App tokens', () => {
  test('a private repository clones through hoard; the token is in no mirror file, log or response', async () => {
    const url = `${hoard.url}/git/${front.hostPort}/acme/private.git`;
    // First clone: cold (forwarded upstream while the mirror clones in the background).
    await clientGit(['clone', '-q', url, path.join(work, 'one')]);
    const mirror = path.join(hoard.stateDir, 'git-mirrors', front.hostPort, 'acme', 'private.git');
    const until = Date.now() + 30_000;
    while (!(await fs.stat(path.join(mirror, 'HEAD')).then(() => true, () => false))) {
      if (Date.now() > until) throw new Error('mirror never became ready');
      await new Promise((r) => setTimeout(r, 50));
    }
    // Warm clone (from the mirror, with a ref check against upstream: ls-remote with the token).
    const served = front.seen.length;
    await clientGit(['clone', '-q', url, path.join(work, 'two')]);
    assert.ok(front.seen.slice(served).some((r) => r.userAgent.startsWith('git/')), "hoard's own git (ref check) reached the private upstream");
    assert.equal(await clientGit(['rev-parse', 'HEAD'], path.join(work, 'two')), await clientGit(['rev-parse', 'HEAD'], path.join(work, 'one')));

    // Through a fetch of the mirror too.
    await upstream.commit('acme/private.git', 'second');
    await clientGit(['pull', '-q', '--ff-only'], path.join(work, 'two'));

    assert.ok(github.minted.length >= 1, 'an installation token was minted');
    assert.deepEqual(github.rejectedJwts, []);
    assert.equal(front.seen.filter((r) => !r.authorized).length, 0, `no unauthenticated request reached the private host: ${JSON.stringify(front.seen.filter((r) => !r.authorized))}`);

    // A client response, to check it carries nothing of the token.
    const advert = await fetch(`${url}/info/refs?service=git-upload-pack`);
    const answer = `${JSON.stringify([...advert.headers])}\n${await advert.text()}`;

    const secrets = github.minted.flatMap((t) => [t.token, Buffer.from(`x-access-token:${t.token}`).toString('base64')]);
    const mirrorFiles = await allText(mirror);
    const gitGlobal = await fs.readFile(path.join(hoard.stateDir, 'git', 'gitconfig'), 'utf8');
    const logText = JSON.stringify(logs);
    for (const secret of secrets) {
      assert.ok(!mirrorFiles.includes(secret), 'no token in any mirror file');
      assert.ok(!gitGlobal.includes(secret), "no token in hoard's git config");
      assert.ok(!logText.includes(secret), 'no token in the logs');
      assert.ok(!answer.includes(secret), 'no token in a response');
    }
    assert.ok(!mirrorFiles.includes('extraheader') && !mirrorFiles.includes('extraHeader'), 'no credential header config in the mirror');
  });

  test('a private Go module is served from a mirror cloned with the app token', async () => {
    const list = await fetch(`${hoard.url}/gomod/example.com/acme/mod/@v/list`);
    const text = await list.text();
    assert.equal(list.status, 200, text);
    assert.equal(text.trim(), 'v1.0.0');
    const info = await fetch(`${hoard.url}/gomod/example.com/acme/mod/@v/v1.0.0.info`);
    assert.equal(info.status, 200);
    const answer = `${JSON.stringify([...list.headers])}${text}${JSON.stringify([...info.headers])}${await info.text()}`;
    assert.ok(front.seen.some((r) => r.path.startsWith('/acme/mod') && r.authorized), 'the module mirror was cloned with the token');
    assert.equal(front.seen.filter((r) => !r.authorized).length, 0);
    const mirrorFiles = await allText(path.join(hoard.stateDir, 'git-mirrors', front.hostPort, 'acme', 'mod.git'));
    for (const t of github.minted) {
      assert.ok(!mirrorFiles.includes(t.token) && !answer.includes(t.token) && !JSON.stringify(logs).includes(t.token));
    }
  });

  test('a push through hoard never carries the app token', async () => {
    const url = `${hoard.url}/git/${front.hostPort}/acme/private.git`;
    const tree = path.join(work, 'two');
    await fs.writeFile(path.join(tree, 'pushed.txt'), 'x\n');
    await clientGit(['add', '-A'], tree);
    await clientGit(['-c', 'user.name=t', '-c', 'user.email=t@x.invalid', 'commit', '-q', '-m', 'push'], tree);
    const before = front.seen.length;
    await assert.rejects(clientGit(['push', '-q', url, 'HEAD:main'], tree));
    const pushes = front.seen.slice(before).filter((r) => r.path.includes('receive-pack'));
    assert.ok(pushes.length > 0, 'the push reached the private host');
    assert.ok(pushes.every((r) => !r.authorized), 'and was refused there: hoard added no credentials');
  });
});
