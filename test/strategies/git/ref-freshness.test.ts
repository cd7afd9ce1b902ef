import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIENT_UA, gitAsync } from '../../fixtures/git-client.js';
import { gitHoardHcl, mirrorPath } from '../../fixtures/git-hoard.js';
import { git, startGitUpstream, type GitUpstream } from '../../fixtures/git-upstream.js';
import { waitFor as poll } from '../../fixtures/poll.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

let upstream: GitUpstream;
let work: string;
/** ref-check-interval = 1ms: every ref listing runs a ref check. */
let eager: TestServer;
/** ref-check-interval = 1h: only a push-triggered refresh can make the mirror move. */
let lazy: TestServer;

/** Polls every 20 ms, for 20 s unless told. */
const waitFor = (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000) => poll(what, fn, timeoutMs, 20);

const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const bare = (name: string) => path.join(upstream.root, 'repos', `${name}.git`);
const mirrorOf = (server: TestServer, name: string) => mirrorPath(server, upstream.hostPort, name);
const via = (server: TestServer, name: string) => `${server.url}/git/${upstream.hostPort}/${name}`;

/** Every ref and where HEAD points, as one comparable string. */
const refState = (dir: string) => `${git(['symbolic-ref', 'HEAD'], dir)}\n${git(['for-each-ref', '--format=%(objectname) %(refname)'], dir)}`;

/** A repository upstream, cloned once through `server` (v2) so its mirror is Ready; returns the client clone. */
async function warmRepository(server: TestServer, name: string, opts: { branches?: string[]; commits?: number } = {}): Promise<string> {
  await upstream.createRepo(`${name}.git`, { files: 3, ...opts });
  const dir = path.join(work, `${name.replace(/\//g, '_')}-client`);
  await gitAsync(['clone', '-q', via(server, name), dir]);
  await waitFor('mirror ready', () => exists(path.join(mirrorOf(server, name), 'HEAD')));
  return dir;
}

/** Waits until the mirror holds exactly upstream's refs and HEAD (what the catch-up fetch must achieve). */
const mirrorMatchesUpstream = (server: TestServer, name: string) => waitFor(`mirror of ${name} to match upstream`, () => refState(mirrorOf(server, name)) === refState(bare(name)));

before(async () => {
  upstream = await startGitUpstream();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-refs-'));
  const hcl = (interval: string) => gitHoardHcl(upstream.hostPort, { clone: `ref-check-interval = "${interval}"` });
  eager = await startTestServer({ hcl: hcl('1ms') });
  lazy = await startTestServer({ hcl: hcl('1h') });
});
after(async () => {
  await eager?.close();
  await lazy?.close();
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
});

