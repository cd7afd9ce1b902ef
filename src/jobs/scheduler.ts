import os from 'node:os';
import type { Logger } from 'pino';
import { telemetry } from '../util/telemetry.js';

/** A unit of background work. `signal` aborts when the scheduler stops. */
export type JobFn = (signal: AbortSignal) => Promise<void>;

interface Job {
  id: string;
  queue: string;
  clone: boolean;
  run: JobFn;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Scheduler limits (reference git §6.7). */
export interface SchedulerOptions {
  /** Workers; 0 = the CPUs this process may use (`os.availableParallelism()`). */
  concurrency: number;
  /**
   * Clone-like jobs at once; 0 = max(1, workers/2), or no cap with a single worker (as cachew:
   * clones never take every worker, so fetches and snapshots keep running during a clone storm).
   */
  maxCloneConcurrency: number;
  /** Jobs waiting in all queues together; submissions beyond it are rejected. */
  maxPending?: number;
  logger: Logger;
}

/**
 * Background jobs: at most one running job per queue name (a repository's work is serial),
 * `concurrency` jobs in total, and a separate cap on clones so a clone storm cannot starve
 * fetches and snapshots. Periodic jobs re-arm after each run. `drain` stops intake and waits.
 */
export class Scheduler {
  private readonly pending: Job[] = [];
  private readonly busyQueues = new Set<string>();
  private running = 0;
  private runningClones = 0;
  private readonly workers: number;
  private readonly cloneCap: number;
  private readonly maxPending: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly controller = new AbortController();
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  private readonly unwatch: () => void;

  constructor(private readonly opts: SchedulerOptions) {
    // os.availableParallelism follows the CPU affinity mask (Node 20 has no `navigator`).
    this.workers = opts.concurrency > 0 ? opts.concurrency : Math.max(1, os.availableParallelism());
    this.cloneCap = opts.maxCloneConcurrency > 0 ? opts.maxCloneConcurrency : this.workers === 1 ? Infinity : Math.max(1, Math.floor(this.workers / 2));
    this.maxPending = opts.maxPending ?? 10_000;
    this.unwatch = telemetry().watchQueue(this);
  }

  /** Workers actually used (after resolving `concurrency = 0`). */
  get workerCount(): number {
    return this.workers;
  }

  /** Clone-like jobs allowed at once (after resolving `max-clone-concurrency = 0`). */
  get cloneLimit(): number {
    return this.cloneCap;
  }

  /** Number of queued (not yet running) jobs. */
  get depth(): number {
    return this.pending.length;
  }

  /**
   * Queues `run` on `queue`; resolves when it finished. Clone-like jobs (`clone: true`) count
   * against the clone cap. Rejects at once after drain started or when the backlog is full.
   */
  submit(queue: string, id: string, run: JobFn, opts: { clone?: boolean } = {}): Promise<void> {
    if (this.draining) return Promise.reject(new Error(`scheduler is shutting down; job ${id} not accepted`));
    if (this.pending.length >= this.maxPending) return Promise.reject(new Error(`job backlog full (${this.maxPending}); job ${id} rejected`));
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ id, queue, clone: opts.clone ?? false, run, resolve, reject });
      this.pump();
    });
  }

  /** Runs `run` every `intervalMs` on `queue`, first after `firstDelayMs` (default: at once). */
  periodic(queue: string, id: string, intervalMs: number, run: JobFn, firstDelayMs = 0): void {
    if (intervalMs <= 0 || this.draining) return;
    const arm = (delay: number) => {
      if (this.draining) return;
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.submit(queue, id, run)
          .catch((err: Error) => this.opts.logger.warn({ err, job: id, queue }, 'periodic job failed'))
          .finally(() => arm(intervalMs));
      }, delay);
      timer.unref();
      this.timers.add(timer);
    };
    arm(firstDelayMs);
  }

  private pump(): void {
    while (this.running < this.workers) {
      const index = this.pending.findIndex((job) => !this.busyQueues.has(job.queue) && (!job.clone || this.runningClones < this.cloneCap));
      if (index === -1) break;
      const [job] = this.pending.splice(index, 1);
      if (job) this.start(job);
    }
    if (this.running === 0 && this.pending.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private start(job: Job): void {
    this.running++;
    if (job.clone) this.runningClones++;
    this.busyQueues.add(job.queue);
    const started = Date.now();
    const finish = (ok: boolean) => {
      telemetry().job(job.id, (Date.now() - started) / 1000, ok);
      this.running--;
      if (job.clone) this.runningClones--;
      this.busyQueues.delete(job.queue);
      this.pump();
    };
    Promise.resolve()
      .then(() => job.run(this.controller.signal))
      .then(
        () => {
          this.opts.logger.debug({ job: job.id, queue: job.queue, ms: Date.now() - started }, 'job done');
          finish(true);
          job.resolve();
        },
        (err: unknown) => {
          const error = err instanceof Error ? err : new Error(String(err));
          this.opts.logger.warn({ err: error, job: job.id, queue: job.queue }, 'job failed');
          finish(false);
          job.reject(error);
        },
      );
  }

  /**
   * Stops intake and periodic re-arming, lets queued and running jobs finish for up to
   * `timeoutMs`, then aborts the rest.
   */
  async drain(timeoutMs = 10_000): Promise<void> {
    this.draining = true;
    this.unwatch();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    if (this.running > 0 || this.pending.length > 0) {
      const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([idle, timeout]);
      clearTimeout(timer);
    }
    this.controller.abort();
    for (const job of this.pending.splice(0)) job.reject(new Error(`scheduler stopped before job ${job.id} ran`));
  }
}
