import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import type { CacheKey } from '../../cache/key.js';
import { createArchive } from '../../client/archive.js';
import { sendJson, sendText } from '../../http/router.js';
import { failureAnswer, isOutOfSpace, withoutServerPaths, type ErrorAnswer } from '../../http/error-answer.js';
import { answerAndClose } from '../../http/answer-and-close.js';
import { UpstreamRepositoryMissingError, upstreamLacksRepository } from './upstream-missing.js';
import { BodyIncompleteError, BodyTooLargeError, readBoundedBody } from '../../util/read-body.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import { holdingConnection } from '../../http/hold-connection.js';
import { ChildProcessError, startChild } from '../../util/process.js';
import { teeInto } from '../../util/tee.js';
import type { GitRequestPath } from './paths.js';
import type { Repository } from './repository.js';
import { Spool, SpoolUnavailableError, type SpoolSource } from '../shared/spool.js';

/** Response header naming the commit a snapshot holds. */
export const SNAPSHOT_COMMIT_HEADER = 'x-cachew-snapshot-commit';
/** Response header pointing at a delta bundle when the snapshot is behind the mirror. */
export const BUNDLE_URL_HEADER = 'x-cachew-bundle-url';

const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const REF = /^refs\/[A-Za-z0-9._\/-]+$/;
const GENERATION_TIMEOUT_MS = 2 * 60 * 60_000;
/** Idle time after the last cold serve before the background mirror restore may start. */
const COLD_QUIET_MS = 2_000;
/**
 * Longest the background mirror restore waits for cold serves to finish: a client that stalls
 * (or a stream of clients that never pauses) must not keep the replica mirror-less forever.
 */
const COLD_WAIT_MAX_MS = 15 * 60_000;
/**
 * Longest a warm snapshot request waits for the upstream ref check before answering without it
 * (the check goes on in the background and the next request sees its verdict).
 */
const FRESHNESS_WAIT_MS = 2_000;
/** Default `snapshot-max-age`: an unchanged snapshot is still regenerated after this long. */
const DEFAULT_MAX_AGE_MS = 24 * 3_600_000;

/**
 * stderr of a tar that failed because of the local filesystem (full disk, quota, permissions),
 * not because of what it was reading: such a failure says nothing about the archive.
 */
const TAR_LOCAL_FAILURE = /No space left|Wrote only \d+ of|File too large|Disk quota|Read-only file system|Permission denied|Too many open files|Input\/output error|Cannot (?:open|write|mkdir|create|utime|change|hard link|link|chmod|chown)/i;
/** stderr of a tar that rejected its input as a tar archive. */
const TAR_FORMAT_FAILURE = /does not look like a tar archive|Skipping to next header|Unexpected EOF in archive|Damaged tar archive|Truncated tar archive|Unrecognized archive format|lone zero block|value expected|Invalid header|Archive (?:contains|value)/i;
/** stderr of a zstd that could not write its output (tar went away), as opposed to bad input. */
const ZSTD_WRITE_FAILURE = /Write error|Broken pipe|EPIPE/i;

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
  /** Least time between two upstream ref checks of one repository on the warm snapshot path. */
  refCheckIntervalMs: number;
  /** Starts the clone if Empty and resolves when the repository is Ready (rejects otherwise). */
  ensureReady(repo: Repository, signal: AbortSignal): Promise<void>;
  /**
   * A snapshot was served while the mirror was not Ready; `served` settles once no cold serve of
   * the repository is in flight (or a deadline passed), so a mirror restore can start then.
   */
  coldServed(repo: Repository, served: Promise<void>): void;
  /**
   * Fetches the mirror in the background through the scheduler's fetch queue (worker caps,
   * deadlines, abort and drain on shutdown); joins the catch-up fetch already pending.
   */
  catchUp(repo: Repository): Promise<void>;
}

/** Options of periodic snapshot generation. */
export interface GenerateOptions {
  /**
   * An unchanged snapshot (same commit) is skipped only while younger than this (`snapshot-max-age`);
   * 0 disables skipping, so every run regenerates.
   */
  maxAgeMs?: number;
}

/** The cached mirror snapshot could not be restored (bad archive or not a repository); it was discarded. */
export class CorruptMirrorSnapshotError extends Error {}

/** Cold serves of one repository: how many run now and when the last one ended. */
interface ColdActivity {
  active: number;
  lastEnded: number;
  /** Some serve found a snapshot: a mirror restore will wait on this entry and then remove it. */
  served: boolean;
  /** Woken whenever a serve ends. */
  waiters: Set<() => void>;
}

