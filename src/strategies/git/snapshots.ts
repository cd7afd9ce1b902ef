import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache, CacheWriter } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import type { CacheKey } from '../../cache/key.js';
import { createArchive, extractArchive } from '../../client/archive.js';
import { sendJson, sendText } from '../../server/router.js';
import { sendCacheObject } from '../../server/send-cache-object.js';
import type { GitRequestPath } from './paths.js';
import type { Repository } from './repository.js';
import { Spool, SpoolUnavailableError, type SpoolSource } from './spool.js';

/** Response header naming the commit a snapshot holds. */
export const SNAPSHOT_COMMIT_HEADER = 'x-cachew-snapshot-commit';
/** Response header pointing at a delta bundle when the snapshot is behind the mirror. */
export const BUNDLE_URL_HEADER = 'x-cachew-bundle-url';

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const REF = /^refs\/[A-Za-z0-9._\/-]+$/;
const GENERATION_TIMEOUT_MS = 2 * 60 * 60_000;
/** Idle time after the last direct cold serve before the background mirror restore may start. */
const COLD_QUIET_MS = 2_000;

/** The three cached artifacts of a repository (reference git §4.1). */
export type ArtifactKind = 'snapshot' | 'mirror-snapshot' | 'lfs-snapshot';

/** Cache key of an artifact: SHA-256 of the upstream URL (no `.git`) plus a suffix. */
export function artifactKey(upstreamURL: string, kind: ArtifactKind): CacheKey {
  return createHash('sha256').update(`${upstreamURL}.${kind}`).digest('hex') as CacheKey;
}

/** Cache key of a delta bundle from `base`. */
export function bundleKey(upstreamURL: string, base: string): CacheKey {
  return createHash('sha256').update(`${upstreamURL}.bundle.${base}`).digest('hex') as CacheKey;
}

/** What the snapshot service needs from the git strategy. */
export interface SnapshotDeps {
  cache: Cache;
  logger: Logger;
  scratchRoot: string;
  zstdThreads: number;
  bundleTtlMs: number;
  refCheckIntervalMs: number;
  /** Starts the clone if Empty and resolves when the repository is Ready (rejects otherwise). */
  ensureReady(repo: Repository, signal: AbortSignal): Promise<void>;
  /** Queues background work on the repository's serial queue. */
  background(repo: Repository, id: string, job: (signal: AbortSignal) => Promise<void>): void;
  /** A snapshot was served while the mirror was not Ready; `served` settles when the read ends. */
  coldServed(repo: Repository, served: Promise<void>): void;
}

/** The cached mirror snapshot could not be restored (bad archive or not a repository); it was discarded. */
export class CorruptMirrorSnapshotError extends Error {}

function requestSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/**
 * Workstation and mirror snapshots, delta bundles and ensure-refs (reference git §2.4-2.7, §4,
 * §5). Generation streams `git clone` of the mirror through `tar | zstd` into the cache; a miss
 * is generated on demand, streamed to every concurrent caller from one spool and teed into the
 * cache, which commits only if the archive completed.
 */
export class SnapshotService {
  private readonly generating = new Map<string, { spool: Spool; done: Promise<void> }>();
  /** Cold serves in flight: one read of the shared tier per repository, followed by everyone. */
  private readonly coldReads = new Map<string, Spool>();
  /** Repositories whose snapshot a cold read already copied into the near tier. */
  private readonly coldCopied = new Set<string>();
  /** Direct (ranged/conditional) cold serves in flight per repository, and when the last one ended. */
  private readonly coldDirect = new Map<string, { active: number; lastEnded: number }>();

  constructor(private readonly deps: SnapshotDeps) {}

  /** Handles artifact routes; returns false for other operations. */
  async handle(req: IncomingMessage, res: ServerResponse, repo: Repository, parsed: GitRequestPath, query: URLSearchParams): Promise<boolean> {
    const method = req.method ?? 'GET';
    switch (parsed.operation) {
      case 'snapshot.tar.zst':
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
        await this.serveSnapshot(req, res, repo, parsed);
        return true;
      case 'snapshot.bundle':
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
        await this.serveBundle(req, res, repo, query.get('base') ?? '');
        return true;
      case 'lfs-snapshot.tar.zst':
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
        await this.serveLfsSnapshot(req, res, repo);
        return true;
      case 'ensure-refs':
        if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
        await this.ensureRefs(req, res, repo);
        return true;
      default:
        return false;
    }
  }

