import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import { ChildProcessError } from '../../util/process.js';
import { ExtractError, extractArchive } from '../../util/archive.js';
import { GENERATION_TIMEOUT_MS, artifactKey } from './artifacts.js';
import type { Repository } from './repository.js';

/** The cached mirror snapshot could not be restored (bad archive or not a repository); it was discarded. */
export class CorruptMirrorSnapshotError extends Error {}

/** How an extraction or verification of a mirror snapshot failed. */
type RestoreFailure = { corrupt: boolean; reason: string };

/**
 * Restores a bare mirror from its cached mirror snapshot (reference git §3.2, §4.1) and checks
 * the result is a sound repository before the mirror lifecycle may use it.
 */
export class MirrorRestorer {
  constructor(
    private readonly cache: Cache,
    private readonly logger: Logger,
  ) {}

  /**
   * Extracts the cached mirror snapshot into `target` and checks it is a sound repository.
   * Resolves 'absent' when none is cached or the cache cannot be opened (the caller decides
   * whether to clone instead). Only evidence that the archive itself is bad — zstd or tar
   * rejecting its format, no HEAD commit in what it unpacked, a failed fsck — deletes it from the
   * cache (CorruptMirrorSnapshotError), so it is never restored again. A failure of the read from
   * the cache, of the local disk, a timeout or a cancellation leaves it alone and throws a plain
   * error: the next attempt may well succeed from the same object.
   */
  async restore(repo: Repository, target: string, signal: AbortSignal): Promise<'restored' | 'absent'> {
    const key = artifactKey(repo.upstreamURL, 'mirror-snapshot');
    let opened;
    try {
      opened = await this.cache.open(key, { signal });
    } catch (err) {
      if (!isCacheError(err, 'not-found')) this.logger.warn({ err, upstream: repo.upstreamURL }, 'mirror snapshot unreadable; treating it as absent');
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
      this.logger.warn({ upstream: repo.upstreamURL, reason: failure.reason }, 'mirror snapshot restore failed; keeping the snapshot');
      throw new Error(`mirror snapshot restore of ${repo.upstreamURL} failed: ${failure.reason}`);
    }
    this.logger.error({ upstream: repo.upstreamURL, reason: failure.reason }, 'mirror snapshot is corrupt; discarding it');
    await this.cache.delete(key).catch(() => undefined);
    throw new CorruptMirrorSnapshotError(`mirror snapshot of ${repo.upstreamURL} is corrupt: ${failure.reason}`);
  }

  /**
   * Unpacks `source` into `dir`, returning why it failed (undefined on success). Only zstd or
   * tar rejecting the bytes (`corrupt`) is evidence against the archive (util/archive.ts).
   */
  private async extractMirror(source: Readable, dir: string, signal: AbortSignal): Promise<RestoreFailure | undefined> {
    try {
      await extractArchive(source, dir, { signal, timeoutMs: GENERATION_TIMEOUT_MS });
      return undefined;
    } catch (err) {
      if (err instanceof ExtractError && err.side === 'reader') return { corrupt: false, reason: `reading the snapshot from the cache failed: ${(err.cause as Error).message}` };
      if (err instanceof ExtractError) return { corrupt: err.corrupt, reason: err.reason };
      return { corrupt: false, reason: (err as Error).message };
    }
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
  async has(repo: Repository): Promise<boolean> {
    return this.cache.stat(artifactKey(repo.upstreamURL, 'mirror-snapshot')).then(
      () => true,
      () => false,
    );
  }
}
