import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startApacheGit, type ApacheGitUpstream } from '../fixtures/apache-git.js';
import { git, gitClientEnv } from '../fixtures/git-upstream.js';
import { waitFor } from '../fixtures/poll.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';
import { startGitStrategy } from '../strategies/git/strategy-harness.js';
import { mirrorRelativePath } from '../../src/strategies/git/repo-names.js';

/*
 * The real git client through hoard against Apache httpd + git-http-backend (an upstream that
 * shares no code with hoard), every result compared with the same command run directly against
 * Apache.
 */

const execFileAsync = promisify(execFile);
/** User agents of the test's clients through hoard and direct: Apache's log tells them from hoard's own git (`git/…`). */
const CLIENT_UA = 'hoard-e2e-client';
const DIRECT_UA = 'hoard-e2e-direct';

let apache: ApacheGitUpstream;
let hoard: TestServer;
/** ref-check-interval = 1ms: every ref listing runs a ref check (the freshness matrix). */
let eager: TestServer;
let work: string;

async function client(args: string[], cwd?: string, userAgent = CLIENT_UA): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, env: { ...gitClientEnv, GIT_HTTP_USER_AGENT: userAgent }, maxBuffer: 256 << 20 });
  return stdout.trim();
}

/** A repository name as git clients write it in a URL (non-ASCII and spaces escaped). */
const urlName = (name: string) => name.split('/').map((s) => encodeURIComponent(s).replace(/%2B/g, '+').replace(/%40/g, '@')).join('/');
const viaHoard = (name: string, server = hoard.url) => `${server}/git/${apache.hostPort}/git/${urlName(name)}`;
const direct = (name: string) => `${apache.url}/${urlName(name)}`;
const mirrorOf = (stateDir: string, name: string) => path.join(stateDir, 'git-mirrors', mirrorRelativePath(apache.hostPort, `git/${name.replace(/\.git$/, '')}`));
const exists = (p: string) => fs.stat(p).then(() => true, () => false);

/** What a clone holds: HEAD (commit and what it names) and every ref with its object. */
async function stateOf(dir: string): Promise<{ head: string; headRef: string; refs: string }> {
  return {
    head: await client(['rev-parse', 'HEAD'], dir),
    headRef: await client(['symbolic-ref', '-q', 'HEAD'], dir).catch(() => '(detached)'),
    refs: await client(['for-each-ref', '--format=%(objectname) %(refname) %(symref)'], dir),
  };
}

let cloneCounter = 0;
/** Runs `git clone <args> URL` through hoard and directly; asserts both hold the same; returns the two dirs. */
async function cloneBoth(name: string, args: string[] = [], opts: { config?: string[] } = {}): Promise<{ viaHoard: string; direct: string; state: Awaited<ReturnType<typeof stateOf>> }> {
  const id = ++cloneCounter;
  const dirs = { viaHoard: path.join(work, `${id}-hoard`), direct: path.join(work, `${id}-direct`) };
  const config = (opts.config ?? []).flatMap((c) => ['-c', c]);
  await client([...config, 'clone', '-q', ...args, viaHoard(name), dirs.viaHoard]);
  await client([...config, 'clone', '-q', ...args, direct(name), dirs.direct], undefined, DIRECT_UA);
  const [got, want] = await Promise.all([stateOf(dirs.viaHoard), stateOf(dirs.direct)]);
  // Both clones call their remote origin, so even remote-tracking refs must be the same.
  assert.deepEqual(got, want, `git clone ${args.join(' ')} ${name}: through hoard differs from direct`);
  return { ...dirs, state: want };
}

/** Clones through hoard only and compares with the state of an earlier direct clone. */
async function cloneViaHoardMatches(name: string, want: Awaited<ReturnType<typeof stateOf>>, args: string[] = [], opts: { config?: string[] } = {}): Promise<string> {
  const dir = path.join(work, `${++cloneCounter}-hoard`);
  await client([...(opts.config ?? []).flatMap((c) => ['-c', c]), 'clone', '-q', ...args, viaHoard(name), dir]);
  assert.deepEqual(await stateOf(dir), want, `git clone ${args.join(' ')} ${name}: through hoard differs from direct`);
  return dir;
}

