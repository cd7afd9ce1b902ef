/**
 * The artifact routes on their own (cold serves, mirror restore), over an instrumented in-memory cache: the cold path (direct ranged
 * and conditional serves beside a running spool, one read per burst, the restore's wait for every
 * cold serve) and the mirror-snapshot restore's corruption verdicts. Faults are injected at the
 * cache, so each case is deterministic.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import type { Cache, CacheStats, CacheWriter, CreateOptions, OpenResult, StatResult } from '../../../../src/cache/cache.js';
import type { Conditions, ReadConditions } from '../../../../src/cache/conditional.js';
import type { CacheKey } from '../../../../src/cache/key.js';
import type { StoredHeaders } from '../../../../src/cache/headers.js';
import { createMemoryCache } from '../../../../src/cache/memory.js';
import { Repository, type RepoSettings } from '../../../../src/strategies/git/repository.js';
import { artifactKey } from '../../../../src/strategies/git/artifacts.js';
import { BundleService } from '../../../../src/strategies/git/bundles.js';
import { ColdServeActivity } from '../../../../src/strategies/git/cold-activity.js';
import { ColdServes } from '../../../../src/strategies/git/cold-serve.js';
import { SnapshotGenerator } from '../../../../src/strategies/git/generate.js';
import { CorruptMirrorSnapshotError, MirrorRestorer } from '../../../../src/strategies/git/mirror-restore.js';
import { ArtifactRoutes } from '../../../../src/strategies/git/snapshot-routes.js';
import { testRepoSettings } from '../../../fixtures/repo-settings.js';

const GIT_ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How the instrumented cache answers a whole-object open. */
type OpenFault = { kind: 'stall'; release: Promise<void> } | { kind: 'error-after'; bytes: number };

/**
 * A memory cache that records every open and can stall or break whole-object reads (the reads a
 * spool or a restore makes); ranged and conditional opens always pass straight through.
 */
class ProbeCache implements Cache {
  readonly ns: string;
  readonly opens: Array<{ key: string; cond: ReadConditions }> = [];
  fault: OpenFault | undefined;

  constructor(private readonly inner: Cache) {
    this.ns = inner.ns;
  }

  namespace(): Cache {
    return this;
  }

  stat(key: CacheKey, cond?: Conditions): Promise<StatResult> {
    return this.inner.stat(key, cond);
  }

  statAuthoritative(key: CacheKey): Promise<StatResult> {
    return this.inner.statAuthoritative(key);
  }

  async open(key: CacheKey, cond: ReadConditions & { signal?: AbortSignal } = {}): Promise<OpenResult> {
    const { signal: _signal, ...plain } = cond;
    this.opens.push({ key, cond: plain });
    const result = await this.inner.open(key, cond);
    const whole = !cond.range && !cond.ifMatch && !cond.ifNoneMatch;
    const fault = this.fault;
    if (!whole || !fault) return result;
    const chunks: Buffer[] = [];
    for await (const chunk of result.body) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    const half = bytes.length >> 1;
    async function* body(): AsyncGenerator<Buffer> {
      if (fault?.kind === 'stall') {
        yield bytes.subarray(0, half);
        await fault.release;
        yield bytes.subarray(half);
      } else if (fault) {
        yield bytes.subarray(0, fault.bytes);
        await sleep(20);
        throw new Error('injected: connection to the shared tier reset');
      }
    }
    return { ...result, body: Readable.from(body(), { objectMode: false }) };
  }

  create(key: CacheKey, headers: StoredHeaders, opts?: CreateOptions): CacheWriter {
    return this.inner.create(key, headers, opts);
  }

  delete(key: CacheKey): Promise<void> {
    return this.inner.delete(key);
  }

  invalidate(key: CacheKey): Promise<void> {
    return this.inner.invalidate(key);
  }

  stats(): Promise<CacheStats> {
    return this.inner.stats();
  }

