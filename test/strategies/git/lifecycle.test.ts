import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { git, gitClientEnv, startGitUpstream, type GitUpstream } from '../../fixtures/git-upstream.js';
import { waitFor as poll } from '../../fixtures/poll.js';
import { startGitStrategy } from './strategy-harness.js';

const execFileAsync = promisify(execFile);
const CLIENT_UA = 'hoard-test-client';

let upstream: GitUpstream;
let work: string;

before(async () => {
  upstream = await startGitUpstream();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-lifecycle-'));
});
after(async () => {
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
});

async function gitClient(args: string[]): Promise<void> {
  await execFileAsync('git', args, { env: { ...gitClientEnv, GIT_HTTP_USER_AGENT: CLIENT_UA }, maxBuffer: 64 << 20 });
}

/** Polls every 50 ms, for 20 s unless told. */
const waitFor = (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000) => poll(what, fn, timeoutMs, 50);

const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const copyDir = (from: string, to: string) => fs.mkdir(path.dirname(to), { recursive: true }).then(() => fs.cp(from, to, { recursive: true }));

describe('git strategy lifecycle', () => {
  test('restart: the mirror is discovered and served warm; dot-directories are skipped or cleaned; disallowed hosts are never contacted', async () => {
    const state = path.join(work, 'state');
    await fs.mkdir(state);
    const git0 = { 'plain-http-hosts': [upstream.hostPort] };
    const clone = { 'ref-check-interval': 3_600_000 };
    await upstream.createRepo('org/restart.git', { files: 6, branches: ['dev'] });

    const first = await startGitStrategy({ stateDir: state, git: git0, clone });
    const mirror = path.join(state, 'git-mirrors', upstream.hostPort, 'org', 'restart.git');
    try {
      await gitClient(['clone', '-q', `${first.url}/git/${upstream.hostPort}/org/restart.git`, path.join(work, 'restart-cold')]);
      await waitFor('mirror', () => exists(path.join(mirror, 'HEAD')));
    } finally {
      await first.close();
    }

    // Debris a crash could leave: scratch clones and other dot-directories that contain a HEAD file.
    const root = path.join(state, 'git-mirrors');
    await copyDir(mirror, path.join(root, '.scratch', 'clone-dead', 'repo.git'));
    await copyDir(mirror, path.join(root, upstream.hostPort, 'org', '.restore-123', 'repo.git'));
    await copyDir(mirror, path.join(root, '.snapshot-stream-1', 'repo', '.git'));

    const second = await startGitStrategy({ stateDir: state, git: git0, clone });
    try {
      assert.equal(second.strategy.ready?.(), true);
      assert.equal(second.logs.find((l) => l['msg'] === 'discovered mirrors')?.['mirrors'], 1);
      assert.equal(second.strategy.repositoryCount, 1);
      assert.equal(await exists(path.join(root, '.scratch', 'clone-dead')), false, 'scratch space is cleaned at start');
      await waitFor('startup fetch', () => second.logs.some((l) => l['job'] === 'startup-fetch' && l['msg'] === 'job done'));
      const startupFetches = upstream.requests.filter((r) => r.method === 'GET' && (r.userAgent ?? '').startsWith('git/'));
      assert.ok(startupFetches.length >= 1);

      const at = upstream.requests.length;
      await gitClient(['clone', '-q', `${second.url}/git/${upstream.hostPort}/org/restart`, path.join(work, 'restart-warm')]);
      assert.equal(git(['rev-parse', 'HEAD'], path.join(work, 'restart-warm')), git(['rev-parse', 'HEAD'], mirror));
      assert.deepEqual(upstream.requests.slice(at), [], 'the warm clone was served by the discovered mirror');
    } finally {
      await second.close();
    }

    // allowed-hosts no longer names the mirror's host: it is neither registered nor fetched.
    const at = upstream.requests.length;
    const third = await startGitStrategy({ stateDir: state, git: { ...git0, 'allowed-hosts': ['elsewhere.example'] }, clone });
    try {
      const res = await fetch(`${third.url}/git/${upstream.hostPort}/org/restart/info/refs?service=git-upload-pack`);
      assert.equal(res.status, 403);
      await res.text();
      await new Promise((r) => setTimeout(r, 1000));
      assert.deepEqual(upstream.requests.slice(at), [], 'the disallowed host was never contacted');
      assert.ok(third.logs.some((l) => l['msg'] === 'ignoring a mirror whose host is not in allowed-hosts' && l['host'] === upstream.hostPort));
      assert.equal(third.strategy.repositoryCount, 0);
    } finally {
      await third.close();
    }
  });

  test('records of repositories whose clone failed are dropped, so a scan of junk paths cannot grow memory', async () => {
    const h = await startGitStrategy({ git: { 'plain-http-hosts': [upstream.hostPort] }, clone: { 'ref-check-interval': 3_600_000 } });
    try {
      const junk = Array.from({ length: 20 }, (_, i) => `scan/junk-${i}`);
      for (const name of junk) {
        const res = await fetch(`${h.url}/git/${upstream.hostPort}/${name}/info/refs?service=git-upload-pack`);
        assert.equal(res.status, 404);
        await res.text();
      }
      const attempted = () => new Set(upstream.requests.filter((r) => r.path.includes('/scan/junk-') && (r.userAgent ?? '').startsWith('git/')).map((r) => r.path)).size;
      await waitFor('every clone attempted', () => attempted() === junk.length);
      await waitFor('failed records dropped', () => h.strategy.repositoryCount === 0);

      // A real repository keeps its record once Ready.
      await upstream.createRepo('scan/real.git', { files: 2 });
      const res = await fetch(`${h.url}/git/${upstream.hostPort}/scan/real/info/refs?service=git-upload-pack`);
      await res.text();
      await waitFor('mirror', () => exists(path.join(h.stateDir, 'git-mirrors', upstream.hostPort, 'scan', 'real.git', 'HEAD')));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(h.strategy.repositoryCount, 1);
    } finally {
      await h.close();
    }
  });

  test('the strategy itself refuses literal dot segments in the repository and the forwarded tail', async () => {
    // No server in front here, so nothing normalises or refuses the path before the strategy.
    const h = await startGitStrategy({ git: { 'plain-http-hosts': [upstream.hostPort] } });
    try {
      const at = upstream.requests.length;
      const { port } = new URL(h.url);
      for (const raw of [`/git/${upstream.hostPort}/org/../../etc/info/refs?service=git-upload-pack`, `/git/${upstream.hostPort}/org/r.git/../../admin/x`, `/git/${upstream.hostPort}/org/r.git/./x`]) {
        const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
          http
            .get({ host: '127.0.0.1', port, path: raw }, (res) => {
              let body = '';
              res.on('data', (c: Buffer) => (body += c.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, text: body }));
            })
            .on('error', reject);
        });
        assert.equal(status, 400, raw);
        assert.match(text, /^bad git path: relative path segment/, raw);
      }
      assert.deepEqual(upstream.requests.slice(at), []);
    } finally {
      await h.close();
    }
  });
});
