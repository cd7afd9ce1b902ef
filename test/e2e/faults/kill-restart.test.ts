/**
 * kill -9 at the worst moments (issue 10 points 3 and 9): during snapshot generation of a 20k-file
 * repository, during a first clone, during an object upload, and a start-up whose scratch space is
 * still being written. After each, a restart on the same state directory must come up at once,
 * nothing the killed server left may keep running or be served, and git must be clean.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { git, gitClientEnv, startGitUpstream, type GitUpstream } from '../../fixtures/git-upstream.js';
import { generateSourceRepo } from '../../fixtures/source-repo-generator.js';
import { startHoardProcess, stopAllHoardProcesses, writeServeConfig, type HoardProcess } from '../../fixtures/hoard-process.js';
import { descendants, stillRunning, waitFor, type ProcessRow } from './process-table.js';

let upstream: GitUpstream;
let work: string;
/** Processes a test froze or started itself: killed at the end whatever happened. */
const strays: ProcessRow[] = [];
const helpers: ChildProcess[] = [];

before(async () => {
  upstream = await startGitUpstream();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-faults-'));
  // 20,000 files: checking them out and archiving them takes long enough to be killed midway.
  await generateSourceRepo(path.join(upstream.root, 'repos', 'org', 'big.git'), { files: 20_000, fileBytes: 400, commits: 0, filesPerCommit: 0 });
  await upstream.createRepo('org/small.git', { files: 20, commits: 3 });
});
after(async () => {
  await stopAllHoardProcesses();
  for (const row of stillRunning(strays)) {
    try {
      process.kill(row.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  for (const child of helpers) child.kill('SIGKILL');
  upstream.setDelay(0);
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
});

/** A state directory and its config; the same config restarts the server on the same state. */
async function makeState(name: string): Promise<{ state: string; config: string }> {
  const dir = path.join(work, name);
  const state = path.join(dir, 'state');
  await fs.mkdir(state, { recursive: true });
  const config = await writeServeConfig(dir, `cache disk {}\nmetadata memory {}\nstrategy git {\n  plain-http-hosts = ["${upstream.hostPort}"]\n}\n`);
  return { state, config };
}

async function liveness(hoard: HoardProcess): Promise<void> {
  const res = await fetch(`${hoard.url}/_liveness`);
  assert.equal(res.status, 200, await res.text());
}

/** Asserts that none of `rows` is still running a few seconds after the server died. */
async function assertReaped(rows: ProcessRow[]): Promise<void> {
  strays.push(...rows);
  await waitFor(`the killed server's children (${rows.map((r) => `${r.pid} ${r.cmdline}`).join('; ')}) to be gone`, 10_000, () =>
    stillRunning(rows).length === 0 ? true : undefined,
  );
}

/** Runs a git client to completion; resolves to its stdout. */
function gitClient(args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { cwd, env: gitClientEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    helpers.push(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.once('error', (e) => reject(new Error(`git ${args.join(' ')} in ${cwd}: ${e.message}`)));
    child.once('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`git ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** Clones `repo` through `hoard` and checks it against the upstream: same HEAD, clean fsck. */
async function assertCloneEqualsUpstream(hoard: HoardProcess, repo: string, state: string): Promise<void> {
  const dest = path.join(work, `clone-${randomBytes(4).toString('hex')}`);
  await gitClient(['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/${repo}`, dest]);
  const upstreamHead = git(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', repo));
  assert.equal(await gitClient(['rev-parse', 'HEAD'], dest), upstreamHead, 'the clone through the restarted server has the upstream HEAD');
  await gitClient(['fsck', '--full', '--no-progress'], dest);
  // The first clone may be served while the mirror is still being made: wait until it is published.
  const mirror = path.join(state, 'git-mirrors', upstream.hostPort, repo);
  await waitFor(`the mirror ${mirror}`, 60_000, () => fs.stat(path.join(mirror, 'HEAD')).then(() => true, () => undefined));
  await gitClient(['fsck', '--full', '--no-progress'], mirror);
  await fs.rm(dest, { recursive: true, force: true });
}

/** Fetches a snapshot and checks it is a whole archive (zstd and tar both accept all of it). */
async function assertWholeSnapshot(hoard: HoardProcess, repo: string): Promise<void> {
  const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/${repo}/snapshot.tar.zst`);
  assert.equal(res.status, 200, await res.clone().text().catch(() => ''));
  const file = path.join(work, `snap-${randomBytes(4).toString('hex')}.tar.zst`);
  await fs.writeFile(file, Buffer.from(await res.arrayBuffer()));
  await new Promise<void>((resolve, reject) => {
    const child = spawn('sh', ['-c', `zstd -dc "${file}" | tar -tf - >/dev/null`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`snapshot is not a whole archive: ${err}`))));
  });
  await fs.rm(file, { force: true });
}

/** Waits until the trash beside the scratch space has been emptied in the background. */
async function assertTrashEmptied(state: string): Promise<void> {
  const trash = path.join(state, 'git-mirrors', '.trash');
  await waitFor('the discarded scratch space to be deleted', 30_000, async () => ((await fs.readdir(trash).catch(() => [])).length === 0 ? true : undefined));
}

test('kill -9 during snapshot generation of a 20k-file repository: restart at once, children gone, clone equals upstream', async () => {
  const { state, config } = await makeState('snapshot');
  const first = await startHoardProcess({ config });
  // The request dies with the server; only its side effects matter.
  const pending = fetch(`${first.url}/git/${upstream.hostPort}/org/big.git/snapshot.tar.zst`).then((r) => r.arrayBuffer()).catch(() => undefined);
  // Generation starts with a local `git clone` of the mirror into scratch space (checking out
  // 20,000 files). Freeze it there: a child that is merely slow would show the bug only
  // sometimes, a stopped one shows it every time (SIGKILL still reaches a stopped process).
  const generator = await waitFor('snapshot generation to start', 120_000, () =>
    descendants(first.pid).find((row) => row.comm === 'git' && row.cmdline.includes('/.scratch/snapshot-') && row.cmdline.includes('clone')),
  );
  process.kill(generator.pid, 'SIGSTOP');
  const children = descendants(first.pid);
  await first.kill9();
  await pending;

  const second = await startHoardProcess({ config });
  await liveness(second);
  await assertReaped(children);
  await assertWholeSnapshot(second, 'org/big.git');
  await assertCloneEqualsUpstream(second, 'org/big.git', state);
  await assertTrashEmptied(state);
  await second.kill9();
});

test('kill -9 during a first clone: the server-side clone dies with it; restart, clone equals upstream', async () => {
  const { state, config } = await makeState('first-clone');
  const first = await startHoardProcess({ config });
  // The upstream holds every pack response, so the server-side `git clone --mirror` is waiting
  // mid-clone when the server dies; an orphan would wake up long after the test wants it gone.
  upstream.setDelay(60_000);
  const posts = upstream.uploadPackPosts('/org/small.git').length;
  const client = gitClient(['clone', '-q', `${first.url}/git/${upstream.hostPort}/org/small.git`, path.join(work, 'killed-clone')]).catch(() => undefined);
  await waitFor('the server-side clone to ask for its pack', 60_000, () => (upstream.uploadPackPosts('/org/small.git').length > posts ? true : undefined));
  const children = descendants(first.pid);
  assert.ok(children.some((row) => row.comm === 'git'), `a server-side git runs: ${children.map((r) => r.cmdline).join('; ')}`);
  await first.kill9();
  await client;
  upstream.setDelay(0);

  const second = await startHoardProcess({ config });
  await liveness(second);
  await assertReaped(children);
  await assertCloneEqualsUpstream(second, 'org/small.git', state);
  await assertTrashEmptied(state);
  await second.kill9();
});

test('kill -9 during an object upload: after restart the partial object is never served', async () => {
  const { state, config } = await makeState('upload');
  const first = await startHoardProcess({ config });
  const whole = randomBytes(8 << 20);
  const key = 'half-uploaded';
  const req = http.request(`${first.url}/api/v1/object/faults/${key}`, { method: 'POST', headers: { 'content-length': String(whole.length) } });
  req.on('error', () => undefined);
  req.write(whole.subarray(0, whole.length / 2));
  // Kill once the body is landing in a temp file on disk (the interrupted write start-up must clean).
  const tempFile = async (dir: string): Promise<string | undefined> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        const found = await tempFile(full);
        if (found) return found;
      } else if (entry.name.startsWith('.tmp-') && (await fs.stat(full)).size > 0) return full;
    }
    return undefined;
  };
  const partial = await waitFor('the upload to reach the disk', 30_000, () => tempFile(path.join(state, 'cache')));
  await first.kill9();
  req.destroy();

  const second = await startHoardProcess({ config });
  await liveness(second);
  const res = await fetch(`${second.url}/api/v1/object/faults/${key}`);
  assert.equal(res.status, 404, 'the partial object is not served');
  await res.arrayBuffer();
  await assert.rejects(fs.stat(partial), 'start-up removed the partial body');
  // The key is writable and readable again, in full.
  const put = await fetch(`${second.url}/api/v1/object/faults/${key}`, { method: 'POST', body: whole });
  assert.equal(put.status, 200, await put.text());
  const got = Buffer.from(await (await fetch(`${second.url}/api/v1/object/faults/${key}`)).arrayBuffer());
  assert.ok(got.equals(whole), 'the rewritten object is served whole');
  await second.kill9();
});

test('start-up succeeds while something is still writing into the scratch space', async () => {
  const { state, config } = await makeState('busy-scratch');
  const busy = path.join(state, 'git-mirrors', '.scratch', 'clone-leftover', 'repo.git', 'objects');
  await fs.mkdir(busy, { recursive: true });
  // An orphan writer from an earlier run: creates files as fast as it can (builtins only, no forks).
  const writer = spawn('sh', ['-c', 'i=0; while :; do i=$((i+1)); : > "f$i"; done'], { cwd: busy, stdio: 'ignore' });
  helpers.push(writer);
  await waitFor('the writer to start writing', 10_000, async () => ((await fs.readdir(busy)).length > 100 ? true : undefined));

  const hoard = await startHoardProcess({ config });
  await liveness(hoard);
  // Scratch space is usable at once: a first clone works while the old directory is still busy.
  await assertCloneEqualsUpstream(hoard, 'org/small.git', state);
  writer.kill('SIGKILL');
  await assertTrashEmptied(state);
  await hoard.kill9();
});

test('a mirror whose fetch was killed mid-update (stale ref locks) fetches again after restart', async () => {
  const { state, config } = await makeState('killed-fetch');
  const first = await startHoardProcess({ config });
  await assertCloneEqualsUpstream(first, 'org/small.git', state);
  await first.kill9();
  // What a `git fetch` killed while updating refs leaves behind: its lock files (and a temp pack).
  const mirror = path.join(state, 'git-mirrors', upstream.hostPort, 'org', 'small.git');
  await fs.mkdir(path.join(mirror, 'refs', 'heads'), { recursive: true });
  for (const lock of ['refs/heads/main.lock', 'packed-refs.lock', 'HEAD.lock', 'objects/pack/tmp_pack_killed']) await fs.writeFile(path.join(mirror, lock), '');
  const newHead = await upstream.commit('org/small.git', 'after the killed fetch');

  const second = await startHoardProcess({ config });
  await liveness(second);
  // The start-up fetch brings the mirror up to date (it fails for ever while a lock remains).
  await waitFor('the restarted server to fetch the new commit into its mirror', 60_000, () =>
    git(['rev-parse', 'refs/heads/main'], mirror) === newHead ? true : undefined,
  );
  await assertCloneEqualsUpstream(second, 'org/small.git', state);
  await second.kill9();
});
