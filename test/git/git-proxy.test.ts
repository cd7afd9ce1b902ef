import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitUpstream, git, gitClientEnv, type GitUpstream } from '../fixtures/git-upstream.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const execFileAsync = promisify(execFile);

let upstream: GitUpstream;
let hoard: TestServer;
let work: string;

async function gitAsync(args: string[], cwd?: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, env: { ...gitClientEnv, ...env }, maxBuffer: 64 << 20 });
  return stdout.trim();
}

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const viaHoard = (repo: string) => `${hoard.url}/git/${upstream.hostPort}/${repo}`;
const mirrorDir = (repo: string) => path.join(hoard.stateDir, 'git-mirrors', upstream.hostPort, `${repo.replace(/\.git$/, '')}.git`);
const exists = (p: string) => fs.stat(p).then(() => true, () => false);

before(async () => {
  upstream = await startGitUpstream();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-git-'));
  hoard = await startTestServer({
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { ref-check-interval = "1h" }
strategy git { plain-http-hosts = ["${upstream.hostPort}"] }
`,
  });
});
after(async () => {
  await hoard.close();
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
});

describe('git smart-HTTP proxy', () => {
  test('cold clone works, builds a mirror; a warm clone makes no upstream calls', async () => {
    await upstream.createRepo('org/alpha.git', { files: 12, branches: ['feature'] });
    const head = git(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', 'org/alpha.git'));
    await gitAsync(['clone', '-q', viaHoard('org/alpha.git'), path.join(work, 'cold')]);
    assert.equal(await gitAsync(['rev-parse', 'HEAD'], path.join(work, 'cold')), head);
    await waitFor('mirror', () => exists(path.join(mirrorDir('org/alpha'), 'HEAD')));
    assert.equal(git(['config', 'uploadpack.allowAnySHA1InWant'], mirrorDir('org/alpha')), 'true');
    assert.equal(git(['config', 'protocol.version'], mirrorDir('org/alpha')), '2');

    const before = upstream.requests.length;
    await gitAsync(['clone', '-q', viaHoard('org/alpha'), path.join(work, 'warm-v2')]);
    await gitAsync(['-c', 'protocol.version=0', 'clone', '-q', viaHoard('org/alpha.git'), path.join(work, 'warm-v0')]);
    assert.equal(upstream.requests.length, before, `upstream saw ${JSON.stringify(upstream.requests.slice(before))}`);
    for (const dir of ['warm-v2', 'warm-v0']) {
      assert.equal(await gitAsync(['rev-parse', 'HEAD'], path.join(work, dir)), head);
      assert.match(await gitAsync(['branch', '-r'], path.join(work, dir)), /origin\/feature/);
      assert.equal(await gitAsync(['status', '--porcelain'], path.join(work, dir)), '');
    }
  });

  test('shallow and partial clones from the mirror', async () => {
    await gitAsync(['clone', '-q', '--depth', '1', viaHoard('org/alpha'), path.join(work, 'shallow')]);
    assert.equal(await gitAsync(['rev-list', '--count', 'HEAD'], path.join(work, 'shallow')), '1');
    await gitAsync(['clone', '-q', '--filter=blob:none', viaHoard('org/alpha'), path.join(work, 'partial')]);
    assert.equal(await gitAsync(['config', 'remote.origin.promisor'], path.join(work, 'partial')), 'true');
    assert.ok(await exists(path.join(work, 'partial', 'dir0', 'file0.txt')));
  });

  test('push goes upstream; a later fetch sees it (stale refs answered upstream, then the mirror catches up)', async () => {
    const clone = path.join(work, 'pusher');
    await gitAsync(['clone', '-q', viaHoard('org/alpha'), clone]);
    await fs.writeFile(path.join(clone, 'pushed.txt'), 'via hoard\n');
    await gitAsync(['add', '-A'], clone);
    await gitAsync(['commit', '-q', '-m', 'push through hoard'], clone);
    await gitAsync(['push', '-q', 'origin', 'main'], clone);
    const pushed = await gitAsync(['rev-parse', 'HEAD'], clone);
    assert.equal(git(['rev-parse', 'main'], path.join(upstream.root, 'repos', 'org/alpha.git')), pushed);
    assert.ok(upstream.requests.some((r) => r.method === 'POST' && r.path.endsWith('/git-receive-pack')));

    // With a 1h ref-check interval the mirror is behind; asking for the new commit by SHA misses
    // in the mirror ("not our ref") and is answered by upstream instead of failing.
    const newer = await upstream.commit('org/alpha.git', 'upstream moves on');
    await gitAsync(['fetch', '-q', 'origin', newer], clone);
    assert.equal(await gitAsync(['cat-file', '-t', newer], clone), 'commit');
  });

  test('bogus hosts and paths are rejected before any upstream connection', async () => {
    const before = upstream.requests.length;
    const cases: Array<[string, number]> = [
      ['/git/127.0.0.1:99999/org/repo/info/refs?service=git-upload-pack', 400],
      ['/git/bad_host!/org/repo/info/refs?service=git-upload-pack', 400],
      [`/git/${upstream.hostPort}/org/-upload/info/refs?service=git-upload-pack`, 400],
      [`/git/${upstream.hostPort}/org/.hidden/info/refs?service=git-upload-pack`, 400],
      [`/git/${upstream.hostPort}/org/%2e%2e/info/refs?service=git-upload-pack`, 400],
      [`/git/${upstream.hostPort}/info/refs?service=git-upload-pack`, 400],
    ];
    for (const [url, status] of cases) {
      const res = await fetch(`${hoard.url}${url}`);
      assert.equal(res.status, status, url);
      assert.match(await res.text(), /bad git path/);
    }
    const dotdot = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/../../etc/info/refs?service=git-upload-pack`);
    assert.ok([400, 404].includes(dotdot.status));
    await dotdot.text();
    // (A background fetch of org/alpha from the previous test may still be running.)
    assert.deepEqual(upstream.requests.slice(before).filter((r) => !r.path.includes('/org/alpha')), []);
  });
});

