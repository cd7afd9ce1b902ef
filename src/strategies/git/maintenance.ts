import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { JobFn } from '../../jobs/scheduler.js';
import type { Repository } from './repository.js';

/**
 * How often each mirror is maintained. Fixed, like the hourly schedule `git maintenance start`
 * gives these same tasks: fetches add a pack each, and an hour of them is a cheap incremental
 * repack. A run finds nothing to do (and returns after a few stats) while no pack changed.
 */
export const MAINTENANCE_INTERVAL_MS = 3_600_000;

/**
 * git's maintenance tasks that help a served mirror (git 2.39): `loose-objects` packs stray loose
 * objects (so the bitmap below has every object in a pack), `commit-graph` merges the incremental
 * graphs fetches write, `incremental-repack` folds the small packs fetches leave into one and keeps
 * the multi-pack-index. Not `gc` (a full repack of a large mirror stalls upload-pack for minutes)
 * and never `prefetch` (it would fetch into refs/prefetch/, which a mirror would then advertise).
 */
export const MAINTENANCE_TASKS = ['loose-objects', 'commit-graph', 'incremental-repack'] as const;

/** Lock files a killed maintenance run leaves behind; any of them blocks every later run (cachew #278). */
const LOCK_FILES = ['objects/maintenance.lock', 'objects/pack/multi-pack-index.lock', 'objects/info/commit-graphs/commit-graph-chain.lock', 'objects/info/commit-graph.lock'];

/** Settings of mirror maintenance (from the `git-clone` block). */
export interface MaintenanceOptions {
  /** `maintenance = true`. */
  enabled: boolean;
  /** Deadline of one run (repack-timeout); the process group is killed when it passes. */
  timeoutMs: number;
  /** pack.threads while repacking (repack-threads; 0 = git's default). */
  threads: number;
  /** Registers a periodic job on the repository's own queue (the scheduler's `periodic`). */
  periodic: (repo: Repository, id: string, intervalMs: number, job: JobFn, firstDelayMs: number) => void;
  logger: Logger;
}

/** Removes the maintenance lock files last modified before `olderThanMs` (epoch ms). */
async function removeLocks(mirrorDir: string, olderThanMs: number): Promise<void> {
  await Promise.all(
    LOCK_FILES.map(async (lock) => {
      const file = path.join(mirrorDir, lock);
      const stat = await fs.stat(file).catch(() => undefined);
      if (stat && stat.mtimeMs < olderThanMs) await fs.rm(file, { force: true });
    }),
  );
}

/**
 * True when the mirror needs no maintenance: a multi-pack-index bitmap exists that is at least as
 * new as every pack, and no loose-object directory exists. Read from the files, so it holds across
 * restarts.
 */
async function upToDate(mirrorDir: string): Promise<boolean> {
  const packDir = path.join(mirrorDir, 'objects', 'pack');
  const names = await fs.readdir(packDir).catch(() => [] as string[]);
  const bitmap = names.find((n) => n.startsWith('multi-pack-index-') && n.endsWith('.bitmap'));
  if (!bitmap) return false;
  const bitmapTime = (await fs.stat(path.join(packDir, bitmap))).mtimeMs;
  for (const name of names) {
    if (name.endsWith('.pack') && (await fs.stat(path.join(packDir, name))).mtimeMs > bitmapTime) return false;
  }
  const objects = await fs.readdir(path.join(mirrorDir, 'objects'));
  return !objects.some((n) => /^[0-9a-f]{2}$/.test(n));
}

/**
 * Runs one maintenance pass on a mirror: the git maintenance tasks above, `prune-packed`, then a
 * multi-pack-index bitmap (incremental-repack writes the index without one, and upload-pack needs a bitmap to
 * answer a full clone without walking every object). Holds the repository's fetch exclusion: a
 * fetch writes packs and commit-graph files too (fetch.writeCommitGraph), so the two would fight
 * over the same locks, and a mirror snapshot must never tar packs that are being replaced. One
 * deadline covers the whole pass; after a failure the locks git may have left are removed (this
 * pass was their only possible holder: fetches are excluded and repacks share the queue).
 */
export async function maintainMirror(repo: Repository, signal: AbortSignal, opts: Pick<MaintenanceOptions, 'timeoutMs' | 'threads'>): Promise<'maintained' | 'unchanged'> {
  return repo.withFetchesExcluded(async () => {
    // A lock older than a whole run's deadline is left from a crash: `git maintenance run` skips
    // every task (and exits 0) while objects/maintenance.lock exists, so it must not stay.
    await removeLocks(repo.mirrorDir, Date.now() - opts.timeoutMs);
    if (await upToDate(repo.mirrorDir)) return 'unchanged';
    const deadline = Date.now() + opts.timeoutMs;
    const remaining = () => Math.max(1, deadline - Date.now());
    const config = [
      '-c', 'core.multiPackIndex=true',
      '-c', 'core.commitGraph=true',
      // The mirror's serving settings (1g window, 512m delta cache, all cores) would make a repack
      // of a large mirror need tens of GB; these bound it (cachew #302).
      '-c', 'pack.windowMemory=256m',
      '-c', 'pack.deltaCacheSize=128m',
      ...(opts.threads > 0 ? ['-c', `pack.threads=${opts.threads}`] : []),
    ];
    try {
      await repo.git(['-C', repo.mirrorDir, ...config, 'maintenance', 'run', '--quiet', ...MAINTENANCE_TASKS.map((t) => `--task=${t}`)], { timeoutMs: remaining(), signal });
      // loose-objects deletes the loose copies of what it packed only on its next run; they are
      // packed now, so delete them at once (and the next run finds the mirror up to date).
      await repo.git(['-C', repo.mirrorDir, 'prune-packed', '--quiet'], { timeoutMs: remaining(), signal });
      await repo.git(['-C', repo.mirrorDir, ...config, 'multi-pack-index', 'write', '--bitmap', '--no-progress'], { timeoutMs: remaining(), signal });
    } catch (err) {
      await removeLocks(repo.mirrorDir, Infinity);
      throw err;
    }
    return 'maintained';
  });
}

/**
 * `maintenance = true`: one periodic maintenance job per Ready mirror on the repository's queue
 * (serialised with its clone, snapshots and repacks), the first as soon as the mirror is Ready
 * (a fresh clone has no multi-pack-index, bitmap or commit-graph yet), then every hour.
 */
export class MirrorMaintenance {
  private readonly scheduled = new Set<string>();

  constructor(private readonly opts: MaintenanceOptions) {}

  /** Schedules maintenance of a Ready repository (idempotent; nothing when disabled). */
  start(repo: Repository): void {
    if (!this.opts.enabled || this.scheduled.has(repo.upstreamURL)) return;
    this.scheduled.add(repo.upstreamURL);
    this.opts.periodic(
      repo,
      'maintenance',
      MAINTENANCE_INTERVAL_MS,
      async (signal) => {
        const started = Date.now();
        const outcome = await maintainMirror(repo, signal, this.opts);
        this.opts.logger.info({ upstream: repo.upstreamURL, outcome, ms: Date.now() - started }, 'mirror maintenance');
      },
      0,
    );
  }
}