  listNamespaces(): Promise<string[]> {
    return this.inner.listNamespaces();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  /** Whole-object opens of `key` so far. */
  wholeOpens(key: string): number {
    return this.opens.filter((o) => o.key === key && !o.cond.range && !o.cond.ifMatch && !o.cond.ifNoneMatch).length;
  }
}

async function put(cache: Cache, key: CacheKey, body: Buffer, headers: StoredHeaders = {}): Promise<void> {
  const writer = cache.create(key, { 'content-type': 'application/zstd', ...headers });
  await new Promise<void>((resolve, reject) => {
    writer.once('error', reject);
    writer.end(body, () => resolve());
  });
}

let work: string;
let cache: ProbeCache;
let service: ArtifactRoutes;
let activity: ColdServeActivity;
let restorer: MirrorRestorer;
let server: http.Server;
let base: string;
let settings: RepoSettings;
const repos = new Map<string, Repository>();
const served: Array<{ url: string; done: Promise<void>; settled: boolean }> = [];

function repoFor(name: string): Repository {
  let repo = repos.get(name);
  if (!repo) {
    repo = new Repository(`https://example.test/${name}`, path.join(work, 'mirrors', `${name}.git`), settings, 'empty');
    repos.set(name, repo);
  }
  return repo;
}

/**
 * GET through the service; resolves with status, headers and the whole body. `onHead` runs when
 * the response head arrives (for a spooled GET: once it streams from the spool it joined).
 */
function get(name: string, headers: Record<string, string> = {}, timeoutMs = 10_000, onHead?: () => void): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}/${name}/snapshot.tar.zst`, { headers, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      onHead?.();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
}

before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-snapsvc-'));
  // A `tar` ahead of the real one on PATH that, only while HOARD_TEST_TAR_FSIZE is set, extracts
  // under a tiny file-size limit (SIGXFSZ ignored, so writes fail with EFBIG like a full disk).
  const bin = path.join(work, 'bin');
  await fs.mkdir(bin);
  const realTar = execFileSync('sh', ['-c', 'command -v tar']).toString().trim();
  await fs.writeFile(
    path.join(bin, 'tar'),
    `#!/bin/sh\nif [ -n "$HOARD_TEST_TAR_FSIZE" ] && [ "$1" = "-xpf" ]; then trap '' XFSZ; ulimit -f 1; fi\nexec ${realTar} "$@"\n`,
    { mode: 0o755 },
  );
  process.env['PATH'] = `${bin}${path.delimiter}${process.env['PATH'] ?? ''}`;
  settings = testRepoSettings(path.join(work, 'mirrors'), { scratchRoot: path.join(work, 'scratch'), gitEnv: GIT_ENV, lsRemoteTimeoutMs: 10_000, refCheckIntervalMs: 10_000 });
  cache = new ProbeCache(createMemoryCache({ limitBytes: 64 << 20, maxTtlMs: 3_600_000 }).namespace('git'));
  const logger = pino({ level: 'silent' });
  activity = new ColdServeActivity(logger);
  restorer = new MirrorRestorer(cache, logger);
  // The parts of the mirror lifecycle the artifact routes use, without an upstream: a cold serve
  // reports itself here with the promise a mirror restore would wait on.
  const mirrors = {
    coldActivity: activity,
    ensureReady: async () => {
      throw new Error('no upstream in this test');
    },
    catchUp: (repo: Repository) => repo.fetch(),
    restoreAfterColdServe: (repo: Repository) => {
      const entry = { url: repo.upstreamURL, done: activity.quiet(repo.upstreamURL), settled: false };
      void entry.done.finally(() => (entry.settled = true));
      served.push(entry);
    },
  };
  const scratchRoot = settings.scratchRoot;
  service = new ArtifactRoutes(
    cache,
    logger,
    mirrors,
    new ColdServes(cache, logger, scratchRoot, mirrors),
    new SnapshotGenerator({ cache, logger, scratchRoot, zstdThreads: 1 }),
    new BundleService({ cache, logger, scratchRoot, bundleTtlMs: 60_000 }, mirrors),
  );
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const [name = '', operation = ''] = url.pathname.slice(1).split('/');
    const parsed = { host: 'example.test', repoPath: name, urlPath: name, operation, rawPath: `${name}/${operation}` };
    service.handle(req, res, repoFor(name), parsed, url.searchParams).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500).end(err.message);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await fs.rm(work, { recursive: true, force: true });
});

