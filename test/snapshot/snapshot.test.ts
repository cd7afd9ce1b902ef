import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gitRestore, NoSnapshotError } from '../../src/client/git-restore.js';
import { startGitUpstream, git, gitClientEnv, type GitUpstream } from '../fixtures/git-upstream.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const run = promisify(execFile);
let upstream: GitUpstream;
let hoard: TestServer;
let work: string;

const gitAsync = async (args: string[], cwd?: string) => (await run('git', args, { cwd, env: gitClientEnv, maxBuffer: 1 << 26 })).stdout.trim();
const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const snap = (repo: string) => `${hoard.url}/git/${upstream.hostPort}/${repo}/snapshot.tar.zst`;
const upstreamUrl = (repo: string) => `http://${upstream.hostPort}/${repo}`;

before(async () => {
  upstream = await startGitUpstream();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-snap-'));
  hoard = await startTestServer({
    hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { ref-check-interval = "1h" }
strategy git {
  plain-http-hosts = ["${upstream.hostPort}"]
  zstd-threads = 2
}
`,
  });
  await upstream.createRepo('org/app.git', { files: 40, branches: ['develop', 'release'] });
});
after(async () => {
  await hoard.close();
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
});

describe('snapshots', () => {
  test('a miss is generated on demand and streamed; then served from cache with ETag, length and commit', async () => {
    const first = await fetch(snap('org/app'));
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('content-type'), 'application/zstd');
    const bytes = Buffer.from(await first.arrayBuffer());
    assert.ok(bytes.length > 100);
    const head = git(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', 'org/app.git'));
    assert.equal(first.headers.get('x-cachew-snapshot-commit'), head);

    let cached: Response | undefined;
    for (let i = 0; i < 50; i++) {
      cached = await fetch(snap('org/app'), { method: 'HEAD' });
      if (cached.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(cached?.status, 200);
    const warm = await fetch(snap('org/app'));
    assert.equal(warm.status, 200);
    assert.ok(warm.headers.get('etag'));
    assert.equal(warm.headers.get('x-cachew-snapshot-commit'), head);
    assert.equal(warm.headers.get('x-cachew-bundle-url'), null);
    assert.equal(warm.headers.get('accept-ranges'), 'bytes');
    const warmBytes = Buffer.from(await warm.arrayBuffer());
    assert.equal(Number(warm.headers.get('content-length')), warmBytes.length);
    assert.ok(warmBytes.equals(bytes), 'the cached object is exactly what was streamed');
  });

  test('ranges, conditionals and HEAD on the cached snapshot', async () => {
    const full = await fetch(snap('org/app'));
    const etag = full.headers.get('etag') ?? '';
    const size = Number(full.headers.get('content-length'));
    await full.arrayBuffer();
    const part = await fetch(snap('org/app'), { headers: { range: 'bytes=0-3' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 0-3/${size}`);
    assert.ok(part.headers.get('x-cachew-snapshot-commit'));
    // A zstd frame, or the skippable frame pzstd puts before each of its parallel frames.
    const magic = Buffer.from(await part.arrayBuffer()).readUInt32LE(0);
    assert.ok(magic === 0xfd2fb528 || (magic & 0xfffffff0) === 0x184d2a50, `zstd magic, got ${magic.toString(16)}`);
    assert.equal((await fetch(snap('org/app'), { headers: { 'if-none-match': etag } })).status, 304);
    assert.equal((await fetch(snap('org/app'), { headers: { 'if-none-match': etag, range: 'bytes=0-3' } })).status, 304);
    assert.equal((await fetch(snap('org/app'), { headers: { 'if-match': '"stale"', range: `bytes=${size + 10}-` } })).status, 412);
    const unsat = await fetch(snap('org/app'), { headers: { range: `bytes=${size}-` } });
    assert.equal(unsat.status, 416);
    assert.equal(unsat.headers.get('content-range'), `bytes */${size}`);
    await unsat.text();
    const head = await fetch(snap('org/app'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const unknown = await fetch(snap('org/never-seen'), { method: 'HEAD' });
    assert.equal(unknown.status, 404);
    assert.equal(await unknown.text(), '', 'HEAD never carries a body');
    assert.equal((await fetch(snap('org/app'), { method: 'POST' })).status, 405);
  });

  test('hoard git restore equals a fresh clone (tree, HEAD, branches, remote URL, clean status)', async () => {
    const restored = path.join(work, 'restored');
    const result = await gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/app.git'), dir: restored, concurrency: 4, chunkBytes: 64 * 1024 });
    const fresh = path.join(work, 'fresh');
    await gitAsync(['clone', '-q', upstreamUrl('org/app.git'), fresh]);
    assert.equal(result.head, await gitAsync(['rev-parse', 'HEAD'], fresh));
    assert.equal(await gitAsync(['rev-parse', 'HEAD^{tree}'], restored), await gitAsync(['rev-parse', 'HEAD^{tree}'], fresh));
    assert.equal(await gitAsync(['status', '--porcelain'], restored), '');
    assert.equal(await gitAsync(['remote', 'get-url', 'origin'], restored), upstreamUrl('org/app'));
    const branches = await gitAsync(['branch', '-r'], restored);
    for (const b of ['origin/main', 'origin/develop', 'origin/release']) assert.match(branches, new RegExp(b));
    assert.deepEqual((await fs.readdir(work)).filter((n) => n.startsWith('.hoard-restore-')), []);
  });

  test('after new upstream commits, restore lands on the new HEAD through the delta bundle', async () => {
    const newer = await upstream.commit('org/app.git', 'after the snapshot');
    const ensure = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/app/ensure-refs`, { method: 'POST', body: JSON.stringify({ refs: { 'refs/heads/main': newer } }) });
    assert.equal(ensure.status, 200);
    const answer = (await ensure.json()) as { refs: Record<string, string>; fetched: boolean; missing_commits: string[] };
    assert.deepEqual(answer, { refs: { 'refs/heads/main': newer }, missing_commits: [], fetched: true });
    const again = (await (await fetch(`${hoard.url}/git/${upstream.hostPort}/org/app/ensure-refs`, { method: 'POST', body: JSON.stringify({ refs: { 'refs/heads/main': '' } }) })).json()) as { fetched: boolean };
    assert.equal(again.fetched, false);

    const warm = await fetch(snap('org/app'), { method: 'GET', headers: { range: 'bytes=0-0' } });
    await warm.arrayBuffer();
    const bundleUrl = warm.headers.get('x-cachew-bundle-url') ?? '';
    assert.match(bundleUrl, new RegExp(`^/git/${upstream.hostPort}/org/app/snapshot.bundle\\?base=[0-9a-f]{40}$`));

    const restored = path.join(work, 'restored-newer');
    const result = await gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/app'), dir: restored });
    assert.equal(result.bundle, 'applied');
    assert.equal(result.head, newer);
    assert.equal(await gitAsync(['rev-parse', 'origin/main'], restored), newer);
    assert.equal(await gitAsync(['status', '--porcelain', '--branch'], restored), '## main...origin/main');
  });

  test('restore with --commit (no bundle) makes sure the commit exists via ensure-refs', async () => {
    const newest = await upstream.commit('org/app.git', 'wanted by CI');
    const restored = path.join(work, 'restored-commit');
    const result = await gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/app'), dir: restored, noBundle: true, commits: [newest], refs: { 'refs/heads/main': '' } });
    assert.equal(result.bundle, 'skipped');
    assert.equal(result.fetchedRefs, true);
    assert.equal(result.head, newest);
    assert.equal(await gitAsync(['cat-file', '-t', newest], restored), 'commit');
    assert.equal(await gitAsync(['status', '--porcelain'], restored), '');
    await assert.rejects(
      gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/app'), dir: path.join(work, 'restored-bad'), commits: ['f'.repeat(40)] }),
      /missing 1 commit/,
    );
    assert.equal(await exists(path.join(work, 'restored-bad')), false, 'a failed restore leaves no target');
  });

  test('bundle endpoint: 400 bad base, 404 unknown base, 204 up to date, 200 bundle', async () => {
    const bundle = (base: string) => fetch(`${hoard.url}/git/${upstream.hostPort}/org/app/snapshot.bundle?base=${base}`);
    const bad = await bundle('not-a-sha');
    assert.equal(bad.status, 400);
    await bad.text();
    const unknown = await bundle('0'.repeat(40));
    assert.equal(unknown.status, 404);
    await unknown.text();
    const head = git(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', 'org/app.git'));
    const upToDate = await bundle(head);
    assert.equal(upToDate.status, 204);
    const parent = git(['rev-parse', 'HEAD~1'], path.join(upstream.root, 'repos', 'org/app.git'));
    const delta = await bundle(parent);
    assert.equal(delta.status, 200);
    assert.equal(delta.headers.get('content-type'), 'application/x-git-bundle');
    assert.match(Buffer.from(await delta.arrayBuffer()).subarray(0, 16).toString(), /^# v[23] git bundle/);
  });

  test('ensure-refs rejects bad input precisely', async () => {
    const url = `${hoard.url}/git/${upstream.hostPort}/org/app/ensure-refs`;
    assert.equal((await fetch(url)).status, 405);
    const cases: Array<[string, RegExp]> = [
      ['not json', /invalid request body/],
      ['{}', /at least one of refs or commits must be provided/],
      ['{"commits":["-x"]}', /invalid commit SHA/],
      ['{"refs":{"refs/heads/../x":""}}', /invalid ref name/],
      ['{"refs":{"refs/heads/main":"zzz"}}', /invalid SHA/],
    ];
    for (const [body, message] of cases) {
      const res = await fetch(url, { method: 'POST', body });
      assert.equal(res.status, 400, body);
      assert.match(await res.text(), message);
    }
  });

  test('concurrent restores all succeed', async () => {
    const dirs = [1, 2, 3].map((i) => path.join(work, `parallel-${i}`));
    const results = await Promise.all(dirs.map((dir) => gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/app'), dir, chunkBytes: 32 * 1024 })));
    for (const r of results) assert.equal(r.head, results[0]?.head);
  });

  test('a corrupted or truncated download fails and leaves no target', async () => {
    const good = Buffer.from(await (await fetch(snap('org/app'))).arrayBuffer());
    for (const mode of ['corrupt', 'truncate']) {
      const server = http.createServer((req, res) => {
        const body = mode === 'corrupt' ? Buffer.concat([good.subarray(0, 100), Buffer.alloc(good.length - 100, 0x41)]) : good.subarray(0, good.length >> 1);
        res.writeHead(200, { 'content-type': 'application/zstd', ...(mode === 'corrupt' ? { 'content-length': body.length } : {}) });
        if (mode === 'truncate') {
          res.write(body);
          setTimeout(() => res.destroy(), 20);
        } else res.end(body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const target = path.join(work, `broken-${mode}`);
      try {
        await assert.rejects(gitRestore({ server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, repoUrl: 'https://example.com/org/app', dir: target, concurrency: 1 }), /restore snapshot/);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
      assert.equal(await exists(target), false, `${mode}: target must not exist`);
      assert.deepEqual((await fs.readdir(work)).filter((n) => n.startsWith('.hoard-restore-')), []);
    }
  });

  test('a failed generation fails visibly and caches nothing', async () => {
    await upstream.createRepo('org/broken.git', { files: 3 });
    const ensure = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/broken/ensure-refs`, { method: 'POST', body: '{"refs":{"refs/heads/main":""}}' });
    assert.equal(ensure.status, 200);
    await ensure.text();
    const mirror = path.join(hoard.stateDir, 'git-mirrors', upstream.hostPort, 'org', 'broken.git');
    await fs.rm(path.join(mirror, 'objects'), { recursive: true, force: true });
    await fs.mkdir(path.join(mirror, 'objects'));
    const res = await fetch(snap('org/broken'));
    assert.equal(res.status, 500);
    assert.match(await res.text(), /snapshot generation failed/);
    const head = await fetch(snap('org/broken'), { method: 'HEAD' });
    assert.equal(head.status, 404);
  });

  test('CLI: hoard git restore exits 2 when the server has no snapshot', async () => {
    const plain = await startTestServer();
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--url', plain.url, 'git', 'restore', 'https://example.com/org/none', path.join(work, 'none')], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 2, stderr);
      assert.match(stderr, /No snapshot for https:\/\/example\.com\/org\/none/);
      await assert.rejects(gitRestore({ server: plain.url, repoUrl: 'example.com/org/none', dir: path.join(work, 'none2') }), NoSnapshotError);
    } finally {
      await plain.close();
    }
  });
});
