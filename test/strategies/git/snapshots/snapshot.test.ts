import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { gitRestore, NoSnapshotError } from '../../../../src/client/git-restore.js';
import { artifactKey } from '../../../../src/strategies/git/artifacts.js';
import { gitAsync } from '../../../fixtures/git-client.js';
import { gitHoardHcl } from '../../../fixtures/git-hoard.js';
import { startGitUpstream, git, type GitUpstream } from '../../../fixtures/git-upstream.js';
import { startTestServer, type TestServer } from '../../../fixtures/server.js';

const run = promisify(execFile);
let upstream: GitUpstream;
let hoard: TestServer;
let work: string;
const logs: Array<Record<string, unknown>> = [];
/** Short, so a test can wait it out: the warm snapshot path checks upstream at most this often. */
const REF_CHECK_MS = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** On-demand generations hoard started for `repo` (it logs one line per generation). */
const generations = (repo: string) => logs.filter((l) => l['msg'] === 'generating snapshot on demand' && l['upstream'] === upstreamUrl(repo)).length;
const upstreamHits = (repo: string) => upstream.requests.filter((r) => r.path.includes(`/${repo}`)).length;
const mirrorDir = (repo: string) => path.join(hoard.stateDir, 'git-mirrors', upstream.hostPort, `${repo}.git`);

const exists = (p: string) => fs.stat(p).then(() => true, () => false);
const snap = (repo: string) => `${hoard.url}/git/${upstream.hostPort}/${repo}/snapshot.tar.zst`;
const upstreamUrl = (repo: string) => `http://${upstream.hostPort}/${repo}`;

/**
 * `pzstd` and `zstd` ahead of the real ones on PATH. They pass straight through, except that while
 * HOARD_TEST_COMPRESS_FAIL is set a compression emits its first 256 KiB, drains its input (so tar
 * finishes cleanly), then fails: a generation that breaks after the response has started.
 */
async function installCompressorShims(dir: string): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  for (const tool of ['pzstd', 'zstd']) {
    const real = (await run('sh', ['-c', `command -v ${tool}`]).catch(() => ({ stdout: '' }))).stdout.trim();
    if (!real) continue;
    const script = `#!/bin/sh
case " $* " in *" -d "*) exec ${real} "$@" ;; esac
if [ -n "$HOARD_TEST_COMPRESS_FAIL" ]; then
  ${real} "$@" | head -c 262144
  cat > /dev/null
  sleep 1
  exit 1
fi
exec ${real} "$@"
`;
    await fs.writeFile(path.join(dir, tool), script, { mode: 0o755 });
  }
  process.env['PATH'] = `${dir}${path.delimiter}${process.env['PATH'] ?? ''}`;
}

before(async () => {
  upstream = await startGitUpstream();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-snap-'));
  await installCompressorShims(path.join(work, 'bin'));
  hoard = await startTestServer({
    logs,
    hcl: gitHoardHcl(upstream.hostPort, { clone: `ref-check-interval = "${REF_CHECK_MS}ms"`, git: 'zstd-threads = 2' }),
  });
  await upstream.createRepo('org/app.git', { files: 40, branches: ['develop', 'release'] });
});
after(async () => {
  await hoard.close();
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
});

