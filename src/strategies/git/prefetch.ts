import type { Logger } from 'pino';
import { InvalidGitPathError, parseGitPath, type GitRequestPath } from './paths.js';
import type { Repository } from './repository.js';

/** Longest wait between attempts to prefetch a repository while its upstream keeps failing. */
export const PREFETCH_RETRY_MAX_MS = 30 * 60_000;

const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** Characters a request path must percent-encode but a config file may write as they are. */
const LITERAL = /[ \u0080-\uffff]/gu;

/**
 * Reads one `prefetch` entry, `host/repository` as it follows `/git/` in a request path, with the
 * very rules requests get (parseGitPath): a prefetched name is one a client could ask for, and gets
 * the same mirror. Spaces and non-ASCII may be written as they are (a request has them
 * percent-encoded); percent-escapes are decoded as in a request. Throws InvalidGitPathError.
 */
export function parsePrefetchEntry(entry: string): GitRequestPath {
  if (SCHEME.test(entry)) throw new InvalidGitPathError(`write host/repository without a scheme (e.g. ${JSON.stringify(entry.replace(SCHEME, ''))})`);
  let raw: string;
  try {
    raw = entry.replace(LITERAL, (ch) => encodeURIComponent(ch));
  } catch {
    throw new InvalidGitPathError('not valid Unicode text');
  }
  const parsed = parseGitPath(raw);
  if (parsed.operation) throw new InvalidGitPathError(`names ${JSON.stringify(parsed.operation)} after the repository; list the repository only (host/repository)`);
  return parsed;
}

/** What the prefetcher needs from the git strategy. */
export interface PrefetchOptions {
  /** The validated entries (the config schema already refused bad ones). */
  entries: readonly GitRequestPath[];
  /** The repository record for an entry (the one requests use). */
  repository: (parsed: GitRequestPath) => Repository;
  /** Starts or joins the clone (through the scheduler, under the clone cap); resolves once Ready. */
  ensureReady: (repo: Repository, signal: AbortSignal) => Promise<void>;
  /**
   * Makes sure a workstation snapshot of the Ready repository exists: `discovered` says the mirror
   * predates this run (so it may lag upstream until its start-up fetch).
   */
  snapshot: (repo: Repository, discovered: boolean) => Promise<void>;
  /** Delay before the first retry after a failed attempt; doubles per failure up to PREFETCH_RETRY_MAX_MS. */
  firstRetryMs: number;
  logger: Logger;
}

/**
 * Warms the `prefetch` repositories from start-up, in the background: each is cloned (or, with a
 * mirror left by a previous run, kept) and gets its snapshot, without waiting for a client. A
 * failed attempt (upstream down, say) is logged and retried with doubling backoff; nothing here
 * ever blocks or fails start-up. Keeping the mirrors fresh afterwards is the refresher's job (the
 * strategy pins these repositories there, so `refresh-idle` never stops them).
 */
export class Prefetcher {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly abort = new AbortController();

  constructor(private readonly opts: PrefetchOptions) {}

  /** Starts every entry's warm-up; returns at once. */
  start(): void {
    for (const parsed of this.opts.entries) {
      const discovered = this.opts.repository(parsed).state === 'ready';
      this.attempt(parsed, discovered, 0);
    }
  }

  /** Cancels pending retries and waits in progress; running jobs end with the scheduler's drain. */
  close(): void {
    this.abort.abort();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private attempt(parsed: GitRequestPath, discovered: boolean, failures: number): void {
    if (this.abort.signal.aborted) return;
    // Looked up per attempt: a failed clone drops the repository's record.
    const repo = this.opts.repository(parsed);
    const { logger } = this.opts;
    void (async () => {
      await this.opts.ensureReady(repo, this.abort.signal);
      await this.opts.snapshot(repo, discovered);
    })().then(
      () => logger.info({ upstream: repo.upstreamURL, attempts: failures + 1 }, 'prefetched: mirror ready, snapshot made or scheduled'),
      (err: Error) => {
        if (this.abort.signal.aborted) return;
        // Floored so a zero setting cannot spin; 2 ** failures may overflow to Infinity, which Math.min caps.
        const retryInMs = Math.min(PREFETCH_RETRY_MAX_MS, Math.max(100, this.opts.firstRetryMs) * 2 ** failures);
        logger.warn({ upstream: repo.upstreamURL, err: err.message, failures: failures + 1, retryInMs }, 'prefetch failed; will retry');
        const timer = setTimeout(() => {
          this.timers.delete(timer);
          this.attempt(parsed, discovered, failures + 1);
        }, retryInMs);
        // A pending retry must never keep the process alive.
        timer.unref();
        this.timers.add(timer);
      },
    );
  }
}