/** Whether an access-log path is within repository `name`. */
const inRepo = (requestPath: string, name: string) => requestPath.replace(/\.git\//, '/').startsWith(`/git/${name.replace(/\.git$/, '')}/`);

/** Upload-pack POSTs Apache served for a repository (from anyone: hoard's own git, forwarded clients). */
async function uploadPackPosts(name: string): Promise<number> {
  return (await apache.accessLog()).filter((r) => r.method === 'POST' && r.path.endsWith('/git-upload-pack') && inRepo(r.path, name)).length;
}

/** Requests of clients through hoard that hoard passed on to Apache for a repository. */
async function forwarded(name: string): Promise<number> {
  return (await apache.accessLog()).filter((r) => r.userAgent === CLIENT_UA && inRepo(r.path, name)).length;
}

before(async () => {
  apache = await startApacheGit();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-e2e-'));
  const hcl = (interval: string) => `cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { ref-check-interval = "${interval}" }
strategy git { plain-http-hosts = ["${apache.hostPort}"] }
`;
  hoard = await startTestServer({ hcl: hcl('1h') });
  eager = await startTestServer({ hcl: hcl('1ms') });
});
after(async () => {
  await hoard?.close();
  await eager?.close();
  await apache?.close();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

describe('Apache httpd + git-http-backend upstream', () => {
  const names = ['a.b-c+d.git', 'x~y.git', 'org/user@repo.git', 'ünïcödé-rëpo.git'];

  test('repository names with +, ~, @ and non-ASCII clone cold and warm like direct; the mirror directory is the injective encoding', async () => {
    for (const name of names) await apache.createRepo(name, { branches: ['dev'] });
    for (const name of names) {
      await cloneBoth(name);
      await waitFor(`mirror of ${name}`, () => exists(path.join(mirrorOf(hoard.stateDir, name), 'HEAD')));
      const passedOn = await forwarded(name);
      await cloneBoth(name);
      assert.equal(await forwarded(name), passedOn, `warm clones of ${name} were served by the mirror`);
    }
    const hostDir = path.join(hoard.stateDir, 'git-mirrors', apache.hostPort, 'git');
    assert.deepEqual((await fs.readdir(hostDir)).sort(), ['%C3%BCn%C3%AFc%C3%B6d%C3%A9-r%C3%ABpo.git', 'a.b-c%2Bd.git', 'org', 'x%7Ey.git']);
    assert.deepEqual(await fs.readdir(path.join(hostDir, 'org')), ['user%40repo.git']);
  });

  test('mirrors of such names are discovered again after a restart and served warm', async () => {
    const state = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-e2e-restart-'));
    const settings = { git: { 'plain-http-hosts': [apache.hostPort] }, clone: { 'ref-check-interval': 3_600_000 } };
    try {
      // What the previous test's hoard left on disk, as a restart would find it.
      await fs.cp(path.join(hoard.stateDir, 'git-mirrors'), path.join(state, 'git-mirrors'), { recursive: true });
      const second = await startGitStrategy({ stateDir: state, ...settings });
      try {
        assert.equal(second.logs.find((l) => l['msg'] === 'discovered mirrors')?.['mirrors'], names.length);
        for (const name of names) {
          const passedOn = await forwarded(name);
          const dir = path.join(work, `restart-warm-${names.indexOf(name)}`);
          await client(['clone', '-q', viaHoard(name, second.url), dir]);
          assert.equal(await client(['rev-parse', 'HEAD'], dir), apache.git(['rev-parse', 'HEAD'], apache.bareOf(name)));
          assert.equal(await forwarded(name), passedOn, `${name}: served by the discovered mirror`);
        }
        assert.equal(second.strategy.repositoryCount, names.length, 'each name maps to the record discovery made for it');
      } finally {
        await second.close();
      }
    } finally {
      await fs.rm(state, { recursive: true, force: true });
    }
  });
});

describe('Apache upstream: every clone mode through hoard matches a direct clone', () => {
  test('protocol v0, v1 and v2, cold and warm', async () => {
    const versions = ['0', '1', '2'];
    for (const v of versions) await apache.createRepo(`proto/v${v}.git`, { commits: 3, files: 6, branches: ['dev'] });
    let want: Awaited<ReturnType<typeof stateOf>> | undefined;
    for (const v of versions) {
      want = (await cloneBoth(`proto/v${v}.git`, [], { config: [`protocol.version=${v}`] })).state;
      await waitFor('mirror', () => exists(path.join(mirrorOf(hoard.stateDir, `proto/v${v}.git`), 'HEAD')));
    }
    const passedOn = await forwarded('proto/v2.git');
    for (const v of versions) await cloneViaHoardMatches('proto/v2.git', want!, [], { config: [`protocol.version=${v}`] });
    assert.equal(await forwarded('proto/v2.git'), passedOn, 'warm clones in every protocol were served by the mirror');
  });

  test('shallow, deepen, partial with a lazy fetch, --mirror and --bare (warm mirror)', async () => {
    const name = 'modes/project.git';
    await apache.createRepo(name, { commits: 4, files: 8, branches: ['dev', 'release'] });
    // Like the forges, the upstream serves partial clones.
    apache.git(['config', 'uploadpack.allowFilter', 'true'], apache.bareOf(name));
    await cloneBoth(name);
    await waitFor('mirror', () => exists(path.join(mirrorOf(hoard.stateDir, name), 'HEAD')));
    const passedOn = await forwarded(name);

    const shallow = await cloneBoth(name, ['--depth', '1']);
    for (const dir of [shallow.viaHoard, shallow.direct]) assert.equal(await client(['rev-list', '--count', 'HEAD'], dir), '1');
    for (const dir of [shallow.viaHoard, shallow.direct]) await client(['fetch', '-q', '--deepen', '2'], dir, dir === shallow.direct ? DIRECT_UA : CLIENT_UA);
    assert.equal(await client(['rev-list', '--count', 'HEAD'], shallow.viaHoard), '3');
    assert.deepEqual(await stateOf(shallow.viaHoard), await stateOf(shallow.direct));
    assert.equal(await fs.readFile(path.join(shallow.viaHoard, '.git', 'shallow'), 'utf8'), await fs.readFile(path.join(shallow.direct, '.git', 'shallow'), 'utf8'));

    const partial = await cloneBoth(name, ['--filter=blob:none']);
    const missing = (dir: string) => client(['rev-list', '--objects', '--all', '--missing=print'], dir).then((out) => out.split('\n').filter((l) => l.startsWith('?')).length);
    for (const dir of [partial.viaHoard, partial.direct]) assert.equal(await client(['config', 'remote.origin.promisor'], dir), 'true');
    assert.ok((await missing(partial.viaHoard)) > 0, 'the partial clone through hoard left old blobs out');
    assert.equal(await missing(partial.viaHoard), await missing(partial.direct));
    // Reading every old revision fetches the missing blobs lazily, through hoard for that clone.
    const history = (dir: string) => client(['log', '-p', '--all', '--format=%H'], dir, dir === partial.direct ? DIRECT_UA : CLIENT_UA);
    assert.equal(await history(partial.viaHoard), await history(partial.direct));
    assert.equal(await missing(partial.viaHoard), 0, 'the lazy fetches brought every blob');

    await cloneBoth(name, ['--mirror']);
    await cloneBoth(name, ['--bare']);
    assert.equal(await forwarded(name), passedOn, 'every warm mode (lazy fetches included) was served by the mirror');
  });

  test('5,000 tags', async () => {
    const name = 'tags/many.git';
    await apache.createRepo(name, { commits: 5 });
    const bare = apache.bareOf(name);
    const commits = apache.git(['rev-list', 'main'], bare).split('\n');
    await apache.addTags(name, new Map(Array.from({ length: 5_000 }, (_, i) => [`t${String(i).padStart(4, '0')}`, commits[i % commits.length]!])));
    assert.equal(apache.git(['tag', '-l'], bare).split('\n').length, 5_001, 'control: the upstream has the tags');
    const cold = await cloneBoth(name);
    assert.equal((await client(['tag', '-l'], cold.viaHoard)).split('\n').length, 5_001);
    await waitFor('mirror', () => exists(path.join(mirrorOf(hoard.stateDir, name), 'HEAD')));
    await cloneViaHoardMatches(name, cold.state);
    assert.equal(await client(['ls-remote', viaHoard(name)]), await client(['ls-remote', direct(name)], undefined, DIRECT_UA));
  });

  test('a submodule (relative URL, so it is fetched through hoard too)', async () => {
    await apache.createRepo('sub/lib.git', { commits: 2 });
    const app = await apache.createRepo('sub/app.git');
    apache.git(['-c', 'protocol.file.allow=always', 'submodule', '-q', 'add', '../lib.git', 'lib'], app);
    apache.git(['commit', '-q', '-m', 'add lib'], app);
    apache.git(['push', '-q', 'origin', 'main'], app);
    const dirs = await cloneBoth('sub/app.git', ['--recurse-submodules']);
    const lib = (dir: string) => path.join(dir, 'lib');
    assert.deepEqual(await stateOf(lib(dirs.viaHoard)), await stateOf(lib(dirs.direct)));
    assert.equal(await client(['rev-parse', 'HEAD'], lib(dirs.viaHoard)), apache.git(['rev-parse', 'HEAD'], apache.bareOf('sub/lib.git')));
    assert.ok((await client(['remote', 'get-url', 'origin'], lib(dirs.viaHoard))).startsWith(`${hoard.url}/git/`), 'the submodule came through hoard');
  });

  test('a 20 MiB incompressible file, cold and warm', async () => {
    const name = 'big/blob.git';
    await apache.createRepo(name, { bigFileBytes: 20 << 20 });
    const cold = await cloneBoth(name);
    await waitFor('mirror', () => exists(path.join(mirrorOf(hoard.stateDir, name), 'HEAD')));
    const warm = await cloneViaHoardMatches(name, cold.state);
    for (const dir of [cold.viaHoard, warm]) {
      assert.equal(await client(['status', '--porcelain'], dir), '');
      assert.equal((await fs.stat(path.join(dir, 'big.bin'))).size, 20 << 20);
    }
  });

  test('pushes through hoard reach Apache (branch, new branch, tag)', async () => {
    const name = 'push/target.git';
    await apache.createRepo(name);
    const dirs = await cloneBoth(name);
    const tree = dirs.viaHoard;
    await fs.writeFile(path.join(tree, 'pushed.txt'), 'through hoard\n');
    await client(['add', 'pushed.txt'], tree);
    await client(['commit', '-q', '-m', 'pushed through hoard'], tree);
    await client(['tag', '-a', '-m', 'v2', 'v2'], tree);
    await client(['push', '-q', 'origin', 'main', 'main:refs/heads/topic', 'v2'], tree);
    const pushed = await client(['rev-parse', 'HEAD'], tree);
    const upstreamRefs = await client(['ls-remote', direct(name)], undefined, DIRECT_UA);
    for (const ref of ['refs/heads/main', 'refs/heads/topic', 'refs/tags/v2^{}']) assert.ok(upstreamRefs.includes(`${pushed}\t${ref}`), `${ref} at ${pushed} in\n${upstreamRefs}`);
    const after = path.join(work, 'push-after-direct');
    await client(['clone', '-q', direct(name), after], undefined, DIRECT_UA);
    assert.equal(await client(['rev-parse', 'HEAD'], after), pushed);
  });

  test('16 simultaneous clones of a cold repository: identical HEADs, a handful of upstream upload-pack POSTs', async () => {
    const name = 'herd/cold.git';
    await apache.createRepo(name, { commits: 5, files: 40, bigFileBytes: 2 << 20 });
    const want = apache.git(['rev-parse', 'HEAD'], apache.bareOf(name));
    const dirs = Array.from({ length: 16 }, (_, i) => path.join(work, `herd-${i}`));
    await Promise.all(dirs.map((dir) => client(['clone', '-q', viaHoard(name), dir])));
    const heads = await Promise.all(dirs.map((dir) => client(['rev-parse', 'HEAD'], dir)));
    assert.deepEqual(new Set(heads), new Set([want]));
    const posts = await uploadPackPosts(name);
    assert.ok(posts <= 5, `${posts} upload-pack POSTs reached Apache for 16 clones`);
    const control = path.join(work, 'herd-direct');
    await client(['clone', '-q', direct(name), control], undefined, DIRECT_UA);
    assert.deepEqual(await stateOf(dirs[0]!), await stateOf(control));
  });
});

describe('Apache upstream: every ref change reaches clients through hoard', () => {
  /** HEAD's target and every ref, as one comparable string. */
  const refState = (run: (args: string[], dir: string) => string, dir: string) => `${run(['symbolic-ref', 'HEAD'], dir)}\n${run(['for-each-ref', '--format=%(objectname) %(refname)'], dir)}`;
  // Apache's repositories belong to its user (git refuses other users' repositories), hoard's mirrors to us.
  const mirrorMatchesUpstream = (name: string) =>
    waitFor(`mirror of ${name} to match Apache`, () => refState(git, mirrorOf(eager.stateDir, name)) === refState(apache.git, apache.bareOf(name)), 60_000);

  /** A repository at Apache with a Ready mirror in `eager`; returns a client clone made through it. */
  async function warm(name: string, opts: { branches?: string[]; commits?: number } = {}): Promise<string> {
    await apache.createRepo(name, opts);
    const dir = path.join(work, `${++cloneCounter}-fresh`);
    await client(['clone', '-q', viaHoard(name, eager.url), dir]);
    await waitFor('mirror', () => exists(path.join(mirrorOf(eager.stateDir, name), 'HEAD')));
    return dir;
  }

  for (const protocol of ['0', '2']) {
    const v = ['-c', `protocol.version=${protocol}`];
    test(`protocol v${protocol}: new annotated tag, moved lightweight tag, deleted tag, deleted branch, default-branch change, force-push`, async () => {
      {
        const name = `fresh-v${protocol}/annotated.git`;
        const dir = await warm(name);
        apache.git(['tag', '-a', '-m', 'release', 'v2.0', 'main'], apache.bareOf(name));
        await client([...v, 'fetch', '-q', '--tags', 'origin'], dir);
        assert.equal(await client(['rev-parse', 'refs/tags/v2.0'], dir), apache.git(['rev-parse', 'refs/tags/v2.0'], apache.bareOf(name)), 'new annotated tag');
        assert.equal(await client(['cat-file', '-t', 'v2.0'], dir), 'tag');
        await mirrorMatchesUpstream(name);
      }
      {
        const name = `fresh-v${protocol}/moved.git`;
        const dir = await warm(name, { commits: 2 });
        const older = apache.git(['rev-parse', 'main~1'], apache.bareOf(name));
        apache.git(['tag', '-f', 'light', 'main'], apache.bareOf(name));
        await client([...v, 'fetch', '-q', '--tags', 'origin'], dir);
        apache.git(['tag', '-f', 'light', older], apache.bareOf(name));
        await client([...v, 'fetch', '-q', '--tags', '--force', 'origin'], dir);
        assert.equal(await client(['rev-parse', 'refs/tags/light'], dir), older, 'moved lightweight tag');
        await mirrorMatchesUpstream(name);
      }
      {
        const name = `fresh-v${protocol}/deleted-tag.git`;
        const dir = await warm(name);
        assert.equal(await client(['tag', '-l', 'v1'], dir), 'v1', 'control: the clone has the tag');
        apache.git(['tag', '-d', 'v1'], apache.bareOf(name));
        assert.doesNotMatch(await client([...v, 'ls-remote', 'origin'], dir), /refs\/tags\/v1/, 'deleted tag still advertised');
        await client([...v, 'fetch', '-q', '--prune', '--prune-tags', 'origin'], dir);
        assert.equal(await client(['tag', '-l', 'v1'], dir), '');
        await mirrorMatchesUpstream(name);
      }
      {
        const name = `fresh-v${protocol}/deleted-branch.git`;
        const dir = await warm(name, { branches: ['feature'] });
        assert.match(await client(['branch', '-r'], dir), /origin\/feature/, 'control: the clone has the branch');
        apache.git(['branch', '-D', 'feature'], apache.bareOf(name));
        await client([...v, 'fetch', '-q', '--prune', 'origin'], dir);
        assert.doesNotMatch(await client(['branch', '-r'], dir), /origin\/feature/, 'deleted branch');
        await mirrorMatchesUpstream(name);
      }
      {
        const name = `fresh-v${protocol}/default.git`;
        await warm(name, { branches: ['develop'] });
        apache.git(['symbolic-ref', 'HEAD', 'refs/heads/develop'], apache.bareOf(name));
        const first = path.join(work, `${++cloneCounter}-default`);
        await client([...v, 'clone', '-q', viaHoard(name, eager.url), first]);
        assert.equal(await client(['symbolic-ref', 'HEAD'], first), 'refs/heads/develop', 'default-branch change');
        await mirrorMatchesUpstream(name);
        // Once the mirror follows, it alone answers with the new default branch. (Its refs and HEAD
        // are on disk a moment before the catch-up fetch counts as done; until then listings still
        // go upstream, so wait for one the mirror answers.)
        await waitFor('a listing served by the mirror', async () => {
          const before = await forwarded(name);
          await client([...v, 'ls-remote', viaHoard(name, eager.url)]);
          return (await forwarded(name)) === before;
        }, 60_000);
        const passedOn = await forwarded(name);
        const second = path.join(work, `${++cloneCounter}-default`);
        await client([...v, 'clone', '-q', viaHoard(name, eager.url), second]);
        assert.equal(await client(['symbolic-ref', 'HEAD'], second), 'refs/heads/develop');
        assert.equal(await forwarded(name), passedOn, 'served by the mirror');
      }
      {
        const name = `fresh-v${protocol}/forced.git`;
        const dir = await warm(name);
        await apache.commit(name, 'to be rewritten');
        await client([...v, 'fetch', '-q', 'origin'], dir);
        const forced = await apache.commit(name, 'rewritten', { force: true });
        await client([...v, 'fetch', '-q', 'origin'], dir);
        assert.equal(await client(['rev-parse', 'origin/main'], dir), forced, 'force-push');
        await mirrorMatchesUpstream(name);
      }
    });
  }

  test('a refresh no ref check asked for (a push through hoard, ref-check-interval 1h) also brings a default-branch change', async () => {
    const name = 'fresh/head-on-refresh.git';
    await apache.createRepo(name, { branches: ['develop'] });
    const dir = path.join(work, `${++cloneCounter}-pusher`);
    await client(['clone', '-q', viaHoard(name), dir]);
    const mirror = mirrorOf(hoard.stateDir, name);
    await waitFor('mirror', () => exists(path.join(mirror, 'HEAD')));
    // Twice: the second refresh must not take the first one's look-up for a ref check.
    for (const [round, target] of ['refs/heads/develop', 'refs/heads/main'].entries()) {
      apache.git(['symbolic-ref', 'HEAD', target], apache.bareOf(name));
      await fs.writeFile(path.join(dir, `mine-${round}.txt`), 'pushed through hoard\n');
      await client(['add', '-A'], dir);
      await client(['commit', '-q', '-m', `mine ${round}`], dir);
      await client(['push', '-q', 'origin', 'main'], dir);
      const fresh = path.join(work, `${++cloneCounter}-after-head-change`);
      await client(['clone', '-q', viaHoard(name), fresh]);
      assert.equal(await client(['symbolic-ref', 'HEAD'], fresh), target, `round ${round}: the clone after the refresh checks out the new default branch`);
      assert.equal(git(['symbolic-ref', 'HEAD'], mirror), target);
    }
  });

  test('a push through hoard is read back at once by the pusher and a fresh clone (ref-check-interval 1h)', async () => {
    const name = 'fresh/own-push.git';
    await apache.createRepo(name);
    const dir = path.join(work, `${++cloneCounter}-pusher`);
    await client(['clone', '-q', viaHoard(name), dir]);
    await waitFor('mirror', () => exists(path.join(mirrorOf(hoard.stateDir, name), 'HEAD')));
    await fs.writeFile(path.join(dir, 'mine.txt'), 'pushed through hoard\n');
    await client(['add', 'mine.txt'], dir);
    await client(['commit', '-q', '-m', 'mine'], dir);
    const pushed = await client(['rev-parse', 'HEAD'], dir);
    await client(['push', '-q', 'origin', 'main'], dir);
    const fresh = path.join(work, `${++cloneCounter}-after-push`);
    await Promise.all([client(['fetch', '-q', 'origin'], dir), client(['clone', '-q', viaHoard(name), fresh])]);
    assert.equal(await client(['rev-parse', 'origin/main'], dir), pushed, 'the pusher’s fetch kept origin/main at the push');
    assert.equal(await client(['rev-parse', 'HEAD'], fresh), pushed, 'the fresh clone has the push');
  });
});