  private methodNotAllowed(res: ServerResponse, allow: string): true {
    sendText(res, 405, 'method not allowed', { allow });
    return true;
  }

  private async serveSnapshot(req: IncomingMessage, res: ServerResponse, repo: Repository, parsed: GitRequestPath): Promise<void> {
    const key = artifactKey(repo.upstreamURL, 'snapshot');
    const cache = this.deps.cache;
    if (req.method === 'HEAD') {
      // Metadata only: never generates, never warms a mirror.
      if (!(await sendCacheObject(cache, key, req, res, { 'content-type': 'application/zstd' }))) sendText(res, 404, 'Snapshot not cached');
      return;
    }
    const signal = requestSignal(res);
    if (repo.state !== 'ready') {
      if (await this.serveCold(req, res, repo, key)) return;
      try {
        await this.deps.ensureReady(repo, signal);
      } catch (err) {
        if (!res.destroyed) sendText(res, 503, `Repository unavailable: ${(err as Error).message}`);
        return;
      }
    }
    let extra: Record<string, string> = { 'content-type': 'application/zstd' };
    try {
      const st = await cache.stat(key);
      const commit = st.headers[SNAPSHOT_COMMIT_HEADER];
      const head = await repo.head().catch(() => undefined);
      if (commit && head && commit !== head && SHA.test(commit)) {
        extra = { ...extra, [BUNDLE_URL_HEADER]: `/git/${parsed.host}/${parsed.repoPath}/snapshot.bundle?base=${commit}` };
      }
    } catch (err) {
      if (!isCacheError(err, 'not-found')) throw err;
    }
    if (await sendCacheObject(cache, key, req, res, extra)) return;
    await this.serveGenerated(res, repo);
  }

  /**
   * Serves a cached snapshot while the mirror is not Ready, without waiting for any clone. A
   * plain GET joins the repository's single read of the cache (the first caller starts it; the
   * rest stream the local spool as it fills), so a burst of cold requests reads the shared tier
   * once. Ranged and conditional requests go to the cache directly, in parallel. Returns false
   * when no snapshot is cached.
   */
  private async serveCold(req: IncomingMessage, res: ServerResponse, repo: Repository, key: CacheKey): Promise<boolean> {
    const headers = { 'content-type': 'application/zstd' };
    const url = repo.upstreamURL;
    const conditional = req.headers.range || req.headers['if-match'] || req.headers['if-none-match'] || req.headers['if-range'];
    let spool = this.coldReads.get(url);
    if (!spool && (conditional || this.coldCopied.has(url))) {
      const direct = this.coldDirect.get(url) ?? { active: 0, lastEnded: 0 };
      this.coldDirect.set(url, direct);
      direct.active++;
      try {
        const found = await sendCacheObject(this.deps.cache, key, req, res, headers);
        if (found) this.deps.coldServed(repo, this.coldQuiet(url));
        return found;
      } finally {
        direct.active--;
        direct.lastEnded = Date.now();
      }
    }
    if (!spool) {
      const file = path.join(this.deps.scratchRoot, `cold-${randomBytes(6).toString('hex')}`);
      const started = Spool.start(
        file,
        async () => {
          const opened = await this.deps.cache.open(key);
          return Object.assign(opened.body, { statusCode: 200, headers: { ...headers, ...opened.headers, 'accept-ranges': 'bytes' } });
        },
        { keepLength: true },
      );
      spool = started;
      this.coldReads.set(url, started);
      const finished = started.finished().then(() => {
        if (!started.failed) this.coldCopied.add(url);
      });
      void finished.finally(() => {
        if (this.coldReads.get(url) === started) this.coldReads.delete(url);
        void started.dispose();
      });
      this.deps.coldServed(
        repo,
        finished.then(() => started.dispose()),
      );
    }
    try {
      await spool.serve(res);
      return true;
    } catch (err) {
      if (!(err instanceof SpoolUnavailableError)) throw err;
      if (isCacheError(err.cause, 'not-found')) return false;
      if (!res.headersSent) sendText(res, 502, `Snapshot read from the cache failed: ${err.message}`);
      return true;
    }
  }

