import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { CLIENT_UA, gitAsync } from '../../fixtures/git-client.js';
import { gitHoardHcl, startGitRig, type GitRig } from '../../fixtures/git-hoard.js';
import { git, type GitUpstream, type UpstreamRequest } from '../../fixtures/git-upstream.js';
import { waitFor as poll } from '../../fixtures/poll.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

let rig: GitRig;
let upstream: GitUpstream;
let hoard: TestServer;
let work: string;

/** Requests hoard's own server-side git made (clone, fetch, ls-remote) for a repository. */
const hoardOwn = (requests: UpstreamRequest[], repo: string) => requests.filter((r) => r.path.includes(repo) && (r.userAgent ?? '').startsWith('git/'));

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * An HTTP request with the path sent byte for byte (fetch and `new URL` resolve `..` away before
 * anything leaves the client). `body` chunks are written one by one; `between` runs after the first.
 */
function rawRequest(base: string, rawPath: string, opts: { method?: string; headers?: Record<string, string>; body?: Array<string | Buffer>; between?: () => Promise<void> } = {}): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: rawPath, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const [first, ...rest] = opts.body ?? [];
    if (first !== undefined) req.write(first);
    void (async () => {
      await opts.between?.();
      for (const chunk of rest) req.write(chunk);
      req.end();
    })().catch(reject);
  });
}

/** Polls every 50 ms, for 20 s unless told. */
const waitFor = (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000) => poll(what, fn, timeoutMs, 50);

const viaHoard = (repo: string) => rig.viaHoard(repo);
const mirrorDir = (repo: string) => rig.mirrorDir(repo);
const exists = (p: string) => fs.stat(p).then(() => true, () => false);

before(async () => {
  rig = await startGitRig({ workPrefix: 'hoard-git-' });
  ({ upstream, hoard, work } = rig);
});
after(() => rig.close());