/** How an extraction or verification of a mirror snapshot failed. */
type RestoreFailure = { corrupt: boolean; reason: string };

function requestSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** Largest ensure-refs request body (a JSON list of refs and commits). */
const ENSURE_REFS_MAX_BODY = 1 << 20;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * Workstation and mirror snapshots, delta bundles and ensure-refs (reference git §2.4-2.7, §4,
 * §5). Generation streams `git clone` of the mirror through `tar | zstd` into the cache; a miss
 * is generated on demand, streamed to every concurrent caller from one spool and teed into the
 * cache, which commits only if the archive completed.
 */
export class SnapshotService {
  private readonly generating = new Map<string, { spool: Spool; done: Promise<void> }>();
  /** Plain cold GETs in flight: one read of the cache per repository, followed by everyone. */
  private readonly coldReads = new Map<string, Spool>();
  /** Every cold serve (spooled or direct) per repository, so a mirror restore can wait for them. */
  private readonly coldActivity = new Map<string, ColdActivity>();

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
    // If-Match names a representation the client already has; with none cached it cannot match
    // (RFC 9110 §13.1.1), and a new generation would carry a different ETag anyway (#367).
    const ifMatch = req.headers['if-match'] !== undefined;
    const signal = requestSignal(res);
    if (repo.state !== 'ready') {
      if (await this.serveCold(req, res, repo, key)) return;
      if (ifMatch) return void res.writeHead(412, { 'content-length': '0' }).end();
      try {
        await holdingConnection(res, () => this.deps.ensureReady(repo, signal));
      } catch (err) {
        // Answered as ensure-refs answers: 404 when the upstream lacks the repository (so
        // `hoard git restore` exits 2 and scripts fall back to a clone), 502 naming the cause
        // (a refused redirect, an unreachable upstream) otherwise.
        if (!res.destroyed) sendAnswer(res, mirrorNotReadyAnswer(err));
        return;
      }
    }
    let extra: Record<string, string> = { 'content-type': 'application/zstd' };
    try {
      const st = await cache.stat(key);
      const commit = st.headers[SNAPSHOT_COMMIT_HEADER];
      if (commit && SHA.test(commit)) {
        // Both checks run together: the ref check may need an ls-remote, HEAD is usually memoised.
        const [head, upstreamAhead] = await Promise.all([repo.head().catch(() => undefined), this.upstreamAhead(repo)]);
        if (head && (commit !== head || upstreamAhead)) {
          extra = { ...extra, [BUNDLE_URL_HEADER]: `/git/${parsed.host}/${parsed.urlPath}/snapshot.bundle?base=${commit}` };
        }
      }
    } catch (err) {
      if (!isCacheError(err, 'not-found')) throw err;
    }
    if (await sendCacheObject(cache, key, req, res, extra)) return;
    if (ifMatch) return void res.writeHead(412, { 'content-length': '0' }).end();
    await this.serveGenerated(res, repo);
  }

  /**
   * True when upstream is ahead of the mirror, by the repository's own ref check (rate-limited
   * there to one ls-remote per ref-check-interval; requests arriving while it runs get the last
   * verdict). Only the request that started a check waits for it, and at most FRESHNESS_WAIT_MS:
   * the check goes on, and when it finds the mirror behind a coalescing catch-up fetch starts, so
   * the answer stays true until that fetch lands. The snapshot is then advertised with a bundle
   * URL even while the mirror still sits at the snapshot's commit: the bundle endpoint freshens
   * before deciding, so the client ends on upstream's HEAD rather than on a stale snapshot.
   */
  private async upstreamAhead(repo: Repository): Promise<boolean> {
    const checking = repo.refsStale().then((stale) => {
      if (stale) {
        this.deps.catchUp(repo).catch((err: Error) => this.deps.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'catch-up fetch for a stale snapshot failed'));
      }
      return stale;
    });
    return Promise.race([checking, sleep(FRESHNESS_WAIT_MS).then(() => false)]);
  }

  /**
   * Serves a cached snapshot while the mirror is not Ready, without waiting for any clone. A
   * plain GET joins the repository's single read of the cache (the first caller starts it; the
   * rest stream the local spool as it fills), so a burst of cold requests reads the shared tier
   * once, whether or not an earlier read left a copy in the near tier. Ranged and conditional
   * requests always go to the cache directly, in parallel: a spool can only replay the whole body.
   * Returns false when no snapshot is cached.
   */
  private async serveCold(req: IncomingMessage, res: ServerResponse, repo: Repository, key: CacheKey): Promise<boolean> {
    const forced = { 'content-type': 'application/zstd' };
    const url = repo.upstreamURL;
    const h = req.headers;
    const direct = h.range !== undefined || h['if-match'] !== undefined || h['if-none-match'] !== undefined || h['if-range'] !== undefined;
    const end = this.coldServeStarted(url);
    let found = false;
    try {
      if (direct) {
        found = await sendCacheObject(this.deps.cache, key, req, res, forced);
      } else {
        let spool = this.coldReads.get(url);
        if (!spool) {
          const file = path.join(this.deps.scratchRoot, `cold-${randomBytes(6).toString('hex')}`);
          const started = Spool.start(
            file,
            async () => {
              const opened = await this.deps.cache.open(key);
              return Object.assign(opened.body, { statusCode: 200, headers: { ...opened.headers, ...forced, 'accept-ranges': 'bytes' } });
            },
            { keepLength: true },
          );
          spool = started;
          this.coldReads.set(url, started);
          void started.finished().finally(() => {
            if (this.coldReads.get(url) === started) this.coldReads.delete(url);
            void started.dispose();
          });
        }
        try {
          await spool.serve(res);
          found = true;
        } catch (err) {
          if (!(err instanceof SpoolUnavailableError)) throw err;
          if (isCacheError(err.cause, 'not-found')) return false;
          if (!res.headersSent) {
            this.deps.logger.warn({ err: err.cause ?? err, upstream: url }, 'snapshot read from the cache failed');
            sendAnswer(res, failureAnswer(err.cause ?? err, 'snapshot read from the cache'));
          }
          return true;
        }
      }
    } finally {
      end(found);
    }
    if (found) this.deps.coldServed(repo, this.coldServesDone(repo));
    return found;
  }

  /**
   * Counts a cold serve of `url` as in flight; the returned function ends it, saying whether a
   * snapshot was found. Entries of repositories that never had one are dropped at once, so a
   * scan of made-up repository paths cannot grow the map.
   */
  private coldServeStarted(url: string): (found: boolean) => void {
    let activity = this.coldActivity.get(url);
    if (!activity) {
      activity = { active: 0, lastEnded: 0, served: false, waiters: new Set() };
      this.coldActivity.set(url, activity);
    }
    const entry = activity;
    entry.active++;
    let ended = false;
    return (found) => {
      if (ended) return;
      ended = true;
      entry.active--;
      entry.lastEnded = Date.now();
      if (found) entry.served = true;
      for (const wake of entry.waiters) wake();
      if (!entry.served && entry.active === 0 && entry.waiters.size === 0 && this.coldActivity.get(url) === entry) this.coldActivity.delete(url);
    };
  }

  /**
   * Resolves once no cold serve of the repository has run for a quiet period (a parallel ranged
   * download is many short requests with gaps, and the mirror restore should not compete with it
   * for disk and bandwidth), or after `maxWaitMs` at the latest, so a stalled client cannot hold
   * the restore back for ever. Every cold serve counts, whenever it started.
   */
  async coldServesDone(repo: Repository, maxWaitMs = COLD_WAIT_MAX_MS): Promise<void> {
    const url = repo.upstreamURL;
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const activity = this.coldActivity.get(url);
      if (!activity) return;
      const now = Date.now();
      if (now >= deadline) {
        this.deps.logger.warn({ upstream: url, active: activity.active }, 'cold serves still running; not waiting for them any longer');
        return;
      }
      if (activity.active === 0) {
        const quietFor = now - activity.lastEnded;
        if (quietFor >= COLD_QUIET_MS) {
          if (this.coldActivity.get(url) === activity) this.coldActivity.delete(url);
          return;
        }
        await sleep(Math.min(COLD_QUIET_MS - quietFor, deadline - now));
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, deadline - now);
        timer.unref();
        function wake(): void {
          clearTimeout(timer);
          activity?.waiters.delete(wake);
          resolve();
        }
        activity.waiters.add(wake);
      });
    }
  }

  /** Streams an on-demand generation; concurrent callers follow the same one. */
  private async serveGenerated(res: ServerResponse, repo: Repository): Promise<void> {
    let current = this.generating.get(repo.upstreamURL);
    if (!current) {
      const file = path.join(this.deps.scratchRoot, `snapshot-spool-${randomBytes(6).toString('hex')}`);
      // One log line per generation: operators (and tests) can see that concurrent misses share one.
      this.deps.logger.info({ upstream: repo.upstreamURL }, 'generating snapshot on demand');
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
        sendAnswer(res, failureAnswer(err.cause ?? err, 'snapshot generation'));
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
    // Commits only at EOF and once the archiver exited cleanly, so a failing tar or zstd never
    // publishes; a failing cache write only costs the copy, the spool still gets every byte.
    const tee = teeInto(writer, {
      beforeCommit: () => done,
      onAbandon: (err) => this.deps.logger.warn({ err, upstream: repo.upstreamURL }, 'snapshot cache write failed; serving without caching'),
      highWaterMark: 1 << 20,
    });
    const out = new PassThrough({ highWaterMark: 1 << 20 });
    pipeline(stream, tee, out).catch((err: Error) => out.destroy(err));
    done.catch((err: Error) => {
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
   * True when the cached artifact already holds `head` and is younger than `maxAgeMs`, so a new
   * upload would only change its ETag (and break ranged downloads pinned to it, #395).
   *
   * The probe asks the authoritative tier (§4.2): a near copy can outlive a lost shared object,
   * and skipping on its word would hide the loss from every other replica.
   */
  private async unchanged(key: CacheKey, head: string, maxAgeMs: number): Promise<boolean> {
    if (!(maxAgeMs > 0)) return false;
    const cached = await this.deps.cache.statAuthoritative(key).catch(() => undefined);
    if (!cached || cached.headers[SNAPSHOT_COMMIT_HEADER] !== head) return false;
    const uploadedAt = Date.parse(cached.headers['last-modified'] ?? '');
    return Number.isFinite(uploadedAt) && Date.now() - uploadedAt < maxAgeMs;
  }

  /**
   * Generates and stores a workstation snapshot unless the cached one already holds HEAD (and is
   * younger than `maxAgeMs`). Returns the commit captured, or undefined when skipped.
   */
  async generateWorkstation(repo: Repository, opts: GenerateOptions = {}): Promise<string | undefined> {
    const key = artifactKey(repo.upstreamURL, 'snapshot');
    const head = await repo.head();
    if (await this.unchanged(key, head, opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS)) return undefined;
    const { stream, commit, done } = await this.startWorkstationArchive(repo);
    const writer = this.deps.cache.create(key, snapshotHeaders(commit, 'base.tar.zst'));
    await Promise.all([pipeline(stream, writer), done]).catch((err: Error) => {
      writer.destroy(err);
      throw err;
    });
    return commit;
  }

  /**
   * Extracts the cached mirror snapshot into `target` and checks it is a sound repository.
   * Resolves 'absent' when none is cached or the cache cannot be opened (the caller decides
   * whether to clone instead). Only evidence that the archive itself is bad — zstd or tar
   * rejecting its format, no HEAD commit in what it unpacked, a failed fsck — deletes it from the
   * cache (CorruptMirrorSnapshotError), so it is never restored again. A failure of the read from
   * the cache, of the local disk, a timeout or a cancellation leaves it alone and throws a plain
   * error: the next attempt may well succeed from the same object.
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
    let failure: RestoreFailure | undefined;
    try {
      await fs.mkdir(target, { recursive: true });
      failure = await this.extractMirror(opened.body, target, signal);
    } catch (err) {
      failure = { corrupt: false, reason: `preparing ${target}: ${(err as Error).message}` };
    } finally {
      opened.body.destroy();
    }
    if (!failure) failure = await this.verifyMirror(repo, target, signal);
    if (!failure) return 'restored';
    await fs.rm(target, { recursive: true, force: true }).catch(() => undefined);
    if (signal.aborted) throw new Error(`mirror restore of ${repo.upstreamURL} cancelled`);
    if (!failure.corrupt) {
      this.deps.logger.warn({ upstream: repo.upstreamURL, reason: failure.reason }, 'mirror snapshot restore failed; keeping the snapshot');
      throw new Error(`mirror snapshot restore of ${repo.upstreamURL} failed: ${failure.reason}`);
    }
    this.deps.logger.error({ upstream: repo.upstreamURL, reason: failure.reason }, 'mirror snapshot is corrupt; discarding it');
    await this.deps.cache.delete(key).catch(() => undefined);
    throw new CorruptMirrorSnapshotError(`mirror snapshot of ${repo.upstreamURL} is corrupt: ${failure.reason}`);
  }

  /**
   * `zstd -dc | tar -x` of `source` into `dir`, returning why it failed (undefined on success).
   * Unlike the generic extractor this keeps each party's outcome apart — the source stream, zstd,
   * tar — because only zstd or tar rejecting the bytes is evidence against the archive.
   */
  private async extractMirror(source: Readable, dir: string, signal: AbortSignal): Promise<RestoreFailure | undefined> {
    const zstd = startChild('zstd', ['-q', '-d', '-c'], { timeoutMs: GENERATION_TIMEOUT_MS, signal, stdin: 'pipe' });
    const tar = startChild('tar', ['-xpf', '-', '-C', dir], { timeoutMs: GENERATION_TIMEOUT_MS, signal, stdin: 'pipe', stdout: 'ignore' });
    const zstdIn = zstd.child.stdin!;
    const zstdOut = zstd.child.stdout!;
    const tarIn = tar.child.stdin!;
    // EPIPE on a child's stdin only means that child exited; its exit status says why.
    zstdIn.on('error', () => undefined);
    tarIn.on('error', () => undefined);
    let zstdExited = false;
    zstd.child.once('exit', () => (zstdExited = true));
    let sourceError: Error | undefined;
    source.on('error', (err: Error) => {
      // An error after zstd exited is our own teardown, not a failed read.
      if (!zstdExited) sourceError ??= err;
      // zstd sees EOF and exits; tar then sees EOF and exits, so nothing waits for ever.
      zstdIn.destroy();
    });
    source.pipe(zstdIn);
    zstdOut.pipe(tarIn);
    // tar stops reading once it has the end-of-archive record; without this zstd could block on
    // a full pipe for ever. zstd then fails writing, which is not a failure (see below).
    void tar.done.catch(() => undefined).finally(() => zstdOut.destroy());
    const [zstdResult, tarResult] = await Promise.allSettled([zstd.done, tar.done]);
    source.unpipe(zstdIn);
    const childFailure = (r: PromiseSettledResult<void>) => (r.status === 'rejected' ? (r.reason as ChildProcessError) : undefined);
    const zstdErr = childFailure(zstdResult);
    const tarErr = childFailure(tarResult);
    if (signal.aborted) return { corrupt: false, reason: 'cancelled' };
    if (sourceError) return { corrupt: false, reason: `reading the snapshot from the cache failed: ${sourceError.message}` };
    const exited = (err: ChildProcessError | undefined) => err instanceof ChildProcessError && err.exitCode !== null && err.killedBy === undefined;
    if (!tarErr) {
      // tar unpacked a complete archive; zstd failing to write the padding after it is harmless.
      if (!zstdErr || !exited(zstdErr) || ZSTD_WRITE_FAILURE.test(zstdErr.stderrText)) return undefined;
      return { corrupt: true, reason: `zstd rejected the archive: ${zstdErr.message}` };
    }
    if (!exited(tarErr) || TAR_LOCAL_FAILURE.test(tarErr.stderrText)) return { corrupt: false, reason: tarErr.message };
    if (zstdErr && exited(zstdErr) && !ZSTD_WRITE_FAILURE.test(zstdErr.stderrText)) return { corrupt: true, reason: `zstd rejected the archive: ${zstdErr.message}` };
    if (TAR_FORMAT_FAILURE.test(tarErr.stderrText)) return { corrupt: true, reason: `tar rejected the archive: ${tarErr.message}` };
    return { corrupt: false, reason: tarErr.message };
  }

  /**
   * Checks an unpacked mirror: HEAD names a commit and every ref's history is present. git
   * exiting non-zero is evidence against the archive; a timeout or cancellation is not.
   */
  private async verifyMirror(repo: Repository, dir: string, signal: AbortSignal): Promise<RestoreFailure | undefined> {
    const checks: Array<[string[], number, string]> = [
      [['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], 60_000, 'HEAD is not a commit'],
      [['fsck', '--connectivity-only', '--no-progress', '--no-dangling'], GENERATION_TIMEOUT_MS, 'fsck failed'],
    ];
    for (const [args, timeoutMs, what] of checks) {
      try {
        await repo.git(['-C', dir, ...args], { timeoutMs, signal });
      } catch (err) {
        const exited = err instanceof ChildProcessError && err.exitCode !== null && err.killedBy === undefined;
        return { corrupt: exited && !signal.aborted, reason: `${what}: ${(err as Error).message}` };
      }
    }
    return undefined;
  }

  /** True when a mirror snapshot is cached (a restore could start from it). */
  async hasMirrorSnapshot(repo: Repository): Promise<boolean> {
    return this.deps.cache.stat(artifactKey(repo.upstreamURL, 'mirror-snapshot')).then(
      () => true,
      () => false,
    );
  }

  /**
   * Tars the bare mirror (fetches held back meanwhile) into the cache, unless the cached one
   * already holds HEAD and is younger than `maxAgeMs`. Returns HEAD, or undefined when skipped.
   */
  async generateMirror(repo: Repository, opts: GenerateOptions = {}): Promise<string | undefined> {
    return repo.withFetchesExcluded(async () => {
      const head = await repo.head();
      const key = artifactKey(repo.upstreamURL, 'mirror-snapshot');
      if (await this.unchanged(key, head, opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS)) return undefined;
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
    // HEAD answers from what is cached: producing a bundle (and fetching upstream) for a request
    // that discards the body would be all cost and no use.
    if (req.method === 'HEAD') return sendText(res, 404, 'Bundle not cached');
    const signal = requestSignal(res);
    try {
      await holdingConnection(res, () => this.deps.ensureReady(repo, signal));
    } catch (err) {
      return sendAnswer(res, mirrorNotReadyAnswer(err));
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

  /**
   * LFS snapshot (§2.6), served through the same conditional/range-aware path as every artifact.
   * A GET miss answers 404 at once and, when the mirror is Empty, starts its clone so the periodic
   * LFS job can produce the artifact later. The clone is started directly rather than from a job
   * on the repository's queue: the clone itself runs on that queue, so a queued job waiting for
   * it would wait for ever and leave the repository stuck Cloning.
   */
  private async serveLfsSnapshot(req: IncomingMessage, res: ServerResponse, repo: Repository): Promise<void> {
    if (await sendCacheObject(this.deps.cache, artifactKey(repo.upstreamURL, 'lfs-snapshot'), req, res)) return;
    sendText(res, 404, 'LFS snapshot not found');
    // HEAD never warms a mirror (as for snapshots, #337).
    if (req.method === 'HEAD' || repo.state !== 'empty') return;
    this.deps.ensureReady(repo, new AbortController().signal).catch((err: Error) => {
      this.deps.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'LFS warm-up clone failed');
    });
  }

  private async ensureRefs(req: IncomingMessage, res: ServerResponse, repo: Repository): Promise<void> {
    let body: { refs?: Record<string, string>; commits?: string[] };
    try {
      let raw: Buffer;
      try {
        raw = await readBoundedBody(req, ENSURE_REFS_MAX_BODY);
      } catch (err) {
        if (err instanceof BodyTooLargeError) return answerAndClose(req, res, 413, `request body too large: ensure-refs takes at most ${ENSURE_REFS_MAX_BODY} bytes`);
        if (err instanceof BodyIncompleteError) return;
        throw err;
      }
      body = JSON.parse(raw.toString() || 'null') as typeof body;
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
      await holdingConnection(res, () => this.deps.ensureReady(repo, signal));
    } catch (err) {
      return sendAnswer(res, mirrorNotReadyAnswer(err));
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
        if (upstreamLacksRepository(err)) return sendText(res, 404, `repository not found: the upstream has no repository ${repo.upstreamURL}`);
        return sendText(res, 502, withoutServerPaths(`ensure refs: ${(err as Error).message}`));
      }
      result = await check();
    }
    sendJson(res, 200, { refs: result.local, missing_commits: result.missing, fetched });
  }
}

/**
 * The answer for a request that needed the mirror when it could not be made ready: 404 when the
 * upstream does not have the repository, 507 when the disk is full, else 502 with the cause (a refused redirect names the
 * refused host), never a server path.
 */
function mirrorNotReadyAnswer(err: unknown): ErrorAnswer {
  if (err instanceof UpstreamRepositoryMissingError) return { status: 404, message: `repository not found: ${err.message}` };
  if (isOutOfSpace(err)) return failureAnswer(err, 'clone');
  return { status: 502, message: withoutServerPaths(`clone not ready: ${(err as Error).message}`) };
}

function sendAnswer(res: ServerResponse, answer: ErrorAnswer): void {
  sendText(res, answer.status, answer.message);
}

function snapshotHeaders(commit: string, filename: string): Record<string, string> {
  return { 'content-type': 'application/zstd', 'content-disposition': `attachment; filename="${filename}"`, [SNAPSHOT_COMMIT_HEADER]: commit };
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