  /**
   * Resolves once no direct cold serve of the repository has run for a quiet period: a parallel
   * ranged download is many short requests with gaps, and the mirror restore should not compete
   * with it for bandwidth and CPU.
   */
  private async coldQuiet(url: string): Promise<void> {
    for (;;) {
      const direct = this.coldDirect.get(url);
      if (!direct) return;
      const quietFor = Date.now() - direct.lastEnded;
      if (direct.active === 0 && quietFor >= COLD_QUIET_MS) {
        this.coldDirect.delete(url);
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, direct.active > 0 ? COLD_QUIET_MS : COLD_QUIET_MS - quietFor).unref());
    }
  }

  /** Forgets that a cold read filled the near tier (the mirror is Ready or the copy was evicted). */
  forgetCold(repo: Repository): void {
    this.coldCopied.delete(repo.upstreamURL);
  }

  /** Streams an on-demand generation; concurrent callers follow the same one. */
  private async serveGenerated(res: ServerResponse, repo: Repository): Promise<void> {
    let current = this.generating.get(repo.upstreamURL);
    if (!current) {
      const file = path.join(this.deps.scratchRoot, `snapshot-spool-${randomBytes(6).toString('hex')}`);
      const spool = Spool.start(file, () => this.generationSource(repo));
      const done = spool.finished().finally(() => {
        this.generating.delete(repo.upstreamURL);
        void spool.dispose();
      });
      current = { spool, done };
      this.generating.set(repo.upstreamURL, current);
    }
    try {
      await current.spool.serve(res);
    } catch (err) {
      if (err instanceof SpoolUnavailableError && !res.headersSent) {
        this.deps.logger.error({ err: err.message, upstream: repo.upstreamURL }, 'snapshot generation failed');
        sendText(res, 500, `snapshot generation failed: ${err.message}`);
      } else {
        res.destroy();
      }
    }
  }

  /**
   * Starts a workstation snapshot generation whose bytes feed the spool and the cache writer.
   * Resolves only once the first archive bytes exist, so a generation that fails early turns
   * into a visible 500 rather than an empty 200.
   */
  private async generationSource(repo: Repository): Promise<SpoolSource> {
    const { stream, commit, done } = await this.startWorkstationArchive(repo);
    const writer = this.deps.cache.create(artifactKey(repo.upstreamURL, 'snapshot'), snapshotHeaders(commit, 'base.tar.zst'));
    writer.on('error', (err) => this.deps.logger.warn({ err, upstream: repo.upstreamURL }, 'snapshot cache write failed'));
    const tee = teeInto(writer, done);
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    pipeline(stream, tee, out).catch((err: Error) => {
      writer.destroy(err);
      out.destroy(err);
    });
    done.catch((err: Error) => {
      writer.destroy(err);
      out.destroy(err);
      stream.destroy(err);
    });
    await firstBytes(out, done);
    return Object.assign(out, {
      statusCode: 200,
      headers: { 'content-type': 'application/zstd', 'content-disposition': 'attachment; filename="repo.tar.zst"', [SNAPSHOT_COMMIT_HEADER]: commit },
    });
  }

  /** `git clone` the mirror into scratch space and start `tar | zstd` over it. */
  private async startWorkstationArchive(repo: Repository): Promise<{ stream: NodeJS.ReadableStream & PassThrough; commit: string; done: Promise<void> }> {
    const work = path.join(this.deps.scratchRoot, `snapshot-${randomBytes(6).toString('hex')}`);
    const checkout = path.join(work, 'repo');
    const cleanup = () => fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
    try {
      await fs.mkdir(work, { recursive: true });
      // A local clone hardlinks the mirror's objects: cheap, and a clean object store.
      await repo.git(['clone', '-q', '--', repo.mirrorDir, checkout], { timeoutMs: GENERATION_TIMEOUT_MS, allowLocal: true });
      await repo.git(['-C', checkout, 'remote', 'set-url', 'origin', repo.upstreamURL], { timeoutMs: 30_000 });
      const commit = (await repo.git(['-C', checkout, 'rev-parse', 'HEAD'], { timeoutMs: 30_000 })).trim();
      const archive = createArchive(checkout, ['.'], { threads: this.deps.zstdThreads });
      const stream = new PassThrough({ highWaterMark: 1 << 20 });
      archive.stream.pipe(stream);
      archive.stream.once('error', (err) => stream.destroy(err));
      const done = archive.done.finally(cleanup);
      return { stream, commit, done };
    } catch (err) {
      await cleanup();
      throw err;
    }
  }

  /**
   * Generates and stores a workstation snapshot unless the cached one already holds HEAD.
   * Returns the commit captured, or undefined when skipped.
   */
  async generateWorkstation(repo: Repository): Promise<string | undefined> {
    const key = artifactKey(repo.upstreamURL, 'snapshot');
    const head = await repo.head();
    const cached = await this.deps.cache.stat(key).catch(() => undefined);
    if (cached?.headers[SNAPSHOT_COMMIT_HEADER] === head) return undefined;
    const { stream, commit, done } = await this.startWorkstationArchive(repo);
    const writer = this.deps.cache.create(key, snapshotHeaders(commit, 'base.tar.zst'));
    await Promise.all([pipeline(stream, writer), done]).catch((err: Error) => {
      writer.destroy(err);
      throw err;
    });
    return commit;
  }

  /**
   * Extracts the cached mirror snapshot into `target`. Resolves 'absent' when none is cached or
   * the cache cannot be read (the caller decides whether to clone instead). A snapshot that does
   * not extract into a sound repository is deleted from the cache and CorruptMirrorSnapshotError
   * thrown, so it is never served or restored again.
   */
  async restoreMirror(repo: Repository, target: string, signal: AbortSignal): Promise<'restored' | 'absent'> {
    const key = artifactKey(repo.upstreamURL, 'mirror-snapshot');
    let opened;
    try {
      opened = await this.deps.cache.open(key, { signal });
    } catch (err) {
      if (!isCacheError(err, 'not-found')) this.deps.logger.warn({ err, upstream: repo.upstreamURL }, 'mirror snapshot unreadable; treating it as absent');
      return 'absent';
    }
    try {
      await fs.mkdir(target, { recursive: true });
      await extractArchive(opened.body, target, { threads: this.deps.zstdThreads, signal });
      await repo.git(['-C', target, 'rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { timeoutMs: 60_000, signal });
      await repo.git(['-C', target, 'fsck', '--connectivity-only', '--no-progress', '--no-dangling'], { timeoutMs: GENERATION_TIMEOUT_MS, signal });
    } catch (err) {
      opened.body.destroy();
      if (signal.aborted) throw err;
      this.deps.logger.error({ err, upstream: repo.upstreamURL }, 'mirror snapshot is corrupt; discarding it');
      await fs.rm(target, { recursive: true, force: true });
      await this.deps.cache.delete(key).catch(() => undefined);
      throw new CorruptMirrorSnapshotError(`mirror snapshot of ${repo.upstreamURL} is corrupt: ${(err as Error).message}`);
    }
    return 'restored';
  }

  /** True when a mirror snapshot is cached (a restore could start from it). */
  async hasMirrorSnapshot(repo: Repository): Promise<boolean> {
    return this.deps.cache.stat(artifactKey(repo.upstreamURL, 'mirror-snapshot')).then(
      () => true,
      () => false,
    );
  }

  /** Tars the bare mirror (fetches held back meanwhile) into the cache. */
  async generateMirror(repo: Repository): Promise<string | undefined> {
    return repo.withFetchesExcluded(async () => {
      const head = await repo.head();
      const key = artifactKey(repo.upstreamURL, 'mirror-snapshot');
      const cached = await this.deps.cache.stat(key).catch(() => undefined);
      if (cached?.headers[SNAPSHOT_COMMIT_HEADER] === head) return undefined;
      const archive = createArchive(repo.mirrorDir, ['.'], { exclude: ['*.lock'], threads: this.deps.zstdThreads });
      const writer = this.deps.cache.create(key, snapshotHeaders(head, `${path.basename(repo.mirrorDir, '.git')}.tar.zst`));
      await Promise.all([pipeline(archive.stream, writer), archive.done]).catch((err: Error) => {
        writer.destroy(err);
        throw err;
      });
      return head;
    });
  }

  private async serveBundle(req: IncomingMessage, res: ServerResponse, repo: Repository, base: string): Promise<void> {
    if (!SHA.test(base)) return sendText(res, 400, 'base must be a full lowercase commit SHA (40 or 64 hex)');
    const key = bundleKey(repo.upstreamURL, base);
    const bundleHeaders = { 'content-type': 'application/x-git-bundle' };
    if (await sendCacheObject(this.deps.cache, key, req, res, bundleHeaders)) return;
    const signal = requestSignal(res);
    try {
      await this.deps.ensureReady(repo, signal);
    } catch (err) {
      return sendText(res, 503, `Repository unavailable: ${(err as Error).message}`);
    }
    const hasBase = () => repo.git(['-C', repo.mirrorDir, 'cat-file', '-e', `${base}^{commit}`], { timeoutMs: 30_000 }).then(() => true, () => false);
    let head = await repo.head();
    let freshenFailed = false;
    try {
      if (head === base) await repo.fetch({ verified: true, signal });
      else if (!(await hasBase()) && Date.now() - repo.lastFetch > this.deps.refCheckIntervalMs) await repo.fetch({ signal });
    } catch (err) {
      freshenFailed = true;
      this.deps.logger.warn({ err, upstream: repo.upstreamURL }, 'bundle freshen failed');
    }
    head = await repo.head();
    const baseKnown = await hasBase();
    if (freshenFailed && (head === base || !baseKnown)) return sendText(res, 404, 'Bundle not available: could not verify the mirror is up to date');
    if (!baseKnown) return sendText(res, 404, 'Bundle not available: base commit unknown');
    if (head === base) {
      res.writeHead(204).end();
      return;
    }
    const file = path.join(this.deps.scratchRoot, `bundle-${randomBytes(6).toString('hex')}.bundle`);
    try {
      await fs.mkdir(this.deps.scratchRoot, { recursive: true });
      const headRef = (await repo.git(['-C', repo.mirrorDir, 'symbolic-ref', '-q', 'HEAD'], { timeoutMs: 30_000 }).catch(() => 'HEAD')).trim() || 'HEAD';
      await repo.git(['-C', repo.mirrorDir, 'bundle', 'create', '-q', file, headRef, `^${base}`], { timeoutMs: GENERATION_TIMEOUT_MS, signal });
      await pipeline(createReadStream(file), this.deps.cache.create(key, bundleHeaders, { ttlMs: this.deps.bundleTtlMs }));
    } catch (err) {
      this.deps.logger.warn({ err, upstream: repo.upstreamURL }, 'bundle creation failed');
      return sendText(res, 404, 'Bundle not available');
    } finally {
      await fs.rm(file, { force: true });
    }
    if (!(await sendCacheObject(this.deps.cache, key, req, res, bundleHeaders))) sendText(res, 404, 'Bundle not available');
  }

  private async serveLfsSnapshot(req: IncomingMessage, res: ServerResponse, repo: Repository): Promise<void> {
    if (await sendCacheObject(this.deps.cache, artifactKey(repo.upstreamURL, 'lfs-snapshot'), req, res)) return;
    sendText(res, 404, 'LFS snapshot not found');
    if (repo.state !== 'ready') this.deps.background(repo, 'lfs-mirror-warm', (signal) => this.deps.ensureReady(repo, signal));
  }

  private async ensureRefs(req: IncomingMessage, res: ServerResponse, repo: Repository): Promise<void> {
    let body: { refs?: Record<string, string>; commits?: string[] };
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > 1 << 20) return sendText(res, 413, 'request body too large');
        chunks.push(chunk as Buffer);
      }
      body = JSON.parse(Buffer.concat(chunks).toString() || 'null') as typeof body;
      if (!body || typeof body !== 'object') throw new Error('expected a JSON object');
    } catch (err) {
      return sendText(res, 400, `invalid request body: ${(err as Error).message}`);
    }
    const refs = body.refs ?? {};
    const commits = body.commits ?? [];
    if (typeof refs !== 'object' || !Array.isArray(commits)) return sendText(res, 400, 'invalid request body: refs must be an object and commits an array');
    if (Object.keys(refs).length === 0 && commits.length === 0) return sendText(res, 400, 'at least one of refs or commits must be provided');
    for (const [ref, sha] of Object.entries(refs)) {
      if (!REF.test(ref) || ref.includes('..') || ref.includes('//')) return sendText(res, 400, `invalid ref name ${JSON.stringify(ref)}`);
      if (typeof sha !== 'string' || (sha !== '' && !SHA.test(sha))) return sendText(res, 400, `invalid SHA for ${ref}: ${JSON.stringify(sha)}`);
    }
    for (const sha of commits) if (typeof sha !== 'string' || !SHA.test(sha)) return sendText(res, 400, `invalid commit SHA ${JSON.stringify(sha)}`);
    const signal = requestSignal(res);
    try {
      await this.deps.ensureReady(repo, signal);
    } catch (err) {
      return sendText(res, 502, `clone not ready: ${(err as Error).message}`);
    }
    const check = async () => {
      const local: Record<string, string> = {};
      for (const ref of Object.keys(refs)) {
        local[ref] = (await repo.git(['-C', repo.mirrorDir, 'rev-parse', '-q', '--verify', `${ref}^{commit}`], { timeoutMs: 30_000 }).catch(() => '')).trim();
      }
      const missing: string[] = [];
      for (const sha of commits) {
        const ok = await repo.git(['-C', repo.mirrorDir, 'cat-file', '-e', `${sha}^{commit}`], { timeoutMs: 30_000 }).then(() => true, () => false);
        if (!ok) missing.push(sha);
      }
      const satisfied = Object.entries(refs).every(([ref, want]) => local[ref] && (want === '' || local[ref] === want)) && missing.length === 0;
      return { local, missing, satisfied };
    };
    let result = await check();
    let fetched = false;
    if (!result.satisfied) {
      try {
        // Verified: the answer must reflect upstream as of now, not a fetch that was already running.
        await repo.fetch({ verified: true, signal });
        fetched = true;
        repo.invalidateRefCheck();
      } catch (err) {
        return sendText(res, 502, `ensure refs: ${(err as Error).message}`);
      }
      result = await check();
    }
    sendJson(res, 200, { refs: result.local, missing_commits: result.missing, fetched });
  }
}

