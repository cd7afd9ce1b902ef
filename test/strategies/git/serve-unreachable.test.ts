import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gitAsync } from '../../fixtures/git-client.js';
import { git, startGitUpstream, type GitUpstream } from '../../fixtures/git-upstream.js';
import { waitFor as poll } from '../../fixtures/poll.js';
import { startGitStrategy, type GitStrategyHarness } from './strategy-harness.js';

let upstream: GitUpstream;
let work: string;
let stateDir: string;

const NAME = 'secrets/leaky';
const bare = () => path.join(upstream.root, 'repos', `${NAME}.git`);

/** Polls every 20 ms, for 20 s unless told. */
const waitFor = (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000) => poll(what, fn, timeoutMs, 20);

const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const has = (dir: string, id: string) => gitAsync(['cat-file', '-e', id], dir).then(() => true, () => false);

/** hoard's git strategy on the shared state directory (a restart keeps the mirror). */
const startHoard = (serveUnreachable: boolean) =>
  startGitStrategy({ stateDir, git: { 'plain-http-hosts': [upstream.hostPort], 'serve-unreachable': serveUnreachable }, clone: { 'ref-check-interval': 1 } });

/** `git fetch <url> <id>` into a new empty repository; true when it got the commit. */
async function fetchById(url: string, id: string, protocol: string): Promise<boolean> {
  const dir = await fs.mkdtemp(path.join(work, 'by-id-'));
  await gitAsync(['init', '-q', dir]);
  try {
    await gitAsync(['-c', `protocol.version=${protocol}`, 'fetch', '-q', url, id], dir);
  } catch {
    return false;
  }
  return has(dir, id);
}

let orphan: string;
let mirror: string;

before(async () => {
  upstream = await startGitUpstream();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-unreachable-'));
  stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-unreachable-state-'));
  mirror = path.join(stateDir, 'git-mirrors', upstream.hostPort, `${NAME}.git`);
});
after(async () => {
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
  await fs.rm(stateDir, { recursive: true, force: true });
});

describe('serve-unreachable: a commit orphaned upstream is not handed out by id', () => {
  test('set-up: commit X reaches the mirror, then a force-push upstream orphans it and upstream drops it', async () => {
    await upstream.createRepo(`${NAME}.git`, { files: 3 });
    const hoard = await startHoard(false);
    try {
      const url = `${hoard.url}/git/${upstream.hostPort}/${NAME}`;
      const checkout = path.join(work, 'checkout');
      await gitAsync(['clone', '-q', url, checkout]);
      await waitFor('mirror ready', () => exists(path.join(mirror, 'HEAD')));
      orphan = await upstream.commit(`${NAME}.git`, 'commits a secret');
      await gitAsync(['fetch', '-q', 'origin'], checkout);
      assert.equal(await gitAsync(['rev-parse', 'origin/main'], checkout), orphan);
      await waitFor('mirror has X', () => git(['rev-parse', 'main'], mirror) === orphan);

      const rewritten = await upstream.commit(`${NAME}.git`, 'secret removed', { force: true });
      git(['reflog', 'expire', '--expire=now', '--all'], bare());
      git(['gc', '-q', '--prune=now'], bare());
      assert.equal(await has(bare(), orphan), false, 'control: upstream no longer holds X');
      // The next ref listing sees the force-push; the catch-up fetch (with --prune) moves the ref.
      await gitAsync(['ls-remote', url]);
      await waitFor('mirror follows the force-push', () => git(['rev-parse', 'main'], mirror) === rewritten);
      assert.equal(await has(mirror, orphan), true, 'the mirror still holds X: only reachability can refuse it');
      assert.equal(git(['for-each-ref', `--contains=${orphan}`], mirror), '', 'no mirror ref reaches X');
    } finally {
      await hoard.close();
    }
  });

  for (const protocol of ['0', '2']) {
    test(`protocol v${protocol}: refused with serve-unreachable = false, served with true, refused again after a restart with false`, async () => {
      assert.ok(orphan, 'set-up ran');
      for (const [serveUnreachable, expected] of [[false, false], [true, true], [false, false]] as const) {
        // Each restart re-applies the mirror configuration to the mirror found on disk.
        const hoard = await startHoard(serveUnreachable);
        try {
          await waitFor('mirror configured at start-up', () => git(['config', 'uploadpack.allowAnySHA1InWant'], mirror) === String(serveUnreachable));
          const url = `${hoard.url}/git/${upstream.hostPort}/${NAME}`;
          assert.equal(await fetchById(url, orphan, protocol), expected, `serve-unreachable = ${serveUnreachable}`);
          // Reachable commits stay fetchable by id either way.
          assert.equal(await fetchById(url, git(['rev-parse', 'main~1'], mirror), protocol), true, 'a reachable commit by id');
        } finally {
          await hoard.close();
        }
      }
    });
  }
});
