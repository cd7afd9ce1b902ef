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

  test('a catch-up requested while one runs gets a ref check after it, and a second catch-up when still behind', async () => {
    const repo = await readyRepository('org/trailing');
    await upstream.commit('org/trailing.git', 'first change');
    let submitted = 0;
    const submit = (job: (signal: AbortSignal) => Promise<void>) => {
      submitted++;
      return job(new AbortController().signal);
    };
    const posts = () => upstream.requests.filter((r) => r.path === '/org/trailing.git/git-upload-pack').length;
    upstream.setDelay(300);
    let latest = '';
    try {
      const at = posts();
      const running = repo.fetchInBackground(submit);
      // The mirror fetches with protocol v2: once its second POST (the fetch) arrived, its first
      // (ls-refs) was answered, so the running fetch cannot see a force-push made now.
      while (posts() < at + 2) await new Promise((r) => setTimeout(r, 10));
      latest = await upstream.commit('org/trailing.git', 'rewritten', { force: true });
      const trailing = repo.fetchInBackground(submit);
      assert.notEqual(trailing, running, 'joined the fetch that was already running');
      for (let i = 0; i < 3; i++) assert.equal(repo.fetchInBackground(submit), trailing, 'one trailing check, not one per caller');
      assert.equal(await repo.refsStale(), true, 'behind while the first catch-up runs');
      await running;
      assert.notEqual(git(['rev-parse', 'main'], repo.mirrorDir), latest, 'control: the first catch-up missed the force-push');
      await trailing;
    } finally {
      upstream.setDelay(0);
    }
    assert.equal(submitted, 2, 'the trailing check found the mirror behind and queued one more catch-up');
    assert.equal(git(['rev-parse', 'main'], repo.mirrorDir), latest, 'the second catch-up brought in the force-push');
    assert.equal(await repo.refsStale(), false);
  });

  test('a trailing check that finds the mirror current fetches nothing more', async () => {
    const repo = await readyRepository('org/trailing-current');
    const latest = await upstream.commit('org/trailing-current.git', 'one change');
    let submitted = 0;
    const submit = (job: (signal: AbortSignal) => Promise<void>) => {
      submitted++;
      return job(new AbortController().signal);
    };
    const running = repo.fetchInBackground(submit);
    const trailing = repo.fetchInBackground(submit);
    assert.notEqual(trailing, running);
    await Promise.all([running, trailing]);
    assert.equal(submitted, 1);
    assert.equal(git(['rev-parse', 'main'], repo.mirrorDir), latest);
  });
});
