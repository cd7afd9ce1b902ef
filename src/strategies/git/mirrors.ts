import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import type { Scheduler } from '../../jobs/scheduler.js';
import type { GlobalSettings } from '../../http/strategy.js';
import { GitMirrorRefusedError, type GitMirror, type GitMirrorManager } from '../../http/git-mirrors.js';
import type { GitHubTokenSource } from '../../github/token-source.js';
import { discardInBackground } from '../../util/discard.js';
import { SpoolSet } from '../shared/spool.js';
import { ColdServeActivity } from './cold-activity.js';
import type { GitConfig } from './config.js';
import { CorruptMirrorSnapshotError, MirrorRestorer } from './mirror-restore.js';
import { InvalidGitPathError, parseGitPath, type GitRequestPath } from './paths.js';
import { Refresher } from './refresher.js';
import { mirrorRelativePath } from './repo-names.js';
import { discoverMirrors } from './discovery.js';
import { upstreamAuthorization } from './upstream-auth.js';
import { UpstreamRules } from './upstream-rules.js';
import { Repository, type RepoSettings } from './repository.js';
import { UpstreamRepositoryMissingError, upstreamLacksRepository } from './upstream-missing.js';
import type { MirrorRefresh } from './webhook.js';

/** Longest wait between retries of a failed mirror restore. */
const RESTORE_RETRY_MAX_MS = 30 * 60_000;

/** What the mirror lifecycle is built from. */
export interface MirrorsOptions {
  config: GitConfig;
  clone: GlobalSettings['git-clone'];
  scheduler: Scheduler;
  cache: Cache;
  logger: Logger;
  /** Absolute directory of the bare mirrors. */
  mirrorRoot: string;
  /** Absolute state directory (hoard's own git config and the clone spools live below it). */
  stateDir: string;
  githubTokens?: GitHubTokenSource | undefined;
}

/**
 * Told when a repository's mirror becomes usable: `fetched` is false for a mirror discovered at
 * start-up whose first fetch failed (it is served as it is while the refresher keeps trying).
 */
export type ReadyListener = (repo: Repository, fetched: boolean) => void;

/**
 * The mirror lifecycle's one owner (reference git §3; cachew's gitclone manager plays this role):
 * the repository records and the upstream rules that name them, discovery of a previous run's
 * mirrors, clones (from the cached mirror snapshot when there is one, else from upstream), the
 * background restore after a cold serve with its backoff, catch-up fetches, the background
 * refresher, and hoard's own upstream credential. Everything else in the git strategy asks this
 * class for a Ready mirror; it calls nothing above it, and tells whoever subscribed (periodic
 * jobs) when a mirror becomes ready.
 */
export class Mirrors implements MirrorRefresh {
  readonly settings: RepoSettings;
  /** Cold serves in flight, which a mirror restore after a cold serve waits for. */
  readonly coldActivity: ColdServeActivity;
  readonly refresher: Refresher;
  private readonly repos = new Map<string, Repository>();
  /** Upload-pack spools of repositories being cloned (callers share one upstream answer). */
  private readonly spools = new Map<string, SpoolSet>();
  private readonly spoolRoot: string;
  private readonly restorer: MirrorRestorer;
  /** Mirror restores pending after cold serves, and the backoff of the next retry. */
  private readonly restores = new Map<string, { backoffMs: number; timer?: NodeJS.Timeout }>();
  private readonly restoring = new Set<string>();
  private readonly readyListeners: ReadyListener[] = [];
  /** `allowed-hosts` and `plain-http-hosts`: which upstreams, over which scheme. */
  readonly rules: UpstreamRules;
  private closing = false;

  constructor(private readonly opts: MirrorsOptions) {
    const { config, clone, logger, scheduler, mirrorRoot, stateDir } = opts;
    this.rules = new UpstreamRules(config);
    this.spoolRoot = path.join(stateDir, 'git-spool');
    this.settings = {
      mirrorRoot,
      scratchRoot: path.join(mirrorRoot, '.scratch'),
      gitEnv: {
        ...process.env,
        GIT_CONFIG_NOSYSTEM: '1',
        // Server-side git must not follow a user's insteadOf rules back into hoard itself.
        GIT_CONFIG_GLOBAL: path.join(stateDir, 'git', 'gitconfig'),
        GIT_TERMINAL_PROMPT: '0',
        GIT_ASKPASS: 'true',
        GIT_ALLOW_PROTOCOL: 'http:https',
      },
      cloneTimeoutMs: clone['clone-timeout'],
      fetchTimeoutMs: clone['fetch-timeout'],
      lsRemoteTimeoutMs: clone['ls-remote-timeout'],
      refCheckIntervalMs: clone['ref-check-interval'],
      packThreads: clone['pack-threads'],
      repackTimeoutMs: clone['repack-timeout'],
      repackThreads: clone['repack-threads'],
      logger,
      serveUnreachable: config['serve-unreachable'],
      hostAllowed: (host) => this.rules.hostAllowed(host),
      runFetchJob: (upstreamURL, id, job) => scheduler.submit(`${upstreamURL}/fetch`, id, job),
      upstreamConfig: async (url, signal) => {
        const target = new URL(url);
        const authorization = await this.serverAuthorization(target, signal);
        // Scoped to the upstream's origin: no other host git might contact ever sees it.
        return authorization ? [[`http.${target.origin}/.extraHeader`, `Authorization: ${authorization}`]] : [];
      },
    };
    this.coldActivity = new ColdServeActivity(logger);
    this.restorer = new MirrorRestorer(opts.cache, logger);
    this.refresher = new Refresher({
      intervalMs: clone['fetch-interval'],
      idleMs: clone['refresh-idle'],
      submit: (repo, id, job) => scheduler.submit(`${repo.upstreamURL}/fetch`, id, job),
      logger,
    });
  }

