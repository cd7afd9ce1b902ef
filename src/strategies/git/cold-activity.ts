import type { Logger } from 'pino';

/** Idle time after the last cold serve before the background mirror restore may start. */
const COLD_QUIET_MS = 2_000;
/**
 * Longest the background mirror restore waits for cold serves to finish: a client that stalls
 * (or a stream of clients that never pauses) must not keep the replica mirror-less forever.
 */
const COLD_WAIT_MAX_MS = 15 * 60_000;

/** Cold serves of one repository: how many run now and when the last one ended. */
interface ColdActivity {
  active: number;
  lastEnded: number;
  /** Some serve found a snapshot: a mirror restore will wait on this entry and then remove it. */
  served: boolean;
  /** Woken whenever a serve ends. */
  waiters: Set<() => void>;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/**
 * Which repositories are being served cold (a snapshot answered while the mirror is not Ready),
 * so that the background mirror restore after a cold serve starts only once they are done and
 * does not compete with them for disk and bandwidth. Shared by the cold-serve path, which counts,
 * and the mirror lifecycle, which waits.
 */
export class ColdServeActivity {
  /** Every cold serve (spooled or direct) per repository, so a mirror restore can wait for them. */
  private readonly activity = new Map<string, ColdActivity>();

  constructor(private readonly logger: Logger) {}

  /**
   * Counts a cold serve of `url` as in flight; the returned function ends it, saying whether a
   * snapshot was found. Entries of repositories that never had one are dropped at once, so a
   * scan of made-up repository paths cannot grow the map.
   */
  started(url: string): (found: boolean) => void {
    let activity = this.activity.get(url);
    if (!activity) {
      activity = { active: 0, lastEnded: 0, served: false, waiters: new Set() };
      this.activity.set(url, activity);
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
      if (!entry.served && entry.active === 0 && entry.waiters.size === 0 && this.activity.get(url) === entry) this.activity.delete(url);
    };
  }

  /**
   * Resolves once no cold serve of the repository has run for a quiet period (a parallel ranged
   * download is many short requests with gaps, and the mirror restore should not compete with it
   * for disk and bandwidth), or after `maxWaitMs` at the latest, so a stalled client cannot hold
   * the restore back for ever. Every cold serve counts, whenever it started.
   */
  async quiet(url: string, maxWaitMs = COLD_WAIT_MAX_MS): Promise<void> {
    const deadline = Date.now() + maxWaitMs;
    for (;;) {
      const activity = this.activity.get(url);
      if (!activity) return;
      const now = Date.now();
      if (now >= deadline) {
        this.logger.warn({ upstream: url, active: activity.active }, 'cold serves still running; not waiting for them any longer');
        return;
      }
      if (activity.active === 0) {
        const quietFor = now - activity.lastEnded;
        if (quietFor >= COLD_QUIET_MS) {
          if (this.activity.get(url) === activity) this.activity.delete(url);
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
}