describe('git smart-HTTP proxy', () => {
  test('cold clone works, builds a mirror; a warm clone makes no upstream calls', async () => {
    await upstream.createRepo('org/alpha.git', { files: 12, branches: ['feature'] });
    const head = git(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', 'org/alpha.git'));
    await gitAsync(['clone', '-q', viaHoard('org/alpha.git'), path.join(work, 'cold')]);
    assert.equal(await gitAsync(['rev-parse', 'HEAD'], path.join(work, 'cold')), head);
    await waitFor('mirror', () => exists(path.join(mirrorDir('org/alpha'), 'HEAD')));
    // serve-unreachable = false (the default): ids are served when a ref reaches them.
    assert.equal(git(['config', 'uploadpack.allowAnySHA1InWant'], mirrorDir('org/alpha')), 'false');
    assert.equal(git(['config', 'uploadpack.allowReachableSHA1InWant'], mirrorDir('org/alpha')), 'true');
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

  test('shallow and partial clones are served from the mirror and really are shallow / partial', async () => {
    await upstream.createRepo('org/deep.git', { files: 8, commits: 3 });
    await gitAsync(['clone', '-q', viaHoard('org/deep'), path.join(work, 'deep-full')]);
    await waitFor('mirror', () => exists(path.join(mirrorDir('org/deep'), 'HEAD')));
    const before = upstream.requests.length;

    await gitAsync(['clone', '-q', '--depth', '1', viaHoard('org/deep'), path.join(work, 'shallow')]);
    assert.ok(await exists(path.join(work, 'shallow', '.git', 'shallow')), 'a depth-1 clone records its shallow boundary');
    assert.equal(await gitAsync(['rev-list', '--count', 'HEAD'], path.join(work, 'shallow')), '1');
    assert.equal(await gitAsync(['rev-list', '--count', 'HEAD'], path.join(work, 'deep-full')), '3', 'control: the history is deeper than 1');

    await gitAsync(['clone', '-q', '--filter=blob:none', viaHoard('org/deep'), path.join(work, 'partial')]);
    assert.equal(await gitAsync(['config', 'remote.origin.promisor'], path.join(work, 'partial')), 'true');
    assert.ok(await exists(path.join(work, 'partial', 'dir0', 'file0.txt')), 'checkout fetched the blobs it needs');
    // Older revisions of dir0/file0.txt were never downloaded (`?` marks a missing object).
    const missing = (dir: string) => gitAsync(['rev-list', '--objects', '--missing=print', 'HEAD~1'], path.join(work, dir)).then((out) => out.split('\n').filter((l) => l.startsWith('?')).length);
    assert.ok((await missing('partial')) >= 1, 'a blob:none clone lacks old blobs');
    assert.equal(await missing('deep-full'), 0, 'control: a full clone lacks nothing');
    assert.deepEqual(upstream.requests.slice(before), [], 'served from the mirror');
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
    // Literal `..` as sent on the wire, in the repository path and in the forwarded tail.
    for (const raw of [
      `/git/${upstream.hostPort}/org/../../etc/info/refs?service=git-upload-pack`,
      `/git/${upstream.hostPort}/org/alpha.git/../../admin/x`,
      `/git/${upstream.hostPort}/org/alpha.git/info/lfs/../../../../x`,
      `/git/${upstream.hostPort}/org/alpha.git/info//refs?service=git-upload-pack`,
      `/git/${upstream.hostPort}/org/alpha.git/info/-x`,
      `/git/${upstream.hostPort}/org/alpha.git/inner/repo.git/info/refs?service=git-upload-pack`,
    ]) {
      const res = await rawRequest(hoard.url, raw, { method: raw.includes('/x') ? 'POST' : 'GET', body: raw.includes('/x') ? ['{}'] : [] });
      assert.equal(res.status, 400, raw);
      // The server may refuse dot segments before routing; the git strategy refuses them too.
      assert.match(res.text, /^(bad git path: (relative path segment|empty path segment|option-like path segment|only the last repository path segment)|bad request: "\." and "\.\." path segments)/, raw);
    }
    // (A background fetch of org/alpha from the previous test may still be running.)
    assert.deepEqual(upstream.requests.slice(before).filter((r) => !r.path.includes('/org/alpha')), []);
  });

  test('receive-pack and unknown paths go upstream with the caller’s own credentials, streaming, query untouched', async () => {
    const auth = 'Basic dXNlcjpjbGllbnQtc2VjcmV0';
    const at = upstream.requests.length;
    const seen = (pathEnd: string, method: string) => upstream.requests.slice(at).find((r) => r.method === method && r.path.endsWith(pathEnd));

    const discovery = await rawRequest(hoard.url, `/git/${upstream.hostPort}/org/alpha.git/info/refs?service=git-receive-pack`, { headers: { authorization: auth } });
    assert.equal(discovery.status, 200);
    assert.equal(seen('/org/alpha.git/info/refs', 'GET')?.authorization, auth);
    assert.equal(seen('/org/alpha.git/info/refs', 'GET')?.query, 'service=git-receive-pack');

    await rawRequest(hoard.url, `/git/${upstream.hostPort}/org/alpha.git/git-receive-pack`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-git-receive-pack-request' }, body: ['0000'] });
    const push = seen('/org/alpha.git/git-receive-pack', 'POST');
    assert.equal(push?.authorization, auth);
    assert.equal(push?.bodySha256, sha256('0000'));

    // An LFS batch call: the upstream must see the request before the client has finished sending
    // it (streamed, not buffered), and the query exactly as written (`+`, a bare key).
    const first = '{"operation":"download",';
    const second = '"objects":[]}';
    const lfsPath = '/org/alpha.git/info/lfs/objects/batch';
    const lfs = await rawRequest(hoard.url, `/git/${upstream.hostPort}${lfsPath}?x=a+b&flag`, {
      method: 'POST',
      headers: { authorization: auth, 'content-type': 'application/vnd.git-lfs+json', 'transfer-encoding': 'chunked' },
      body: [first, second],
      between: () => waitFor('upstream sees the request head while its body is still open', () => seen(lfsPath, 'POST') !== undefined, 5_000),
    });
    assert.ok(lfs.status >= 200 && lfs.status < 600);
    const batch = seen(lfsPath, 'POST');
    assert.equal(batch?.authorization, auth);
    assert.equal(batch?.query, 'x=a+b&flag');
    await waitFor('body logged', () => batch?.bodySha256 !== undefined, 5_000);
    assert.equal(batch?.bodySha256, sha256(first + second));

    // Hoard never adds credentials of its own: nothing upstream ever saw carried any but the caller's.
    assert.deepEqual(upstream.requests.filter((r) => r.authorization !== undefined && r.authorization !== auth), []);
    assert.ok(upstream.requests.filter((r) => (r.userAgent ?? '').startsWith('git/')).every((r) => r.authorization === undefined));
  });

  test('a slowly read pack served from the mirror leaves no listeners behind', async () => {
    await upstream.createRepo('org/big.git', { files: 2, randomBytes: 6 << 20 });
    await gitAsync(['clone', '-q', '--bare', viaHoard('org/big'), path.join(work, 'big-seed.git')]);
    await waitFor('mirror', () => exists(path.join(mirrorDir('org/big'), 'HEAD')));
    const head = git(['rev-parse', 'HEAD'], mirrorDir('org/big'));
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const { hostname, port } = new URL(hoard.url);
      const size = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: hostname, port, method: 'POST', path: `/git/${upstream.hostPort}/org/big.git/git-upload-pack`, headers: { 'content-type': 'application/x-git-upload-pack-request' } }, (res) => {
          let total = 0;
          res.on('data', (c: Buffer) => {
            total += c.length;
            res.pause();
            setTimeout(() => res.resume(), 2);
          });
          res.on('end', () => resolve(total));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(`0032want ${head}\n00000009done\n`);
      });
      assert.ok(size > 6 << 20, `pack of ${size} bytes`);
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), []);
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
  plain-http-hosts = ["${upstream.hostPort}", "LocalHost:${new URL(upstream.url).port}"]
  allowed-hosts = ["${upstream.hostPort}", "LOCALHOST:${new URL(upstream.url).port}"]
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

  test('allowed-hosts and plain-http-hosts match hosts case-insensitively', async () => {
    const at = upstream.requests.length;
    // Configured as LOCALHOST / LocalHost; requests name it in any case and reach it over http.
    const res = await fetch(`${restricted.url}/git/localHOST:${new URL(upstream.url).port}/org/cased.git/info/lfs/objects/batch`, { method: 'POST', body: '{}' });
    await res.text();
    assert.notEqual(res.status, 403);
    assert.notEqual(res.status, 502, 'reached over plain http');
    assert.ok(upstream.requests.slice(at).some((r) => r.path === '/org/cased.git/info/lfs/objects/batch'));
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
    // Every distinct request body the clients sent reached upstream at most once (the spool shared it).
    const fromClients = posts.filter((r) => r.userAgent === CLIENT_UA);
    assert.ok(fromClients.length >= 1, 'the clients were answered through the spool, not the mirror');
    const perBody = new Map<string, number>();
    for (const r of fromClients) perBody.set(r.bodySha256 ?? '', (perBody.get(r.bodySha256 ?? '') ?? 0) + 1);
    assert.deepEqual([...perBody.values()].filter((n) => n > 1), [], `upload-pack bodies sent more than once: ${JSON.stringify([...perBody])}`);
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
    const url = `${restricted.url}/git/${upstream.hostPort}/org/missing.git/info/refs?service=git-upload-pack`;
    const root = path.join(restricted.stateDir, 'git-mirrors');
    const attempts = () => hoardOwn(upstream.requests, '/org/missing').filter((r) => r.method === 'GET').length;
    const attempt = async (n: number) => {
      const res = await fetch(url);
      await res.text();
      await waitFor(`clone attempt ${n}`, () => attempts() >= n);
      await waitFor(`clone attempt ${n} finished`, async () => (await fs.readdir(path.join(root, '.scratch')).catch(() => [])).length === 0);
      return res.status;
    };
    assert.equal(await attempt(1), 404);
    assert.equal(await exists(path.join(root, upstream.hostPort, 'org', 'missing.git')), false);
    assert.ok(await exists(path.join(root, upstream.hostPort, 'org', 'burst.git', 'HEAD')), 'sibling untouched');
    // Not stuck Cloning: the next request starts a new clone, which succeeds once the repo exists.
    assert.equal(await attempt(2), 404);
    await upstream.createRepo('org/missing.git', { files: 2 });
    assert.equal(await attempt(3), 200);
    await waitFor('mirror after the retry', () => exists(path.join(root, upstream.hostPort, 'org', 'missing.git', 'HEAD')));
  });
});

describe('git proxy: stale refs', () => {
  let eager: TestServer;
  before(async () => {
    eager = await startTestServer({ hcl: gitHoardHcl(upstream.hostPort, { clone: 'ref-check-interval = "1ms"' }) });
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

  test('upstream down with a Ready mirror: the failed ref check counts as fresh and the clone is served', async () => {
    const name = 'org/outage.git';
    await upstream.createRepo(name, { files: 5 });
    const url = `${eager.url}/git/${upstream.hostPort}/${name}`;
    await gitAsync(['clone', '-q', url, path.join(work, 'outage-cold')]);
    const mirror = path.join(eager.stateDir, 'git-mirrors', upstream.hostPort, name);
    await waitFor('mirror', () => exists(path.join(mirror, 'HEAD')));
    const at = upstream.requests.length;
    upstream.setUp(false);
    try {
      for (const protocol of ['0', '2']) {
        const dir = path.join(work, `outage-v${protocol}`);
        await gitAsync(['-c', `protocol.version=${protocol}`, 'clone', '-q', url, dir]);
        assert.equal(await gitAsync(['rev-parse', 'HEAD'], dir), git(['rev-parse', 'HEAD'], mirror));
      }
    } finally {
      upstream.setUp(true);
    }
    assert.ok(hoardOwn(upstream.requests.slice(at), '/org/outage').length >= 1, 'the ref check did try upstream');
    assert.deepEqual(upstream.requests.slice(at).filter((r) => r.userAgent === CLIENT_UA), [], 'no client request was forwarded');
  });

  test('a stale window runs one ref check and one catch-up fetch, however many listings arrive', async () => {
    const name = 'org/window.git';
    await upstream.createRepo(name, { files: 3 });
    const url = `${eager.url}/git/${upstream.hostPort}/${name}`;
    await gitAsync(['clone', '-q', url, path.join(work, 'window')]);
    const mirror = path.join(eager.stateDir, 'git-mirrors', upstream.hostPort, name);
    await waitFor('mirror', () => exists(path.join(mirror, 'HEAD')));
    await waitFor('clone traffic settled', () => hoardOwn(upstream.requests, '/org/window').every((r) => r.method !== 'POST' || r.bodySha256 !== undefined));
    const newer = await upstream.commit(name, 'moves on');
    const at = upstream.requests.length;
    // Slow upstream packs keep the catch-up fetch running while the listings arrive.
    upstream.setDelay(1000);
    try {
      for (let i = 0; i < 6; i++) {
        const res = await fetch(`${url}/info/refs?service=git-upload-pack`);
        const body = await res.text();
        assert.equal(res.status, 200);
        assert.ok(body.includes(newer), `listing ${i} is fresh`);
      }
      await waitFor('mirror caught up', () => git(['rev-parse', 'main'], mirror) === newer);
    } finally {
      upstream.setDelay(0);
    }
    // One ls-remote and one fetch each start with a GET of info/refs.
    const own = hoardOwn(upstream.requests.slice(at), '/org/window').filter((r) => r.method === 'GET');
    assert.equal(own.length, 2, `hoard's git asked upstream ${own.length} times`);
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