  /** Subscribes to mirrors becoming usable (after a clone or restore, or discovery at start-up). */
  onReady(listener: ReadyListener): void {
    this.readyListeners.push(listener);
  }

  private becameReady(repo: Repository, fetched: boolean): void {
    // Upstream down at start-up: the refresher keeps trying, backing off from the first failure.
    this.refresher.start(repo, fetched ? {} : { failures: 1 });
    for (const listener of this.readyListeners) listener(repo, fetched);
  }

  /** What other strategies may do with the mirrors (see GitMirrorManager). */
  readonly gitMirrors: GitMirrorManager = { mirror: (repository, opts) => this.readyMirror(repository, opts) };

  private async readyMirror(repository: string, opts: { fresh: boolean; signal: AbortSignal }): Promise<GitMirror> {
    let parsed: GitRequestPath;
    try {
      parsed = parseGitPath(repository);
    } catch (err) {
      if (err instanceof InvalidGitPathError) throw new GitMirrorRefusedError(`bad repository ${JSON.stringify(repository)}: ${err.message}`);
      throw err;
    }
    if (parsed.operation) throw new GitMirrorRefusedError(`bad repository ${JSON.stringify(repository)}: a .git segment before its end`);
    if (!this.rules.hostAllowed(parsed.host)) throw new GitMirrorRefusedError(`host not allowed: ${parsed.host} (allowed-hosts of strategy git: ${this.rules.allowedHostList()})`);
    const repo = this.repository(parsed);
    // A module download is a use of the mirror like a clone: it keeps the background refresher going.
    this.refresher.touch(repo.upstreamURL);
    await this.ensureReady(repo, opts.signal);
    if (opts.fresh && (await repo.refsStale())) {
      // Joins the catch-up fetch git clients would queue; a failed fetch leaves the mirror as it is.
      await this.catchUp(repo).catch((err: Error) => this.opts.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'fetch for a mirror reader failed; reading the mirror as it is'));
    }
    return { upstreamURL: repo.upstreamURL, gitDir: repo.mirrorDir, env: this.settings.gitEnv };
  }

  /** Starts (or joins) the clone and resolves once the repository is Ready. */
  async ensureReady(repo: Repository, signal: AbortSignal): Promise<void> {
    if (repo.state === 'ready') return;
    this.startClone(repo);
    await repo.waitWhileCloning(signal);
    if ((repo.state as string) === 'ready') return;
    const failure = repo.lastCloneFailure;
    if (upstreamLacksRepository(failure)) throw new UpstreamRepositoryMissingError(repo.upstreamURL, failure);
    throw new Error(`mirror of ${repo.upstreamURL} could not be cloned${failure ? `: ${failure}` : ''}`);
  }

  /**
   * Fetches the mirror in the background on its fetch queue of the scheduler (worker caps,
   * deadlines, abort and drain on shutdown); joins the catch-up fetch already pending.
   */
  catchUp(repo: Repository): Promise<void> {
    return repo.fetchInBackground((job) => this.opts.scheduler.submit(`${repo.upstreamURL}/fetch`, 'fetch', job));
  }

  /** {@link catchUp} without waiting: the fetch logs its own failure. */
  queueFetch(repo: Repository): void {
    this.catchUp(repo).catch(() => undefined);
  }

  /**
   * A snapshot was served while the mirror was not Ready: restore the mirror from its cached
   * mirror snapshot in the background (once the cold serves are done, so they keep the
   * bandwidth), verified by a fetch. It never falls back to a full clone; a failure leaves the
   * repository Empty and is retried with backoff. Each attempt (retries too) first waits until
   * no cold serve of the repository is in flight, bounded by a deadline so a stalled client
   * cannot hold it back for ever.
   */
  restoreAfterColdServe(repo: Repository, delayMs = 0): void {
    const url = repo.upstreamURL;
    if (this.closing || repo.state !== 'empty' || this.restoring.has(url)) return;
    const pending = this.restores.get(url);
    if (pending?.timer && delayMs === 0) return; // a retry is already armed
    this.restoring.add(url);
    void this.coldActivity
      .quiet(url)
      .then(async () => {
        if (repo.state !== 'empty' || !(await this.restorer.has(repo))) return;
        if (!repo.tryStartCloning()) return;
        this.opts.logger.info({ upstream: url }, 'restoring mirror from its snapshot after a cold serve');
        await this.runClone(repo, async (target, signal) => {
          if ((await this.restorer.restore(repo, target, signal)) === 'absent') throw new Error('mirror snapshot disappeared');
          // With the upstream down the restored mirror is kept, stale, and served.
          return repo.freshenRestored(target, signal);
        });
        if ((repo.state as string) !== 'ready') throw new Error('mirror restore did not complete');
      })
      .then(
        () => {
          const entry = this.restores.get(url);
          if (entry?.timer) clearTimeout(entry.timer);
          this.restores.delete(url);
        },
        (err: Error) => {
          const backoffMs = Math.min(RESTORE_RETRY_MAX_MS, (this.restores.get(url)?.backoffMs ?? this.opts.config['mirror-restore-retry'] / 2) * 2);
          this.opts.logger.warn({ err: err.message, upstream: url, retryInMs: backoffMs }, 'mirror restore failed; will retry');
          const timer = setTimeout(() => {
            const entry = this.restores.get(url);
            if (entry) delete entry.timer;
            this.restoreAfterColdServe(repo, 1);
          }, backoffMs);
          timer.unref();
          this.restores.set(url, { backoffMs, timer });
        },
      )
      .finally(() => this.restoring.delete(url));
  }

  /** Prepares directories, discovers mirrors left by a previous run and fetches them in the background. */
  async start(): Promise<void> {
    const gitConfig = this.settings.gitEnv['GIT_CONFIG_GLOBAL'] as string;
    await fs.mkdir(path.dirname(gitConfig), { recursive: true });
    await fs.writeFile(gitConfig, '# hoard-controlled git config for server-side git\n');
    // Leftovers of a previous run are moved aside, never deleted in place: a killed run's
    // children may still be writing there, and start-up must not wait for or fail on them.
    await discardInBackground(this.settings.scratchRoot, this.opts.logger);
    await discardInBackground(this.spoolRoot, this.opts.logger);
    await fs.mkdir(this.settings.mirrorRoot, { recursive: true });
    const found = (await discoverMirrors(this.settings.mirrorRoot, { hostAllowed: (host) => this.rules.hostAllowed(host), logger: this.opts.logger })).map((m) => {
      const repo = new Repository(this.rules.upstreamURL(m.parsed), m.dir, this.settings, 'ready');
      this.repos.set(repo.upstreamURL, repo);
      return repo;
    });
    this.opts.logger.info({ mirrors: found.length }, 'discovered mirrors');
    for (const repo of found) {
      // Startup fetches run in the background; a failure is per repository and only logged.
      void this.opts.scheduler
        .submit(`${repo.upstreamURL}/fetch`, 'startup-fetch', async (signal) => {
          await repo.configure();
          await repo.fetch({ signal, lenient: true });
          this.becameReady(repo, true);
        })
        .catch(() => this.becameReady(repo, false));
    }
  }

  /** hoard's own credential for reading `url` upstream (see {@link upstreamAuthorization}). */
  serverAuthorization(url: URL, signal?: AbortSignal): Promise<string | undefined> {
    return upstreamAuthorization(this.opts.githubTokens, url, this.opts.logger, signal);
  }

  /** The repository record of a request path, created (Empty, or Ready when its mirror is on disk) on first use. */
  repository(parsed: GitRequestPath): Repository {
    const url = this.rules.upstreamURL(parsed);
    let repo = this.repos.get(url);
    if (!repo) {
      const dir = path.join(this.settings.mirrorRoot, mirrorRelativePath(parsed.host, parsed.repoPath));
      // A mirror on disk without a record (its record was dropped after a failed attempt that lost
      // a race to another one) is Ready: cloning over it could only fail at the rename.
      repo = new Repository(url, dir, this.settings, existsSync(path.join(dir, 'HEAD')) ? 'ready' : 'empty');
      this.repos.set(url, repo);
    }
    return repo;
  }

  /** The record of a request path if one exists (never creates one). */
  existing(parsed: GitRequestPath): Repository | undefined {
    return this.repos.get(this.rules.upstreamURL(parsed));
  }

  /** Every repository record, for the status page and gauges. */
  records(): Iterable<Repository> {
    return this.repos.values();
  }

  /** Number of repository records held (tests check it stays bounded). */
  get repositoryCount(): number {
    return this.repos.size;
  }

  /** The upload-pack spools of a repository while it is being cloned. */
  spoolsOf(repo: Repository): SpoolSet | undefined {
    return this.spools.get(repo.upstreamURL);
  }

  /**
   * Forgets a repository that ended Empty after a failed clone, so a scan of random paths cannot
   * grow the map without bound. Kept while a mirror restore for it is pending: that job holds this
   * record, and a second record for the same upstream could clone beside it.
   */
  private forgetIfEmpty(repo: Repository): void {
    const url = repo.upstreamURL;
    if (repo.state !== 'empty' || this.repos.get(url) !== repo || this.restores.has(url) || this.restoring.has(url)) return;
    this.repos.delete(url);
  }

  /**
   * Refreshes every mirror of the repository (Ready, or being cloned: then once its clone ends),
   * the name compared case-insensitively (forges treat `Org/Repo` and `org/repo` alike, and
   * clients may have used either), through `Repository.refresh`: a verified fetch on its fetch
   * queue, which ref listings wait for instead of advertising the old refs.
   */
  refresh(parsed: GitRequestPath, reason: string): string[] {
    if (!this.rules.hostAllowed(parsed.host)) return [];
    const wanted = this.rules.upstreamURL(parsed).toLowerCase();
    const refreshed: string[] = [];
    for (const repo of this.repos.values()) {
      if (repo.state === 'empty' || repo.upstreamURL.toLowerCase() !== wanted) continue;
      // Repository.refresh logs a failure itself.
      repo.refresh({ reason }).catch(() => undefined);
      refreshed.push(repo.upstreamURL);
    }
    return refreshed;
  }

  /** Starts the background clone unless someone else already did. */
  startClone(repo: Repository): void {
    if (!repo.tryStartCloning()) return;
    void this.runClone(repo, (target, signal) => this.populateMirror(repo, target, signal))
      .catch(() => undefined)
      .finally(() => this.forgetIfEmpty(repo));
  }

  /**
   * A new mirror comes from the cached mirror snapshot when one exists (verified by a fetch before
   * Ready), else from a full upstream clone. A restore that fails for any reason but cancellation
   * falls through to the clone (§3.2) inside the same Cloning state, so no second clone can start
   * meanwhile: a corrupt snapshot has already been discarded by then, while one that merely could
   * not be read, unpacked on this disk or freshened is kept for the next replica.
   */
  private async populateMirror(repo: Repository, target: string, signal: AbortSignal): Promise<void | 'fresh' | 'stale'> {
    try {
      if ((await this.restorer.restore(repo, target, signal)) === 'restored') {
        // An unreachable upstream keeps the restored mirror (stale) rather than discarding it for
        // a clone that would fail the same way.
        const outcome = await repo.freshenRestored(target, signal);
        this.opts.logger.info({ upstream: repo.upstreamURL, stale: outcome === 'stale' }, 'mirror restored from its snapshot');
        return outcome;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      const corrupt = err instanceof CorruptMirrorSnapshotError;
      this.opts.logger.warn({ err: (err as Error).message, upstream: repo.upstreamURL, corrupt }, 'mirror restore failed; cloning from upstream instead');
      await fs.rm(target, { recursive: true, force: true });
    }
    await repo.cloneFromUpstream(target, signal);
  }

  /** Runs a clone job for a repository the caller moved to Cloning; always ends Ready or Empty. */
  private async runClone(repo: Repository, populate: (target: string, signal: AbortSignal) => Promise<void | 'fresh' | 'stale'>): Promise<void> {
    this.spools.set(repo.upstreamURL, new SpoolSet(path.join(this.spoolRoot, createHash('sha256').update(repo.upstreamURL).digest('hex').slice(0, 24))));
    try {
      await this.opts.scheduler.submit(repo.upstreamURL, 'clone', (signal) => repo.clone(signal, populate), { clone: true });
      this.becameReady(repo, true);
    } catch (err) {
      this.opts.logger.warn({ err, upstream: repo.upstreamURL }, 'clone failed');
      throw err;
    } finally {
      // A clone job that could not even run (scheduler stopping) must not leave the repository Cloning.
      if (repo.state === 'cloning' && !repo.cloneInProgress) repo.reset();
      const set = this.spools.get(repo.upstreamURL);
      this.spools.delete(repo.upstreamURL);
      void set?.close();
    }
  }

  /** Stops restores and the refresher; the scheduler's drain (the strategy's) ends running jobs. */
  stop(): void {
    this.closing = true;
    for (const entry of this.restores.values()) if (entry.timer) clearTimeout(entry.timer);
    this.refresher.close();
  }

  /** Closes the spools of clones still running (after the scheduler drained). */
  async closeSpools(): Promise<void> {
    await Promise.all([...this.spools.values()].map((s) => s.close()));
  }
}