/** Forwards to hoard and records the Range header of every snapshot request it relays. */
async function countingProxy(target: string): Promise<{ url: string; ranges: string[]; close(): Promise<void> }> {
  const ranges: string[] = [];
  const server = http.createServer((req, res) => {
    if ((req.url ?? '').includes('/snapshot.tar.zst')) ranges.push(req.headers.range ?? '');
    const forward = http.request(`${target}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.once('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ranges,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Makes hoard clone `repo` (ensure-refs waits for Ready). */
async function makeReady(repo: string): Promise<void> {
  const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/${repo}/ensure-refs`, { method: 'POST', body: '{"refs":{"refs/heads/main":""}}' });
  assert.equal(res.status, 200, await res.text());
}

async function cliRestore(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--url', hoard.url, '--quiet', 'git', 'restore', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stderr };
}

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
      await sleep(100);
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
    assert.equal(generations('org/app'), 1);
  });

  test('ranges, conditionals and HEAD on the cached snapshot', async () => {
    const full = await fetch(snap('org/app'));
    const etag = full.headers.get('etag') ?? '';
    const size = Number(full.headers.get('content-length'));
    const whole = Buffer.from(await full.arrayBuffer());
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

    // If-Range: the range applies only while the validator still names this object.
    const sameRange = await fetch(snap('org/app'), { headers: { range: 'bytes=5-9', 'if-range': etag } });
    assert.equal(sameRange.status, 206);
    assert.ok(Buffer.from(await sameRange.arrayBuffer()).equals(whole.subarray(5, 10)));
    const otherRange = await fetch(snap('org/app'), { headers: { range: 'bytes=5-9', 'if-range': '"an-older-upload"' } });
    assert.equal(otherRange.status, 200);
    assert.ok(Buffer.from(await otherRange.arrayBuffer()).equals(whole), 'a changed object comes whole');
    // If-Match naming the current ETag: served (whole, or the range).
    const matching = await fetch(snap('org/app'), { headers: { 'if-match': etag } });
    assert.equal(matching.status, 200);
    assert.ok(Buffer.from(await matching.arrayBuffer()).equals(whole));
    const matchingRange = await fetch(snap('org/app'), { headers: { 'if-match': etag, range: 'bytes=0-9' } });
    assert.equal(matchingRange.status, 206);
    assert.ok(Buffer.from(await matchingRange.arrayBuffer()).equals(whole.subarray(0, 10)));

    const head = await fetch(snap('org/app'), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('etag'), etag);
    assert.equal(Number(head.headers.get('content-length')), size);
    assert.equal(await head.text(), '');
    assert.equal((await fetch(snap('org/app'), { method: 'HEAD', headers: { 'if-none-match': etag } })).status, 304);
    assert.equal((await fetch(snap('org/app'), { method: 'HEAD', headers: { 'if-match': '"stale"' } })).status, 412);
    const unknown = await fetch(snap('org/never-seen'), { method: 'HEAD' });
    assert.equal(unknown.status, 404);
    assert.equal(await unknown.text(), '', 'HEAD never carries a body');
    assert.equal((await fetch(snap('org/app'), { method: 'POST' })).status, 405);
  });

  test('HEAD and If-Match on a miss never start a generation (nor a clone)', async () => {
    await upstream.createRepo('org/quiet.git', { files: 5 });
    // Cold: never seen, so no mirror either. Neither request may reach upstream.
    const coldHead = await fetch(snap('org/quiet'), { method: 'HEAD' });
    assert.equal(coldHead.status, 404);
    const coldIfMatch = await fetch(snap('org/quiet'), { headers: { 'if-match': '"some-old-etag"' } });
    assert.equal(coldIfMatch.status, 412);
    await coldIfMatch.text();
    assert.equal(upstreamHits('org/quiet'), 0, 'no clone was started');
    // Ready mirror, no snapshot: still nothing is generated.
    await makeReady('org/quiet');
    assert.equal((await fetch(snap('org/quiet'), { method: 'HEAD' })).status, 404);
    const warmIfMatch = await fetch(snap('org/quiet'), { headers: { 'if-match': '"some-old-etag"' } });
    assert.equal(warmIfMatch.status, 412);
    await warmIfMatch.text();
    await sleep(500);
    assert.equal((await fetch(snap('org/quiet'), { method: 'HEAD' })).status, 404, 'nothing was cached');
    assert.equal(generations('org/quiet'), 0);
  });

  test('concurrent misses follow one generation', async () => {
    const bodies = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const res = await fetch(snap('org/quiet'));
        assert.equal(res.status, 200);
        return Buffer.from(await res.arrayBuffer());
      }),
    );
    for (const body of bodies) assert.ok(body.equals(bodies[0] as Buffer), 'every caller got the same bytes');
    assert.equal(generations('org/quiet'), 1);
  });

  test('hoard git restore equals a fresh clone (tree, HEAD, branches, remote URL, clean status), in many ranged requests', async () => {
    const proxy = await countingProxy(hoard.url);
    try {
      const restored = path.join(work, 'restored');
      const result = await gitRestore({ server: proxy.url, repoUrl: upstreamUrl('org/app.git'), dir: restored, concurrency: 4, chunkBytes: 4 * 1024 });
      const size = Number((await fetch(snap('org/app'), { method: 'HEAD' })).headers.get('content-length'));
      const ranged = proxy.ranges.filter((r) => r.startsWith('bytes='));
      assert.ok(size > 3 * 4096, `the snapshot spans several chunks (${size} bytes)`);
      assert.ok(ranged.length >= Math.ceil(size / 4096), `one ranged GET per 4 KiB chunk: ${JSON.stringify(proxy.ranges)}`);
      assert.equal(ranged.length, proxy.ranges.length, 'every snapshot request was ranged');
      const fresh = path.join(work, 'fresh');
      await gitAsync(['clone', '-q', upstreamUrl('org/app.git'), fresh]);
      assert.equal(result.head, await gitAsync(['rev-parse', 'HEAD'], fresh));
      assert.equal(await gitAsync(['rev-parse', 'HEAD^{tree}'], restored), await gitAsync(['rev-parse', 'HEAD^{tree}'], fresh));
      assert.equal(await gitAsync(['status', '--porcelain'], restored), '');
      assert.equal(await gitAsync(['remote', 'get-url', 'origin'], restored), upstreamUrl('org/app'));
      const branches = await gitAsync(['branch', '-r'], restored);
      for (const b of ['origin/main', 'origin/develop', 'origin/release']) assert.match(branches, new RegExp(b));
      assert.deepEqual((await fs.readdir(work)).filter((n) => n.startsWith('.hoard-restore-')), []);
    } finally {
      await proxy.close();
    }
  });

  test('after new upstream commits, restore lands on the new HEAD through the delta bundle (no ensure-refs first)', async () => {
    const before = git(['rev-parse', 'HEAD'], mirrorDir('org/app'));
    const newer = await upstream.commit('org/app.git', 'after the snapshot');
    // Nothing has fetched: the mirror and the snapshot still hold the old HEAD. Wait out the
    // ref-check interval so the next snapshot request is allowed to ask upstream.
    await sleep(REF_CHECK_MS + 200);
    assert.equal(git(['rev-parse', 'HEAD'], mirrorDir('org/app')), before);
    const restored = path.join(work, 'restored-newer');
    const result = await gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/app'), dir: restored, chunkBytes: 8 * 1024 });
    assert.equal(result.snapshotCommit, before, 'the cached snapshot was not regenerated');
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

  test('bundle endpoint: 204 only after a fetch verified upstream; an advanced upstream gets a bundle', async () => {
    const bundle = (base: string) => fetch(`${hoard.url}/git/${upstream.hostPort}/org/app/snapshot.bundle?base=${base}`);
    const head = git(['rev-parse', 'HEAD'], mirrorDir('org/app'));
    const seen = upstreamHits('org/app');
    const unchanged = await bundle(head);
    assert.equal(unchanged.status, 204);
    assert.ok(upstreamHits('org/app') > seen, 'the 204 was backed by a fetch from upstream');
    // Upstream moves on; the mirror does not know yet (and its last fetch is recent).
    const advanced = await upstream.commit('org/app.git', 'moved on after the 204');
    assert.equal(git(['rev-parse', 'HEAD'], mirrorDir('org/app')), head);
    const delta = await bundle(head);
    assert.equal(delta.status, 200, 'the verifying fetch found the new commit: not up to date');
    const file = path.join(work, 'advanced.bundle');
    await fs.writeFile(file, Buffer.from(await delta.arrayBuffer()));
    assert.match(await gitAsync(['bundle', 'list-heads', file]), new RegExp(`^${advanced} `));
    assert.equal((await bundle(advanced)).status, 204);
  });

  test('HEAD on a bundle miss answers 404 without producing a bundle', async () => {
    // A base no earlier test asked a bundle for: two fresh commits, fetched into the mirror.
    const base = await upstream.commit('org/app.git', 'bundle base for HEAD');
    const tip = await upstream.commit('org/app.git', 'bundle tip for HEAD');
    const ensured = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/app/ensure-refs`, { method: 'POST', body: JSON.stringify({ refs: { 'refs/heads/main': tip } }) });
    assert.equal(ensured.status, 200);
    await ensured.text();
    const url = `${hoard.url}/git/${upstream.hostPort}/org/app/snapshot.bundle?base=${base}`;
    const seen = upstreamHits('org/app');
    const first = await fetch(url, { method: 'HEAD' });
    assert.equal(first.status, 404);
    assert.equal((await fetch(url, { method: 'HEAD' })).status, 404, 'nothing was cached by the first HEAD');
    assert.equal(upstreamHits('org/app'), seen, 'no freshening fetch either');
    const got = await fetch(url);
    assert.equal(got.status, 200, 'a GET still produces it');
    await got.arrayBuffer();
    assert.equal((await fetch(url, { method: 'HEAD' })).status, 200);
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

  test('a generation that fails before any byte answers 500 and caches nothing', async () => {
    await upstream.createRepo('org/broken.git', { files: 3 });
    await makeReady('org/broken');
    const mirror = mirrorDir('org/broken');
    await fs.rm(path.join(mirror, 'objects'), { recursive: true, force: true });
    await fs.mkdir(path.join(mirror, 'objects'));
    const res = await fetch(snap('org/broken'));
    assert.equal(res.status, 500);
    assert.match(await res.text(), /snapshot generation failed/);
    const head = await fetch(snap('org/broken'), { method: 'HEAD' });
    assert.equal(head.status, 404);
  });

  test('a generation that fails mid-stream aborts the response visibly and caches nothing', async () => {
    const tree = await upstream.createRepo('org/midfail.git', { files: 3 });
    // Incompressible content, so the archive is well past what the failing compressor lets out.
    await fs.writeFile(path.join(tree, 'blob.bin'), randomBytes(2 << 20));
    await upstream.commit('org/midfail.git', 'a big blob');
    await makeReady('org/midfail');
    process.env['HOARD_TEST_COMPRESS_FAIL'] = '1';
    let status = 0;
    let received = 0;
    let outcome: string;
    try {
      const res = await fetch(snap('org/midfail'));
      status = res.status;
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) received += chunk.length;
        outcome = 'ended cleanly';
      } catch (err) {
        outcome = `aborted: ${(err as Error).message}`;
      }
    } finally {
      delete process.env['HOARD_TEST_COMPRESS_FAIL'];
    }
    assert.equal(status, 200, 'the response had started');
    assert.ok(received >= 1, 'bytes were streamed before the failure');
    assert.match(outcome, /^aborted/, `the client must see the failure, not a clean end (${received} bytes)`);
    await sleep(500);
    assert.equal((await fetch(snap('org/midfail'), { method: 'HEAD' })).status, 404, 'the broken archive was not cached');
    // The next request generates afresh and succeeds.
    const retry = await fetch(snap('org/midfail'));
    assert.equal(retry.status, 200);
    assert.ok((await retry.arrayBuffer()).byteLength > 2 << 20);
  });

  test('LFS snapshot: a cached one is served with ranges; a miss answers 404 at once and warms the mirror without hanging it', async () => {
    await upstream.createRepo('org/lfs.git', { files: 4 });
    const lfsUrl = `${hoard.url}/git/${upstream.hostPort}/org/lfs/lfs-snapshot.tar.zst`;
    const started = Date.now();
    const miss = await fetch(lfsUrl);
    assert.equal(miss.status, 404);
    assert.match(await miss.text(), /LFS snapshot not found/);
    assert.ok(Date.now() - started < 5_000, 'the miss never waits for the clone');
    // The warm-up clone must finish: a repository stuck Cloning would never get a mirror.
    const deadline = Date.now() + 30_000;
    while (!(await exists(path.join(mirrorDir('org/lfs'), 'HEAD')))) {
      assert.ok(Date.now() < deadline, 'the warm-up clone finished');
      await sleep(100);
    }
    const snapshot = await fetch(snap('org/lfs'), { signal: AbortSignal.timeout(20_000) });
    assert.equal(snapshot.status, 200);
    await snapshot.arrayBuffer();
    await gitAsync(['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/org/lfs.git`, path.join(work, 'lfs-clone')]);

    // Hit: whatever the periodic LFS job stored is served, with ranges and validators.
    const content = randomBytes(10_000);
    const stored = await fetch(`${hoard.url}/api/v1/object/git/${artifactKey(upstreamUrl('org/lfs'), 'lfs-snapshot')}`, { method: 'POST', body: content, headers: { 'content-type': 'application/zstd' } });
    assert.ok(stored.status < 300, `upload: ${stored.status}`);
    const hit = await fetch(lfsUrl);
    assert.equal(hit.status, 200);
    assert.ok(Buffer.from(await hit.arrayBuffer()).equals(content));
    const etag = hit.headers.get('etag') ?? '';
    assert.ok(etag);
    const part = await fetch(lfsUrl, { headers: { range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(content.subarray(100, 200)));
    assert.equal((await fetch(lfsUrl, { headers: { 'if-none-match': etag } })).status, 304);
    const head = await fetch(lfsUrl, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), content.length);
  });

  test('CLI: hoard git restore exits 2 exactly when there is no snapshot (against a git-enabled server)', async () => {
    // Nothing cached and nothing to clone: no snapshot can exist, so 404 and exit 2.
    const none = await fetch(snap('org/none'));
    assert.equal(none.status, 404);
    await none.text();
    const missing = await cliRestore([upstreamUrl('org/none'), path.join(work, 'none')]);
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, new RegExp(`No snapshot for ${upstreamUrl('org/none').replace(/[.]/g, '\\.')}`));
    await assert.rejects(gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/none'), dir: path.join(work, 'none2') }), NoSnapshotError);
    // A server failure is an error, not a miss.
    const failing = await cliRestore([upstreamUrl('org/broken'), path.join(work, 'broken-cli')]);
    assert.equal(failing.code, 1, failing.stderr);
    assert.equal(await exists(path.join(work, 'broken-cli')), false);
    // And a repository with a snapshot restores (exit 0).
    const ok = await cliRestore([upstreamUrl('org/app'), path.join(work, 'cli-ok')]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});
