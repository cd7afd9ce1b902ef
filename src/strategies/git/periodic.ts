import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Scheduler } from '../../jobs/scheduler.js';
import type { GlobalSettings } from '../../http/strategy.js';
import type { MetadataStore } from '../../metadata/store.js';
import type { GitConfig } from './config.js';
import type { SnapshotGenerator } from './generate.js';
import { MirrorMaintenance } from './maintenance.js';
import type { Mirrors } from './mirrors.js';
import type { Repository } from './repository.js';

/** Metadata namespace of cross-replica snapshot generation claims. */
const CLAIMS_NAMESPACE = 'git-snapshot-claims';

/** What the periodic jobs are built from. */
export interface PeriodicOptions {
  config: GitConfig;
  clone: GlobalSettings['git-clone'];
  scheduler: Scheduler;
  metadata: MetadataStore;
  logger: Logger;
  generator: SnapshotGenerator;
  mirrors: Mirrors;
}

/**
 * The periodic jobs of each Ready mirror (reference git §4.5): workstation and mirror snapshots
 * every interval (one replica per interval, by a claim in the metadata store), geometric repacks
 * and maintenance. Armed once per repository when the mirror lifecycle reports it ready.
 */
export class PeriodicJobs {
  private readonly armed = new Set<string>();
  private readonly maintenance: MirrorMaintenance;
  /** Identifies this replica in generation claims. */
  private readonly replicaId = randomUUID();

  constructor(private readonly opts: PeriodicOptions) {
    const { clone, scheduler, logger } = opts;
    this.maintenance = new MirrorMaintenance({
      enabled: clone.maintenance,
      timeoutMs: clone['repack-timeout'],
      threads: clone['repack-threads'],
      periodic: (repo, id, intervalMs, job, firstDelayMs) => scheduler.periodic(repo.upstreamURL, id, intervalMs, job, firstDelayMs),
      logger,
    });
    // A discovered mirror whose start-up fetch failed still gets maintenance, but no snapshot of
    // last run's HEAD until a fetch succeeds and something arms it.
    opts.mirrors.onReady((repo, fetched) => (fetched ? this.arm(repo) : this.maintenance.start(repo)));
  }

  /** Periodic jobs for a Ready repository: maintenance, repacks, and snapshots when snapshot-interval > 0. */
  arm(repo: Repository): void {
    const { config, scheduler, logger, generator } = this.opts;
    const interval = config['snapshot-interval'];
    if (this.armed.has(repo.upstreamURL)) return;
    this.armed.add(repo.upstreamURL);
    this.maintenance.start(repo);
    const repackInterval = config['repack-interval'];
    if (repackInterval > 0) {
      // First repack one interval after Ready: a fresh clone is already one well-packed pack.
      scheduler.periodic(repo.upstreamURL, 'repack', repackInterval, (signal) => repo.repack(signal), repackInterval);
    }
    if (interval <= 0) return;
    const maxAgeMs = config['snapshot-max-age'];
    scheduler.periodic(repo.upstreamURL, 'snapshot', interval, async () => {
      if (!(await this.claimGeneration(repo, 'snapshot', interval))) return;
      // A failed pre-fetch (upstream briefly down) must not cost the interval's snapshot: the
      // mirror still holds what it last fetched, which is worth publishing (§4.5, #366).
      await repo.fetch().catch((err: Error) => logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'fetch before the workstation snapshot failed; snapshotting the mirror as it is'));
      const commit = await generator.generateWorkstation(repo, { maxAgeMs });
      logger.info({ upstream: repo.upstreamURL, commit: commit ?? 'unchanged' }, 'workstation snapshot');
    });
    const mirrorInterval = config['mirror-snapshot-interval'] || interval;
    scheduler.periodic(repo.upstreamURL, 'mirror-snapshot', mirrorInterval, async () => {
      if (!(await this.claimGeneration(repo, 'mirror-snapshot', mirrorInterval))) return;
      const commit = await generator.generateMirror(repo, { maxAgeMs });
      logger.info({ upstream: repo.upstreamURL, commit: commit ?? 'unchanged' }, 'mirror snapshot');
    });
  }

  /**
   * The first workstation snapshot of a prefetched Ready repository. With snapshot-interval set,
   * the periodic job makes it (first run at once; armed here too, idempotently, for a mirror of
   * a previous run whose start-up fetch failed and so never armed it); otherwise it is made here,
   * once, on the repository's queue. A mirror from a previous run is fetched first (joining its
   * start-up fetch) so the snapshot is not of last run's HEAD; an unchanged cached one is kept.
   */
  async prefetchSnapshot(repo: Repository, discovered: boolean): Promise<void> {
    const { config, scheduler, logger, generator } = this.opts;
    if (config['snapshot-interval'] > 0) return this.arm(repo);
    await scheduler.submit(repo.upstreamURL, 'prefetch-snapshot', async () => {
      if (discovered) await repo.fetch().catch((err: Error) => logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'fetch before the prefetch snapshot failed; snapshotting the mirror as it is'));
      const commit = await generator.generateWorkstation(repo, { maxAgeMs: config['snapshot-max-age'] });
      logger.info({ upstream: repo.upstreamURL, commit: commit ?? 'unchanged' }, 'workstation snapshot');
    });
  }

  /**
   * One replica generates each artifact per interval: the claim lasts slightly less than the
   * interval so the holder renews it on its next run, and a crashed holder's claim lapses.
   * An unreachable metadata store means generating anyway (duplicate work beats no snapshots).
   */
  private async claimGeneration(repo: Repository, kind: string, intervalMs: number): Promise<boolean> {
    try {
      const won = await this.opts.metadata.claim(CLAIMS_NAMESPACE, `${repo.upstreamURL}#${kind}`, this.replicaId, Math.max(1_000, intervalMs - Math.min(intervalMs / 10, 60_000)));
      if (!won) this.opts.logger.debug({ upstream: repo.upstreamURL, kind }, 'another replica generates this interval');
      return won;
    } catch (err) {
      this.opts.logger.warn({ err, upstream: repo.upstreamURL, kind }, 'generation claim failed; generating anyway');
      return true;
    }
  }
}
