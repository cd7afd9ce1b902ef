import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { gitAsync } from '../../fixtures/git-client.js';
import { startGitRig, type GitRig } from '../../fixtures/git-hoard.js';
import { startGitUpstream, git, gitClientEnv, type GitUpstream } from '../../fixtures/git-upstream.js';
import { waitFor } from '../../fixtures/poll.js';
import { type TestServer } from '../../fixtures/server.js';
import { testRepoSettings } from '../../fixtures/repo-settings.js';
import { Repository } from '../../../src/strategies/git/repository.js';
import { maintainMirror } from '../../../src/strategies/git/maintenance.js';

const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const packFiles = async (mirror: string) => (await fs.readdir(path.join(mirror, 'objects', 'pack'))).sort();
const hasBitmap = async (mirror: string) => (await packFiles(mirror)).some((n) => /^multi-pack-index-[0-9a-f]+\.bitmap$/.test(n));
const hasCommitGraph = async (mirror: string) => (await exists(path.join(mirror, 'objects', 'info', 'commit-graphs', 'commit-graph-chain'))) || (await exists(path.join(mirror, 'objects', 'info', 'commit-graph')));
/** Every ref and the objects they reach, as a comparable listing. */
const everything = (dir: string) => `${git(['for-each-ref', '--format=%(objectname) %(refname)'], dir)}\n${git(['rev-list', '--objects', '--all'], dir).split('\n').sort().join('\n')}`;

describe('maintenance = true', () => {
  let rig: GitRig;
  let upstream: GitUpstream;
  let hoard: TestServer;
  let work: string;
  let logs: Array<Record<string, unknown>>;
  before(async () => {
    rig = await startGitRig({ clone: 'ref-check-interval = "1h"\n  maintenance = true', workPrefix: 'hoard-maintenance-' });
    ({ upstream, hoard, work, logs } = rig);
  });
  after(() => rig.close());

  test('a new mirror gets a multi-pack-index with a bitmap and a commit-graph, and clones through hoard still equal upstream', async () => {
    await upstream.createRepo('org/kept.git', { files: 20, commits: 4, branches: ['topic'] });
    const bare = path.join(upstream.root, 'repos', 'org/kept.git');
    const mirror = path.join(hoard.stateDir, 'git-mirrors', upstream.hostPort, 'org/kept.git');
    await gitAsync(['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/org/kept`, path.join(work, 'first')]);
    await waitFor('the first maintenance run', () => logs.some((l) => l['msg'] === 'mirror maintenance' && String(l['upstream']).endsWith('/org/kept') && l['outcome'] === 'maintained'), 60_000);
    assert.ok(await exists(path.join(mirror, 'objects', 'pack', 'multi-pack-index')), `no multi-pack-index in ${(await packFiles(mirror)).join(', ')}`);
    assert.ok(await hasBitmap(mirror), `no multi-pack-index bitmap in ${(await packFiles(mirror)).join(', ')}`);
    assert.ok(await hasCommitGraph(mirror), 'no commit-graph');
    git(['fsck', '--no-progress'], mirror);

    // Served from the maintained mirror (the ref check would call the mirror fresh for an hour).
    const before = upstream.requests.length;
    for (const mode of [['-c', 'protocol.version=2'], ['-c', 'protocol.version=0']]) {
      const dir = path.join(work, `after-${mode[1]}`);
      await gitAsync([...mode, 'clone', '-q', '--mirror', `${hoard.url}/git/${upstream.hostPort}/org/kept`, dir]);
      assert.equal(everything(dir), everything(bare));
      git(['fsck', '--no-progress'], dir);
    }
    assert.equal(upstream.requests.length, before, 'the clones were served by the mirror');
  });
});

describe('maintainMirror', () => {
  let upstream: GitUpstream;
  let root: string;
  let repo: Repository;
  let mirror: string;
  let bare: string;
  before(async () => {
    upstream = await startGitUpstream();
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-maintain-'));
    await upstream.createRepo('org/direct.git', { files: 10, commits: 2 });
    bare = path.join(upstream.root, 'repos', 'org/direct.git');
    mirror = path.join(root, 'mirror.git');
    git(['clone', '-q', '--mirror', bare, mirror]);
    repo = new Repository(
      bare,
      mirror,
      testRepoSettings(root, { gitEnv: { ...gitClientEnv, GIT_ALLOW_PROTOCOL: 'file' }, lsRemoteTimeoutMs: 60_000, refCheckIntervalMs: 3_600_000, packThreads: 0 }),
      'ready',
    );
    await repo.configure();
  });
  after(async () => {
    await upstream.close();
    await fs.rm(root, { recursive: true, force: true });
  });

  /** An upstream commit fetched into the mirror as a pack of its own (as hoard's fetches keep them). */
  async function newPack(message: string): Promise<void> {
    await upstream.commit('org/direct.git', message);
    git(['fetch', '-q', '--prune', 'origin'], mirror);
  }

  const opts = { timeoutMs: 60_000, threads: 1 };
  const signal = new AbortController().signal;

  test('repacks fetched packs into a bitmapped multi-pack-index, then has nothing to do until a pack arrives', async () => {
    await newPack('one');
    await newPack('two');
    assert.equal(await maintainMirror(repo, signal, opts), 'maintained');
    assert.ok(await hasBitmap(mirror));
    assert.ok(await hasCommitGraph(mirror));
    git(['fsck', '--no-progress'], mirror);
    assert.equal(everything(mirror), everything(bare));
    assert.equal(await maintainMirror(repo, signal, opts), 'unchanged');
    await newPack('three');
    assert.equal(await maintainMirror(repo, signal, opts), 'maintained');
    assert.equal(everything(mirror), everything(bare));
  });

  test('a lock left by a crashed run is removed; a failed run removes the locks it may have left', async () => {
    const lock = path.join(mirror, 'objects', 'pack', 'multi-pack-index.lock');
    // Older than a whole run's deadline: left by a crash, removed before the run.
    await newPack('stale lock');
    await fs.writeFile(lock, '');
    const old = new Date(Date.now() - 2 * opts.timeoutMs);
    await fs.utimes(lock, old, old);
    assert.equal(await maintainMirror(repo, signal, opts), 'maintained');
    assert.equal(await exists(lock), false);

    // A fresh lock could be a live git's: the run fails on it, then clears what it may have left.
    await newPack('fresh lock');
    await fs.writeFile(lock, '');
    await assert.rejects(maintainMirror(repo, signal, opts), /failed to write multi-pack-index/);
    assert.equal(await exists(lock), false);
    assert.equal(await maintainMirror(repo, signal, opts), 'maintained');
  });

  test('the deadline kills the run', async () => {
    await newPack('deadline');
    await assert.rejects(maintainMirror(repo, signal, { timeoutMs: 1, threads: 1 }), /timed out/);
    assert.equal(await maintainMirror(repo, signal, opts), 'maintained');
    git(['fsck', '--no-progress'], mirror);
  });
});