for (const protocol of ['0', '2']) {
  const v = ['-c', `protocol.version=${protocol}`];

  describe(`every ref kind reaches clients within ref-check-interval (protocol v${protocol})`, () => {
    test('a new annotated tag, no branch moving', async () => {
      const name = `tags/annotated-v${protocol}`;
      const dir = await warmRepository(eager, name);
      git(['tag', '-a', 'v2.0', '-m', 'release', 'main'], bare(name));
      await gitAsync([...v, 'fetch', '-q', '--tags', 'origin'], dir);
      assert.equal(await gitAsync(['rev-parse', 'refs/tags/v2.0'], dir), git(['rev-parse', 'refs/tags/v2.0'], bare(name)));
      assert.equal(await gitAsync(['cat-file', '-t', 'v2.0'], dir), 'tag');
      await mirrorMatchesUpstream(eager, name);
    });

    test('a moved lightweight tag', async () => {
      const name = `tags/moved-v${protocol}`;
      const dir = await warmRepository(eager, name, { commits: 2 });
      const older = git(['rev-parse', 'main~1'], bare(name));
      git(['tag', '-f', 'v1', older], bare(name));
      await gitAsync([...v, 'fetch', '-q', '--tags', '--force', 'origin'], dir);
      assert.equal(await gitAsync(['rev-parse', 'refs/tags/v1'], dir), older);
      await mirrorMatchesUpstream(eager, name);
    });

    test('a deleted tag', async () => {
      const name = `tags/deleted-v${protocol}`;
      const dir = await warmRepository(eager, name);
      assert.equal(await gitAsync(['tag', '-l', 'v1'], dir), 'v1', 'control: the clone has the tag');
      git(['tag', '-d', 'v1'], bare(name));
      assert.doesNotMatch(await gitAsync([...v, 'ls-remote', 'origin'], dir), /refs\/tags\/v1/);
      await gitAsync([...v, 'fetch', '-q', '--prune', '--prune-tags', 'origin'], dir);
      assert.equal(await gitAsync(['tag', '-l', 'v1'], dir), '');
      await mirrorMatchesUpstream(eager, name);
    });

    test('a deleted branch', async () => {
      const name = `branches/deleted-v${protocol}`;
      const dir = await warmRepository(eager, name, { branches: ['feature'] });
      assert.match(await gitAsync(['branch', '-r'], dir), /origin\/feature/, 'control: the clone has the branch');
      git(['branch', '-D', 'feature'], bare(name));
      await gitAsync([...v, 'fetch', '-q', '--prune', 'origin'], dir);
      assert.doesNotMatch(await gitAsync(['branch', '-r'], dir), /origin\/feature/);
      await mirrorMatchesUpstream(eager, name);
    });

    test('a change of the default branch: fresh clones check out the new one, also once served by the mirror', async () => {
      const name = `branches/default-v${protocol}`;
      await warmRepository(eager, name, { branches: ['develop'] });
      git(['symbolic-ref', 'HEAD', 'refs/heads/develop'], bare(name));
      const first = path.join(work, `default-first-v${protocol}`);
      await gitAsync([...v, 'clone', '-q', via(eager, name), first]);
      assert.equal(await gitAsync(['symbolic-ref', 'HEAD'], first), 'refs/heads/develop');
      await mirrorMatchesUpstream(eager, name);
      assert.equal(git(['symbolic-ref', 'HEAD'], mirrorOf(eager, name)), 'refs/heads/develop');
      // Now the mirror itself must say so: no client request may need upstream.
      const at = upstream.requests.length;
      const second = path.join(work, `default-second-v${protocol}`);
      await gitAsync([...v, 'clone', '-q', via(eager, name), second]);
      assert.equal(await gitAsync(['symbolic-ref', 'HEAD'], second), 'refs/heads/develop');
      assert.deepEqual(upstream.requests.slice(at).filter((r) => r.userAgent === CLIENT_UA), [], 'served from the mirror');
    });

    test('a force-push', async () => {
      const name = `branches/forced-v${protocol}`;
      const dir = await warmRepository(eager, name);
      await upstream.commit(`${name}.git`, 'to be rewritten');
      await gitAsync([...v, 'fetch', '-q', 'origin'], dir);
      const forced = await upstream.commit(`${name}.git`, 'rewritten', { force: true });
      await gitAsync([...v, 'fetch', '-q', 'origin'], dir);
      assert.equal(await gitAsync(['rev-parse', 'origin/main'], dir), forced);
      await mirrorMatchesUpstream(eager, name);
    });
  });

  describe(`a push through hoard is read back at once (protocol v${protocol}, ref-check-interval 1h)`, () => {
    test('the pusher’s fetch and a fresh clone, started right after the push, both see it — served by the mirror', async () => {
      const name = `push/own-v${protocol}`;
      const dir = await warmRepository(lazy, name);
      await fs.writeFile(path.join(dir, 'pushed.txt'), 'through hoard\n');
      await gitAsync(['add', '-A'], dir);
      await gitAsync(['commit', '-q', '-m', 'pushed through hoard'], dir);
      const pushed = await gitAsync(['rev-parse', 'HEAD'], dir);
      await gitAsync([...v, 'push', '-q', 'origin', 'main'], dir);
      assert.equal(git(['rev-parse', 'main'], bare(name)), pushed, 'control: the push reached upstream');
      const at = upstream.requests.length;
      const fresh = path.join(work, `push-clone-v${protocol}`);
      await Promise.all([gitAsync([...v, 'fetch', '-q', 'origin'], dir), gitAsync([...v, 'clone', '-q', via(lazy, name), fresh])]);
      assert.equal(await gitAsync(['rev-parse', 'origin/main'], dir), pushed, 'the fetch did not move origin/main back');
      assert.equal(await gitAsync(['rev-parse', 'HEAD'], fresh), pushed, 'the clone has the push');
      assert.equal(git(['rev-parse', 'main'], mirrorOf(lazy, name)), pushed, 'the mirror was refreshed');
      assert.deepEqual(upstream.requests.slice(at).filter((r) => r.userAgent === CLIENT_UA), [], 'both were answered by the mirror');
    });
  });
}