describe('git proxy: concurrency, allowlist and outages', () => {
  let restricted: TestServer;
  before(async () => {
    restricted = await startTestServer({
      hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { ref-check-interval = "1h" }
strategy git {
  plain-http-hosts = ["${upstream.hostPort}"]
  allowed-hosts = ["${upstream.hostPort}"]
}
`,
    });
  });
  after(async () => {
    await restricted.close();
  });

  test('allowed-hosts: another host gets 403 and no connection', async () => {
    const res = await fetch(`${restricted.url}/git/example.com/org/repo/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 403);
    assert.match(await res.text(), /host not allowed: example\.com/);
  });

  test('8 concurrent cold clones share one upstream transfer per distinct request', async () => {
    await upstream.createRepo('org/burst.git', { files: 30 });
    upstream.setDelay(1500);
    try {
      const url = `${restricted.url}/git/${upstream.hostPort}/org/burst.git`;
      await Promise.all(Array.from({ length: 8 }, (_, i) => gitAsync(['clone', '-q', url, path.join(work, `burst-${i}`)])));
    } finally {
      upstream.setDelay(0);
    }
    const posts = upstream.uploadPackPosts('org/burst');
    // One ls-refs and one fetch shared by the 8 clients, plus the mirror clone's own two.
    assert.ok(posts.length <= 4, `upstream saw ${posts.length} upload-pack POSTs`);
    const head = git(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', 'org/burst.git'));
    for (let i = 0; i < 8; i++) assert.equal(await gitAsync(['rev-parse', 'HEAD'], path.join(work, `burst-${i}`)), head);
    await waitFor('spools removed', async () => (await fs.readdir(path.join(restricted.stateDir, 'git-spool')).catch(() => [])).length === 0);
  });

  test('upstream down: a Ready mirror still serves clones', async () => {
    const mirror = path.join(restricted.stateDir, 'git-mirrors', upstream.hostPort, 'org/burst.git');
    await waitFor('mirror ready', () => exists(path.join(mirror, 'HEAD')));
    upstream.setUp(false);
    try {
      await gitAsync(['clone', '-q', `${restricted.url}/git/${upstream.hostPort}/org/burst`, path.join(work, 'offline')]);
      assert.ok(await exists(path.join(work, 'offline', 'dir0')));
    } finally {
      upstream.setUp(true);
    }
  });

  test('a failed clone leaves no mirror and no debris, and the next request retries', async () => {
    const res = await fetch(`${restricted.url}/git/${upstream.hostPort}/org/missing.git/info/refs?service=git-upload-pack`);
    assert.equal(res.status, 404);
    await res.text();
    const root = path.join(restricted.stateDir, 'git-mirrors');
    await waitFor('clone attempt finished', async () => (await fs.readdir(path.join(root, '.scratch')).catch(() => [])).length === 0);
    assert.equal(await exists(path.join(root, upstream.hostPort, 'org', 'missing.git')), false);
    assert.ok(await exists(path.join(root, upstream.hostPort, 'org', 'burst.git', 'HEAD')), 'sibling untouched');
  });
});

describe('git proxy: stale refs', () => {
  let eager: TestServer;
  before(async () => {
    eager = await startTestServer({
      hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { ref-check-interval = "1ms" }
strategy git { plain-http-hosts = ["${upstream.hostPort}"] }
`,
    });
  });
  after(async () => {
    await eager.close();
  });

  test('force-push during a cold clone: the clone completes and later clones see the rewritten history', async () => {
    const name = 'org/forced.git';
    await upstream.createRepo(name, { files: 6 });
    const original = await upstream.commit(name, 'second commit, rewritten below');
    const url = `${eager.url}/git/${upstream.hostPort}/${name}`;
    upstream.setDelay(800);
    let forced = '';
    try {
      const cloning = gitAsync(['clone', '-q', url, path.join(work, 'forced-cold')]);
      await new Promise((r) => setTimeout(r, 300));
      forced = await upstream.commit(name, 'history rewritten mid-clone', { force: true });
      await cloning;
    } finally {
      upstream.setDelay(0);
    }
    const got = await gitAsync(['rev-parse', 'HEAD'], path.join(work, 'forced-cold'));
    assert.ok([original, forced].includes(got), `cold clone got ${got}`);
    assert.equal(await gitAsync(['status', '--porcelain'], path.join(work, 'forced-cold')), '');
    const mirror = path.join(eager.stateDir, 'git-mirrors', upstream.hostPort, name);
    await waitFor('mirror ready', () => exists(path.join(mirror, 'HEAD')));
    await gitAsync(['clone', '-q', url, path.join(work, 'forced-warm')]);
    assert.equal(await gitAsync(['rev-parse', 'HEAD'], path.join(work, 'forced-warm')), forced);
  });

  for (const protocol of ['0', '2']) {
    test(`protocol v${protocol}: a stale advertisement is answered upstream and the mirror catches up`, async () => {
      const name = `org/stale${protocol}.git`;
      await upstream.createRepo(name, { files: 4 });
      const url = `${eager.url}/git/${upstream.hostPort}/${name}`;
      const clone = path.join(work, `stale-${protocol}`);
      await gitAsync(['-c', `protocol.version=${protocol}`, 'clone', '-q', url, clone]);
      const mirror = path.join(eager.stateDir, 'git-mirrors', upstream.hostPort, name);
      await waitFor('mirror', () => exists(path.join(mirror, 'HEAD')));
      const newer = await upstream.commit(name, 'new upstream work');
      await gitAsync(['-c', `protocol.version=${protocol}`, 'pull', '-q', '--ff-only'], clone);
      assert.equal(await gitAsync(['rev-parse', 'HEAD'], clone), newer);
      await waitFor('mirror caught up', () => git(['rev-parse', 'main'], mirror) === newer);
      const forced = await upstream.commit(name, 'rewritten history', { force: true });
      await gitAsync(['-c', `protocol.version=${protocol}`, 'fetch', '-q', 'origin'], clone);
      assert.equal(await gitAsync(['rev-parse', 'origin/main'], clone), forced);
    });
  }
});
