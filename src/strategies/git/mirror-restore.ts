import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import { ChildProcessError, startChild } from '../../util/process.js';
import { GENERATION_TIMEOUT_MS, artifactKey } from './artifacts.js';
import type { Repository } from './repository.js';

/**
 * stderr of a tar that failed because of the local filesystem (full disk, quota, permissions),
 * not because of what it was reading: such a failure says nothing about the archive.
 */
const TAR_LOCAL_FAILURE = /No space left|Wrote only \d+ of|File too large|Disk quota|Read-only file system|Permission denied|Too many open files|Input\/output error|Cannot (?:open|write|mkdir|create|utime|change|hard link|link|chmod|chown)/i;
/** stderr of a tar that rejected its input as a tar archive. */
const TAR_FORMAT_FAILURE = /does not look like a tar archive|Skipping to next header|Unexpected EOF in archive|Damaged tar archive|Truncated tar archive|Unrecognized archive format|lone zero block|value expected|Invalid header|Archive (?:contains|value)/i;
/** stderr of a zstd that could not write its output (tar went away), as opposed to bad input. */
const ZSTD_WRITE_FAILURE = /Write error|Broken pipe|EPIPE/i;

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
  async has(repo: Repository): Promise<boolean> {
    return this.cache.stat(artifactKey(repo.upstreamURL, 'mirror-snapshot')).then(
      () => true,
      () => false,
    );
  }
}
