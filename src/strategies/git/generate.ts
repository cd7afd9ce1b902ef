import { promises as fs } from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import type { CacheKey } from '../../cache/key.js';
import { createArchive } from '../../util/archive.js';
import { failureAnswer } from '../../http/error-answer.js';
import { scratchPath } from '../../util/scratch.js';
import { InFlight } from '../../util/single-flight.js';
import { teeInto } from '../../util/tee.js';
import { Spool, SpoolUnavailableError, type SpoolSource } from '../shared/spool.js';
import { GENERATION_TIMEOUT_MS, SNAPSHOT_COMMIT_HEADER, artifactKey, sendAnswer, snapshotHeaders } from './artifacts.js';
import type { Repository } from './repository.js';

/** Default `snapshot-max-age`: an unchanged snapshot is still regenerated after this long. */
const DEFAULT_MAX_AGE_MS = 24 * 3_600_000;

/** Options of periodic snapshot generation. */
export interface GenerateOptions {
  /**
   * An unchanged snapshot (same commit) is skipped only while younger than this (`snapshot-max-age`);
   * 0 disables skipping, so every run regenerates.
   */
  maxAgeMs?: number;
}

/** What generation needs: where to write, with how many zstd threads. */
export interface GeneratorOptions {
  cache: Cache;
  logger: Logger;
  /** Scratch space on the mirrors' filesystem (local clones hardlink the mirror's objects). */
  scratchRoot: string;
  zstdThreads: number;
}

/**
 * Workstation and mirror snapshot generation (reference git §4): `git clone` of the mirror through
 * `tar | zstd` into the cache. A miss is generated on demand, streamed to every concurrent caller
 * from one spool and teed into the cache, which commits only if the archive completed.
 */
export class SnapshotGenerator {
  /** On-demand generations in flight, by upstream URL: callers follow the live spool as it fills. */
  private readonly generating = new InFlight<Spool>();

  constructor(private readonly opts: GeneratorOptions) {}

  /** Streams an on-demand generation; concurrent callers follow the same one. */
  async serveOnDemand(res: ServerResponse, repo: Repository): Promise<void> {
    const spool = this.generating.join(
      repo.upstreamURL,
      () => {
        // One log line per generation: operators (and tests) can see that concurrent misses share one.
        this.opts.logger.info({ upstream: repo.upstreamURL }, 'generating snapshot on demand');
        return Spool.start(scratchPath(this.opts.scratchRoot, 'snapshot-spool-'), () => this.generationSource(repo));
      },
      (started) => started.finished(),
      (done) => void done.dispose(),
    );
    try {
      await spool.serve(res);
    } catch (err) {
      if (err instanceof SpoolUnavailableError && !res.headersSent) {
        this.opts.logger.error({ err: err.message, upstream: repo.upstreamURL }, 'snapshot generation failed');
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
    const writer = this.opts.cache.create(artifactKey(repo.upstreamURL, 'snapshot'), snapshotHeaders(commit, 'base.tar.zst'));
    // Commits only at EOF and once the archiver exited cleanly, so a failing tar or zstd never
    // publishes; a failing cache write only costs the copy, the spool still gets every byte.
    const tee = teeInto(writer, {
      beforeCommit: () => done,
      onAbandon: (err) => this.opts.logger.warn({ err, upstream: repo.upstreamURL }, 'snapshot cache write failed; serving without caching'),
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
    const work = scratchPath(this.opts.scratchRoot, 'snapshot-');
    const checkout = path.join(work, 'repo');
    const cleanup = () => fs.rm(work, { recursive: true, force: true }).catch(() => undefined);
    try {
      await fs.mkdir(work, { recursive: true });
      // A local clone hardlinks the mirror's objects: cheap, and a clean object store.
      await repo.git(['clone', '-q', '--', repo.mirrorDir, checkout], { timeoutMs: GENERATION_TIMEOUT_MS, allowLocal: true });
      await repo.git(['-C', checkout, 'remote', 'set-url', 'origin', repo.upstreamURL], { timeoutMs: 30_000 });
      const commit = (await repo.git(['-C', checkout, 'rev-parse', 'HEAD'], { timeoutMs: 30_000 })).trim();
      const archive = createArchive(checkout, ['.'], { threads: this.opts.zstdThreads });
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
    const cached = await this.opts.cache.statAuthoritative(key).catch(() => undefined);
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
    const writer = this.opts.cache.create(key, snapshotHeaders(commit, 'base.tar.zst'));
    await Promise.all([pipeline(stream, writer), done]).catch((err: Error) => {
      writer.destroy(err);
      throw err;
    });
    return commit;
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
      const archive = createArchive(repo.mirrorDir, ['.'], { exclude: ['*.lock'], threads: this.opts.zstdThreads });
      const writer = this.opts.cache.create(key, snapshotHeaders(head, `${path.basename(repo.mirrorDir, '.git')}.tar.zst`));
      await Promise.all([pipeline(archive.stream, writer), archive.done]).catch((err: Error) => {
        writer.destroy(err);
        throw err;
      });
      return head;
    });
  }
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