describe('cold serves (mirror not Ready)', () => {
  test('ranged and conditional GETs are answered from the cache at once while a plain GET holds the spool', async () => {
    const repo = repoFor('ranged');
    const key = artifactKey(repo.upstreamURL, 'snapshot');
    const snapshot = randomBytes(64 * 1024);
    await put(cache, key, snapshot, { 'x-cachew-snapshot-commit': 'a'.repeat(40) });
    const etag = (await cache.stat(key)).headers['etag'] ?? '';
    let release!: () => void;
    cache.fault = { kind: 'stall', release: new Promise<void>((r) => (release = r)) };
    try {
      const plain = get('ranged', {}, 30_000);
      while (cache.wholeOpens(key) === 0) await sleep(10);
      // Each of these would wait behind the stalled spool (and get the whole body) if it joined it.
      const [part, notModified, failed, ifRangeHit, ifRangeMiss, matching] = await Promise.all([
        get('ranged', { range: 'bytes=0-3' }, 3_000),
        get('ranged', { 'if-none-match': etag }, 3_000),
        get('ranged', { 'if-match': '"something-else"' }, 3_000),
        get('ranged', { range: 'bytes=10-19', 'if-range': etag }, 3_000),
        get('ranged', { range: 'bytes=10-19', 'if-range': '"older"' }, 3_000),
        get('ranged', { range: 'bytes=4-7', 'if-match': etag }, 3_000),
      ]);
      assert.equal(part.status, 206);
      assert.equal(part.headers['content-range'], `bytes 0-3/${snapshot.length}`);
      assert.ok(part.body.equals(snapshot.subarray(0, 4)));
      assert.equal(part.headers['x-cachew-snapshot-commit'], 'a'.repeat(40), 'cold serves replay the stored commit');
      assert.equal(part.headers['x-cachew-bundle-url'], undefined, 'no bundle URL without a Ready mirror');
      assert.equal(notModified.status, 304);
      assert.equal(failed.status, 412);
      assert.equal(ifRangeHit.status, 206);
      assert.ok(ifRangeHit.body.equals(snapshot.subarray(10, 20)));
      assert.equal(ifRangeMiss.status, 200, 'a non-matching If-Range means the whole object');
      assert.ok(ifRangeMiss.body.equals(snapshot));
      assert.equal(matching.status, 206);
      assert.ok(matching.body.equals(snapshot.subarray(4, 8)));
      release();
      const whole = await plain;
      assert.equal(whole.status, 200);
      assert.ok(whole.body.equals(snapshot));
      assert.equal(whole.headers['content-length'], String(snapshot.length));
    } finally {
      release();
      cache.fault = undefined;
    }
  });

  test('every burst of plain cold GETs reads the cache once, also after an earlier read completed', async () => {
    const repo = repoFor('burst');
    const key = artifactKey(repo.upstreamURL, 'snapshot');
    const snapshot = randomBytes(32 * 1024);
    await put(cache, key, snapshot);
    const first = await get('burst');
    assert.ok(first.body.equals(snapshot));
    assert.equal(cache.wholeOpens(key), 1);
    // The near tier may have dropped its copy since: a new burst must still share one read.
    let release!: () => void;
    cache.fault = { kind: 'stall', release: new Promise<void>((r) => (release = r)) };
    try {
      // Release only once all six stream from the stalled read: a GET arriving after the release
      // would find the read finished and rightly start another, which says nothing about bursts.
      // While the read is stalled it cannot finish, so every GET that got a head joined it.
      let heads = 0;
      const burst = Array.from({ length: 6 }, () => get('burst', {}, 60_000, () => heads++));
      const deadline = Date.now() + 30_000;
      while (heads < 6) {
        if (Date.now() > deadline) assert.fail(`only ${heads} of 6 GETs were answered from the stalled read`);
        await sleep(10);
      }
      release();
      for (const res of await Promise.all(burst)) {
        assert.equal(res.status, 200);
        assert.ok(res.body.equals(snapshot));
      }
      assert.equal(cache.wholeOpens(key), 2, 'one read for the first GET, one for the burst');
    } finally {
      release();
      cache.fault = undefined;
    }
  });

  test('the restore signal waits for every cold serve in flight, whenever it started, and gives up at a deadline', async () => {
    const repo = repoFor('waits');
    const key = artifactKey(repo.upstreamURL, 'snapshot');
    await put(cache, key, randomBytes(16 * 1024));
    const quick = await get('waits', { range: 'bytes=0-0' });
    assert.equal(quick.status, 206);
    const signal = served.find((s) => s.url === repo.upstreamURL);
    assert.ok(signal, 'a cold serve reports itself');
    let release!: () => void;
    cache.fault = { kind: 'stall', release: new Promise<void>((r) => (release = r)) };
    try {
      // A plain GET that starts after the first serve ended, and stays in flight.
      const slow = get('waits', {}, 30_000);
      while (cache.wholeOpens(key) === 0) await sleep(10);
      await sleep(3_000);
      assert.equal(signal.settled, false, 'the restore must not start while a later cold serve still runs');
      const started = Date.now();
      await activity.quiet(repo.upstreamURL, 400);
      assert.ok(Date.now() - started < 2_000, 'a deadline bounds the wait');
      release();
      assert.equal((await slow).status, 200);
      const deadline = Date.now() + 6_000;
      while (!signal.settled && Date.now() < deadline) await sleep(50);
      assert.equal(signal.settled, true, 'the restore may start once every cold serve ended');
    } finally {
      release();
      cache.fault = undefined;
    }
  });
});

