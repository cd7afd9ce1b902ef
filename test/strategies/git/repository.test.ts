import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Repository, type RepoSettings } from '../../../src/strategies/git/repository.js';
import { git, startGitUpstream, type GitUpstream } from '../../fixtures/git-upstream.js';
import { testRepoSettings } from '../../fixtures/repo-settings.js';

let upstream: GitUpstream;
let root: string;

before(async () => {
  upstream = await startGitUpstream();
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-repo-'));
});
after(async () => {
  await upstream.close();
  await fs.rm(root, { recursive: true, force: true });
});

const settings = (): RepoSettings => testRepoSettings(path.join(root, 'mirrors'));

async function readyRepository(name: string): Promise<Repository> {
  await upstream.createRepo(`${name}.git`, { files: 3 });
  const s = settings();
  const repo = new Repository(`${upstream.url}/${name}.git`, path.join(s.mirrorRoot, upstream.hostPort, `${name}.git`), s, 'empty');
  assert.ok(repo.tryStartCloning());
  await repo.clone(new AbortController().signal);
  assert.equal(repo.state, 'ready');
  return repo;
}

/** Upload-pack traffic the mirror's own fetches caused for `name` (git's user agent, not a test client). */
const fetchTraffic = (name: string) => upstream.requests.filter((r) => r.path.includes(name) && r.path.endsWith('/git-upload-pack'));

describe('Repository fetches', () => {
  test('a verified fetch that waited for a running fetch re-checks the fetch exclusion', async () => {
    const repo = await readyRepository('org/excl');
    const newer = await upstream.commit('org/excl.git', 'upstream moves');
    upstream.setDelay(400);
    try {
      const running = repo.fetch();
      await new Promise((r) => setTimeout(r, 50));
      const verified = repo.fetch({ verified: true });
      // Like a mirror snapshot: claims the exclusion while the first fetch still runs, and must
      // then see no fetch at all until it is done.
      let duringExclusion = -1;
      const excluded = repo.withFetchesExcluded(async () => {
        const at = fetchTraffic('org/excl').length;
        await new Promise((r) => setTimeout(r, 600));
        duringExclusion = fetchTraffic('org/excl').length - at;
      });
      await Promise.all([running, verified, excluded]);
      assert.equal(duringExclusion, 0, 'a fetch ran while fetches were excluded');
    } finally {
      upstream.setDelay(0);
    }
    assert.equal(git(['rev-parse', 'main'], repo.mirrorDir), newer, 'the verified fetch still ran (after the exclusion)');
  });

  test('a verified fetch does not settle for a fetch that was already running', async () => {
    const repo = await readyRepository('org/verified');
    upstream.setDelay(300);
    let newer = '';
    try {
      const running = repo.fetch();
      await new Promise((r) => setTimeout(r, 100));
      // Upstream moves after the running fetch already listed refs: only a new fetch sees it.
      newer = await upstream.commit('org/verified.git', 'later work');
      const coalesced = repo.fetch();
      await Promise.all([running, coalesced]);
      await repo.fetch({ verified: true });
    } finally {
      upstream.setDelay(0);
    }
    assert.equal(git(['rev-parse', 'main'], repo.mirrorDir), newer);
  });

  test('background fetches coalesce: one queued or running at a time, and ref checks wait for it', async () => {
    const repo = await readyRepository('org/coalesce');
    await upstream.commit('org/coalesce.git', 'stale now');
    let submitted = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const submit = (job: (signal: AbortSignal) => Promise<void>) => {
      submitted++;
      return gate.then(() => job(new AbortController().signal));
    };
    assert.equal(await repo.refsStale(), true);
    const lsRemotes = () => upstream.requests.filter((r) => r.path.includes('org/coalesce') && r.method === 'GET').length;
    const first = repo.fetchInBackground(submit);
    const before = lsRemotes();
    for (let i = 0; i < 5; i++) {
      assert.equal(repo.fetchInBackground(submit), first);
      assert.equal(await repo.refsStale(), true, 'still behind while the fetch is pending');
    }
    assert.equal(submitted, 1);
    assert.equal(lsRemotes(), before, 'no ls-remote while a catch-up fetch is pending');
    release();
    await first;
    assert.equal(await repo.refsStale(), false);
    const next = repo.fetchInBackground(submit);
    assert.equal(submitted, 2, 'a new one may be queued once the last finished');
    await next;
  });
});
