import type { Logger } from 'pino';
import type { JobFn } from '../../jobs/scheduler.js';
import type { Repository } from './repository.js';

/** Longest wait between refresh attempts while upstream keeps failing (unless fetch-interval is longer). */
export const REFRESH_BACKOFF_CAP_MS = 3_600_000;
/** Each delay is spread by up to this fraction either way, so mirrors cloned together do not fetch together. */
export const REFRESH_JITTER = 0.1;

/**
 * The wait before the next refresh attempt after `failures` consecutive failed ones: the interval,
 * doubled per failure up to max(interval, REFRESH_BACKOFF_CAP_MS). Without jitter.
 */
export function refreshBackoffMs(intervalMs: number, failures: number): number {
  const cap = Math.max(intervalMs, REFRESH_BACKOFF_CAP_MS);
  // 2 ** failures overflows to Infinity long after it passed the cap; Math.min takes care of it.
  return Math.min(cap, intervalMs * 2 ** Math.max(0, failures));
}

/** What the refresher needs from its strategy. */
export interface RefresherOptions {
  /** fetch-interval; 0 disables the refresher. */
  intervalMs: number;
  /** refresh-idle: stop refreshing a repository no client touched for this long; 0 = never. */
  idleMs: number;
  /** Queues a job on the repository's fetch queue (the scheduler's per-repository serial queue). */
  submit: (repo: Repository, id: string, job: JobFn) => Promise<void>;
  logger: Logger;
  /** Random source in [0, 1) for the jitter (the default is Math.random). */
  random?: () => number;
}

interface Entry {
  repo: Repository;
  timer: NodeJS.Timeout | undefined;
  /** Consecutive failed attempts; drives the backoff. */
  failures: number;
  /** Last client request for the repository (or when the refresher first saw it). */
  touchedAt: number;
  /** Stopped because nobody touched the repository for idleMs; `touch` resumes it. */
  idle: boolean;
  /** A refresh job is queued or running (the timer is re-armed when it ends). */
  running: boolean;
}

/**
 * One background refresher per Ready repository: fetches it about `fetch-interval` after its last
 * fetch, whatever caused that fetch (a ref check's catch-up, ensure-refs, a webhook, a previous
 * refresh), so an unused mirror is not days stale when the next CI job arrives. Each repository has
 * at most one timer and one queued job; the fetch itself goes through `Repository.fetch`, which
 * joins a fetch already running instead of starting another. While upstream fails the delay backs
 * off; a repository untouched for `refresh-idle` stops being refreshed until the next request,
 * unless it is pinned (listed in `prefetch`).
 */
export class Refresher {
  private readonly entries = new Map<string, Entry>();
  /** Upstream URLs `refresh-idle` never stops (the `prefetch` repositories). */
  private readonly pinned = new Set<string>();
  private closed = false;
  private readonly random: () => number;

  constructor(private readonly opts: RefresherOptions) {
    this.random = opts.random ?? Math.random;
  }

  /** True when the refresher does anything (fetch-interval > 0). */
  get enabled(): boolean {
    return this.opts.intervalMs > 0;
  }

  /**
   * Starts refreshing a Ready repository (idempotent). `failures` > 0 starts in backoff, for a
   * repository whose first fetch already failed (start-up with upstream down).
   */
  start(repo: Repository, opts: { failures?: number } = {}): void {
    if (!this.enabled || this.closed || this.entries.has(repo.upstreamURL)) return;
    const entry: Entry = { repo, timer: undefined, failures: opts.failures ?? 0, touchedAt: Date.now(), idle: false, running: false };
    this.entries.set(repo.upstreamURL, entry);
    this.arm(entry);
  }

  /** Keeps a repository refreshed however long no client touches it (before or after `start`). */
  pin(upstreamURL: string): void {
    this.pinned.add(upstreamURL);
  }

  /** Records a client request for the repository; resumes a refresher stopped as idle. */
  /** Epoch ms a client last touched the repository (status page recency); undefined when not tracked. */
  lastTouched(upstreamURL: string): number | undefined {
    return this.entries.get(upstreamURL)?.touchedAt;
  }

  touch(upstreamURL: string): void {
    const entry = this.entries.get(upstreamURL);
    if (!entry) return;
    entry.touchedAt = Date.now();
    if (entry.idle && !this.closed) {
      entry.idle = false;
      this.opts.logger.info({ upstream: upstreamURL }, 'background refresh resumed: the repository is in use again');
      this.arm(entry);
    }
  }

  /** Stops every timer; queued jobs end with the scheduler's drain. */
  close(): void {
    this.closed = true;
    for (const entry of this.entries.values()) if (entry.timer) clearTimeout(entry.timer);
    this.entries.clear();
  }

  /** The delay before the next attempt: backoff after failures, else the rest of the interval since the last fetch. */
  private nextDelay(entry: Entry): number {
    const base = entry.failures > 0 ? refreshBackoffMs(this.opts.intervalMs, entry.failures) : Math.max(0, entry.repo.lastFetch + this.opts.intervalMs - Date.now());
    const spread = base * REFRESH_JITTER * (2 * this.random() - 1);
    return Math.max(0, Math.round(base + spread));
  }

  private arm(entry: Entry): void {
    if (this.closed || entry.timer || entry.running || entry.idle) return;
    const delay = this.nextDelay(entry);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      this.fire(entry);
    }, delay);
    // A pending refresh must never keep the process alive.
    entry.timer.unref();
  }

  private fire(entry: Entry): void {
    if (this.closed) return;
    const url = entry.repo.upstreamURL;
    if (this.opts.idleMs > 0 && !this.pinned.has(url) && Date.now() - entry.touchedAt >= this.opts.idleMs) {
      entry.idle = true;
      this.opts.logger.info({ upstream: url, idleMs: this.opts.idleMs }, 'background refresh stopped: no client request for refresh-idle');
      return;
    }
    const dueAt = Date.now();
    entry.running = true;
    this.opts
      .submit(entry.repo, 'refresh', async (signal) => {
        // A fetch that landed after this refresh fell due (a catch-up queued just before it on
        // the same queue, say) already did its work.
        if (entry.repo.lastFetch >= dueAt) return;
        await entry.repo.fetch({ signal });
      })
      .then(
        () => {
          if (entry.failures > 0) this.opts.logger.info({ upstream: url, failures: entry.failures }, 'background refresh succeeded again');
          entry.failures = 0;
          this.opts.logger.debug({ upstream: url }, 'background refresh done');
        },
        (err: Error) => {
          entry.failures++;
          this.opts.logger.warn(
            { upstream: url, err: err.message, failures: entry.failures, retryInMs: refreshBackoffMs(this.opts.intervalMs, entry.failures) },
            'background refresh failed; backing off',
          );
        },
      )
      .finally(() => {
        entry.running = false;
        if (this.entries.get(url) === entry) this.arm(entry);
      });
  }
}