function snapshotHeaders(commit: string, filename: string): Record<string, string> {
  return { 'content-type': 'application/zstd', 'content-disposition': `attachment; filename="${filename}"`, [SNAPSHOT_COMMIT_HEADER]: commit };
}

/**
 * Passes bytes through while writing them to `writer`; commits the writer only at EOF and only
 * once `done` (the archiver's exit) succeeded, so a failing tar or zstd never publishes.
 */
function teeInto(writer: CacheWriter, done: Promise<void>): Transform {
  let open = true;
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      if (!open || writer.destroyed) return cb(null, chunk);
      if (writer.write(chunk)) cb(null, chunk);
      else writer.once('drain', () => cb(null, chunk));
    },
    flush(cb) {
      open = false;
      if (writer.destroyed) return cb();
      done.then(
        () => writer.end(() => cb()),
        (err: Error) => {
          writer.destroy(err);
          cb(err);
        },
      );
    },
    destroy(err, cb) {
      if (open) writer.destroy(err ?? new Error('snapshot stream aborted'));
      open = false;
      cb(err);
    },
  });
}

/** Resolves when `stream` has bytes to read (or ended cleanly); rejects if generation failed first. */
function firstBytes(stream: PassThrough, done: Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onReadable = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('error', onError);
    };
    stream.once('readable', onReadable);
    stream.once('error', onError);
    done.catch(onError);
  });
}