describe('mirror snapshot restore verdicts', () => {
  let goodArchive: Buffer;
  let notARepoArchive: Buffer;

  before(async () => {
    const src = path.join(work, 'src');
    execFileSync('git', ['init', '-q', '-b', 'main', src], { env: GIT_ENV });
    await fs.writeFile(path.join(src, 'README'), 'hello\n');
    // Incompressible, so its object is far larger than the file-size limit the disk-fault case sets.
    await fs.writeFile(path.join(src, 'blob.bin'), randomBytes(64 * 1024));
    execFileSync('git', ['-C', src, 'add', '-A'], { env: GIT_ENV });
    execFileSync('git', ['-C', src, 'commit', '-q', '-m', 'one'], { env: GIT_ENV });
    const mirror = path.join(work, 'src-mirror.git');
    execFileSync('git', ['clone', '-q', '--mirror', src, mirror], { env: GIT_ENV });
    const tarZst = (dir: string) => execFileSync('sh', ['-c', 'tar -cf - -C "$1" . | zstd -q -c', 'sh', dir], { maxBuffer: 1 << 26 });
    goodArchive = tarZst(mirror);
    const plain = path.join(work, 'plain-dir');
    await fs.mkdir(plain);
    await fs.writeFile(path.join(plain, 'file.txt'), 'not a repository\n');
    notARepoArchive = tarZst(plain);
  });

  const restore = async (name: string, archive: Buffer, target?: string) => {
    const repo = repoFor(name);
    const key = artifactKey(repo.upstreamURL, 'mirror-snapshot');
    await put(cache, key, archive);
    const dir = target ?? path.join(work, 'restores', name);
    const outcome = await restorer.restore(repo, dir, new AbortController().signal).then(
      (v) => v,
      (err: Error) => err,
    );
    const kept = await cache.stat(key).then(() => true, () => false);
    return { outcome, kept, dir };
  };

  test('a sound snapshot is restored', async () => {
    const { outcome, kept, dir } = await restore('mirror-good', goodArchive);
    assert.equal(outcome, 'restored');
    assert.ok(kept);
    assert.ok(execFileSync('git', ['-C', dir, 'rev-parse', 'HEAD'], { env: GIT_ENV }).toString().trim().match(/^[0-9a-f]{40}$/));
  });

  test('bytes zstd rejects, a truncated archive and an archive without a repository are corrupt and discarded', async () => {
    for (const [name, archive] of [
      ['mirror-garbage', Buffer.from('this is not a zstd archive at all')],
      ['mirror-truncated', goodArchive.subarray(0, goodArchive.length >> 1)],
      ['mirror-not-a-repo', notARepoArchive],
    ] as const) {
      const { outcome, kept, dir } = await restore(name, archive);
      assert.ok(outcome instanceof CorruptMirrorSnapshotError, `${name}: ${String(outcome)}`);
      assert.equal(kept, false, `${name}: a corrupt snapshot is deleted`);
      assert.equal(await fs.stat(dir).then(() => true, () => false), false, `${name}: nothing left at the target`);
    }
  });

  test('a read from the cache failing mid-stream is not corruption: the snapshot is kept', async () => {
    cache.fault = { kind: 'error-after', bytes: 512 };
    try {
      const { outcome, kept } = await restore('mirror-source-error', goodArchive);
      assert.ok(outcome instanceof Error && !(outcome instanceof CorruptMirrorSnapshotError), String(outcome));
      assert.match(outcome.message, /reading the snapshot from the cache failed/);
      assert.equal(kept, true);
    } finally {
      cache.fault = undefined;
    }
  });

  test('a local filesystem failure is not corruption: the snapshot is kept', async () => {
    // The target cannot even be created (a path component is a file).
    const blocker = path.join(work, 'a-file');
    await fs.writeFile(blocker, 'x');
    const early = await restore('mirror-local-mkdir', goodArchive, path.join(blocker, 'repo.git'));
    assert.ok(early.outcome instanceof Error && !(early.outcome instanceof CorruptMirrorSnapshotError), String(early.outcome));
    assert.equal(early.kept, true);
    // tar itself fails writing (a real tar under a file-size limit: "Cannot write: File too large",
    // as a full disk would make it fail), which says nothing about the archive.
    process.env['HOARD_TEST_TAR_FSIZE'] = '1';
    try {
      const late = await restore('mirror-local-write', goodArchive);
      assert.ok(late.outcome instanceof Error && !(late.outcome instanceof CorruptMirrorSnapshotError), String(late.outcome));
      assert.match(late.outcome.message, /Wrote only|Cannot write|File too large/);
      assert.equal(late.kept, true);
    } finally {
      delete process.env['HOARD_TEST_TAR_FSIZE'];
    }
  });

  test('a cancelled restore is not corruption: the snapshot is kept', async () => {
    const repo = repoFor('mirror-cancelled');
    const key = artifactKey(repo.upstreamURL, 'mirror-snapshot');
    await put(cache, key, goodArchive);
    let release!: () => void;
    cache.fault = { kind: 'stall', release: new Promise<void>((r) => (release = r)) };
    const controller = new AbortController();
    try {
      const pending = restorer.restore(repo, path.join(work, 'restores', 'cancelled'), controller.signal).catch((err: Error) => err);
      await sleep(200);
      controller.abort();
      const outcome = await pending;
      assert.ok(outcome instanceof Error && !(outcome instanceof CorruptMirrorSnapshotError), String(outcome));
      assert.equal(await cache.stat(key).then(() => true, () => false), true);
    } finally {
      release();
      cache.fault = undefined;
    }
  });
});
