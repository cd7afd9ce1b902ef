import { createHash, randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { duration } from '../../config/duration.js';
import { zeroAsDefault } from '../../config/zero-as-default.js';
import { Scheduler } from '../../jobs/scheduler.js';
import { sendText } from '../../http/router.js';
import { answerAndClose, refuseRequest } from '../../http/answer-and-close.js';
import { BodyIncompleteError, BodyTooLargeError, readBoundedBody } from '../../util/read-body.js';
import type { GlobalSettings, StatusSection, Strategy, StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { waitForDrain } from '../../util/tee.js';
import { runHttpBackend } from './cgi.js';
import { InvalidGitPathError, parseGitPath, type GitRequestPath } from './paths.js';
import { mirrorRelativePath } from './repo-names.js';
import { Repository, configEnv, wantPolicyConfig, type RepoSettings } from './repository.js';
import { SpoolSet, SpoolUnavailableError } from '../shared/spool.js';
import { CorruptMirrorSnapshotError, SnapshotService } from './snapshots.js';
import type { Cache } from '../../cache/cache.js';
import type { MetadataStore } from '../../metadata/store.js';
import { fetchWants, isLsRefsRequest, uploadPackBodyProblem } from './upload-pack-request.js';
import { UpstreamRepositoryMissingError, upstreamLacksRepository } from './upstream-missing.js';
import { forwardToUpstream, forwardableHeaders, requestUpstream } from '../../http/upstream.js';
import { discardInBackground } from '../../util/discard.js';
import { removeStaleLocks } from './stale-locks.js';
import { Refresher } from './refresher.js';
import { Prefetcher, parsePrefetchEntry } from './prefetch.js';
import { MirrorMaintenance } from './maintenance.js';
import { handleGithubWebhook, handleRefreshRequest, type MirrorRefresh } from './webhook.js';
import { GitMirrorRefusedError, type GitMirror, type GitMirrorManager } from '../../http/git-mirrors.js';
import { installationBasicAuth, type GitHubTokenSource } from '../../github/token-source.js';
import { GitStatus } from './status.js';

const gitSchema = z.strictObject({
  'snapshot-interval': duration().default(0).describe('Period of snapshot generation (0 = off; on-demand serving still works).'),
  'snapshot-max-age': duration().default(24 * 3_600_000).describe('An unchanged snapshot (same HEAD, still in the authoritative tier) is regenerated once older than this; 0 = never skip, regenerate every interval.'),
  'mirror-snapshot-interval': duration().default(2 * 3_600_000).describe('Period of mirror snapshots (0 = snapshot-interval).'),
  'repack-interval': duration().default(0).describe('Period of geometric repacks (0 = off).'),
  'zstd-threads': z.number().int().min(0).default(4).describe('zstd threads for snapshots (0 = all cores).'),
  'bundle-cache-ttl': duration().default(2 * 3_600_000).describe('How long delta bundles stay cached (0 = the default: a bundle cached for no time would be made again on every request).'),
  'allowed-hosts': z.array(z.string()).default([]).describe('Upstream hosts hoard may contact (empty = any). Every hop of an upstream redirect hoard follows must pass it too; a forwarded request relays a redirect only within the host it named (502 otherwise).'),
  'plain-http-hosts': z.array(z.string()).default([]).describe('Hosts (with port) reached over http:// instead of https://.'),
  'serve-unreachable': z
    .boolean()
    .default(false)
    .describe('Serve, by object id, commits no ref of the mirror reaches (e.g. orphaned by a force-push upstream). false: such wants are answered by upstream, which decides; true: the mirror hands out every object it holds.'),
  'mirror-restore-retry': duration().default(30_000).describe('First retry delay of a failed background mirror restore after a cold serve, and of a failed prefetch (doubles up to 30m).'),
  'webhook-secret': z
    .string()
    .min(1, 'must not be empty (an empty HMAC key is no secret); remove the attribute to disable GitHub webhooks')
    .optional()
    .describe('Secret of the GitHub webhook that POSTs to /git/webhook/github (push, create and delete events refresh the mirror at once; X-Hub-Signature-256 is verified). Unset: that route answers 404.'),
  prefetch: z
    .array(z.string().superRefine(refusePrefetchEntry))
    .default([])
    .describe(
      'Repositories (host/repository, as after /git/ in a request, e.g. "github.com/org/repo") warmed from start-up without waiting for a client: cloned in the background through the scheduler (clone cap applies; start-up and /_readiness do not wait), given a workstation snapshot once Ready (at once even with snapshot-interval = 0, then every snapshot-interval if set), and refreshed by the background refresher whatever refresh-idle says. Failures are logged and retried from mirror-restore-retry, doubling up to 30m. Hosts must pass allowed-hosts.',
    ),
})
  // Cross-attribute rules, reported at the offending entry (prefetch[i]) so the loader names its line.
  .superRefine((config, ctx) => {
    const allowed = new Set(config['allowed-hosts'].map((h) => h.toLowerCase()));
    const seen = new Map<string, number>();
    for (const [i, entry] of config.prefetch.entries()) {
      let parsed: GitRequestPath;
      try {
        parsed = parsePrefetchEntry(entry);
      } catch {
        continue; // already reported by the element's own check
      }
      if (allowed.size && !allowed.has(parsed.host)) {
        ctx.addIssue({ code: 'custom', path: ['prefetch', i], input: entry, message: `${JSON.stringify(entry)}: host ${parsed.host} is not in allowed-hosts (${[...allowed].join(', ')})` });
      }
      const identity = `${parsed.host}/${parsed.repoPath}`;
      const first = seen.get(identity);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['prefetch', i], input: entry, message: `${JSON.stringify(entry)} names the same repository as prefetch[${first}]` });
      else seen.set(identity, i);
    }
  });

/** The element check of `prefetch`: the request path rules, as a config message naming the entry. */
function refusePrefetchEntry(entry: string, ctx: z.RefinementCtx): void {
  try {
    parsePrefetchEntry(entry);
  } catch (err) {
    if (!(err instanceof InvalidGitPathError)) throw err;
    ctx.addIssue({ code: 'custom', input: entry, message: `${JSON.stringify(entry)} is not a repository hoard could serve: ${err.message}` });
  }
}

type GitConfig = z.output<typeof gitSchema>;

/** Largest upload-pack request body held in memory (it must be replayable for the not-our-ref fallback). */
const MAX_REQUEST_BODY = 64 << 20;
/** Mirror responses are held back up to this size so a `not our ref` failure can still go upstream. */
const HOLD_BACK_BYTES = 1 << 20;
const SERVE_TIMEOUT_MS = 60 * 60_000;
/** Longest wait between retries of a failed mirror restore. */
const RESTORE_RETRY_MAX_MS = 30 * 60_000;
/** Metadata namespace of cross-replica snapshot generation claims. */
const CLAIMS_NAMESPACE = 'git-snapshot-claims';
/** `POST /git/{host}/{repo}/refresh`: fetch the mirror now (any forge's push hook, or an operator). */
const REFRESH_SUFFIX = '/refresh';

/** The git caching strategy: smart-HTTP served from local mirrors (reference git §2-3, §6). */
class GitStrategy implements Strategy, MirrorRefresh {
  readonly name = 'git';
  get services() {
    return { gitMirrors: this.mirrors };
  }
  private readonly repos = new Map<string, Repository>();
  private readonly spools = new Map<string, SpoolSet>();
  private readonly scheduler: Scheduler;
  private readonly settings: RepoSettings;
  /** Environment of `git http-backend` serving a mirror: the want policy rides above the mirror's own config. */
  private readonly servingEnv: NodeJS.ProcessEnv;
  private readonly spoolRoot: string;
  private warm = false;
  private readonly snapshots: SnapshotService;
  private readonly periodicScheduled = new Set<string>();
  /** Mirror restores pending after cold serves, and the backoff of the next retry. */
  private readonly restores = new Map<string, { backoffMs: number; timer?: NodeJS.Timeout }>();
  private readonly restoring = new Set<string>();
  /** Identifies this replica in generation claims. */
  private readonly replicaId = randomUUID();
  private closing = false;
  /** `allowed-hosts` and `plain-http-hosts`, lowercased: request hosts are lowercased too. */
  private readonly allowedHosts: ReadonlySet<string>;
  private readonly plainHttpHosts: ReadonlySet<string>;
  private readonly refresher: Refresher;
  private readonly maintenance: MirrorMaintenance;
  private readonly prefetcher: Prefetcher;
  private readonly statusRows: GitStatus;

  constructor(
    private readonly config: GitConfig,
    private readonly logger: Logger,
    cache: Cache,
    private readonly metadata: MetadataStore,
    mirrorRoot: string,
    stateDir: string,
    clone: GlobalSettings['git-clone'],
    schedulerBlock: GlobalSettings['scheduler'],
    private readonly githubTokens?: GitHubTokenSource,
  ) {
    this.allowedHosts = new Set(config['allowed-hosts'].map((h) => h.toLowerCase()));
    this.plainHttpHosts = new Set(config['plain-http-hosts'].map((h) => h.toLowerCase()));
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
      hostAllowed: (host) => this.hostAllowed(host),
      runFetchJob: (upstreamURL, id, job) => this.scheduler.submit(`${upstreamURL}/fetch`, id, job),
      upstreamConfig: async (url, signal) => {
        const target = new URL(url);
        const authorization = await this.serverAuthorization(target, signal);
        // Scoped to the upstream's origin: no other host git might contact ever sees it.
        return authorization ? [[`http.${target.origin}/.extraHeader`, `Authorization: ${authorization}`]] : [];
      },
    };
    this.servingEnv = { ...this.settings.gitEnv, ...configEnv(wantPolicyConfig(config['serve-unreachable'])) };
    this.scheduler = new Scheduler({ concurrency: schedulerBlock.concurrency, maxCloneConcurrency: schedulerBlock['max-clone-concurrency'], logger });
    this.refresher = new Refresher({
      intervalMs: clone['fetch-interval'],
      idleMs: clone['refresh-idle'],
      submit: (repo, id, job) => this.scheduler.submit(`${repo.upstreamURL}/fetch`, id, job),
      logger,
    });
    this.maintenance = new MirrorMaintenance({
      enabled: clone.maintenance,
      timeoutMs: this.settings.repackTimeoutMs,
      threads: this.settings.repackThreads,
      periodic: (repo, id, intervalMs, job, firstDelayMs) => this.scheduler.periodic(repo.upstreamURL, id, intervalMs, job, firstDelayMs),
      logger,
    });
    this.statusRows = new GitStatus(cache, (url) => this.refresher.lastTouched(url));
    this.snapshots = new SnapshotService({
      cache,
      logger,
      scratchRoot: this.settings.scratchRoot,
      zstdThreads: config['zstd-threads'],
      bundleTtlMs: zeroAsDefault(gitSchema, config, 'bundle-cache-ttl'),
      refCheckIntervalMs: this.settings.refCheckIntervalMs,
      ensureReady: (repo, signal) => this.ensureReady(repo, signal),
      coldServed: (repo, served) => this.scheduleMirrorRestore(repo, served),
      catchUp: (repo) => repo.fetchInBackground((job) => this.scheduler.submit(`${repo.upstreamURL}/fetch`, 'fetch', job)),
    });
    const prefetched = config.prefetch.map(parsePrefetchEntry);
    for (const parsed of prefetched) this.refresher.pin(this.upstreamURL(parsed));
    this.prefetcher = new Prefetcher({
      entries: prefetched,
      repository: (parsed) => this.repository(parsed),
      ensureReady: (repo, signal) => this.ensureReady(repo, signal),
      snapshot: (repo, discovered) => this.prefetchSnapshot(repo, discovered),
      firstRetryMs: config['mirror-restore-retry'],
      logger,
    });
  }

  /**
   * The first workstation snapshot of a prefetched Ready repository. With snapshot-interval set,
   * the periodic job makes it (first run at once; armed here too, idempotently, for a mirror of
   * a previous run whose start-up fetch failed and so never armed it); otherwise it is made here,
   * once, on the repository's queue. A mirror from a previous run is fetched first (joining its
   * start-up fetch) so the snapshot is not of last run's HEAD; an unchanged cached one is kept.
   */
  private async prefetchSnapshot(repo: Repository, discovered: boolean): Promise<void> {
    if (this.config['snapshot-interval'] > 0) return this.schedulePeriodic(repo);
    await this.scheduler.submit(repo.upstreamURL, 'prefetch-snapshot', async () => {
      if (discovered) await repo.fetch().catch((err: Error) => this.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'fetch before the prefetch snapshot failed; snapshotting the mirror as it is'));
      const commit = await this.snapshots.generateWorkstation(repo, { maxAgeMs: this.config['snapshot-max-age'] });
      this.logger.info({ upstream: repo.upstreamURL, commit: commit ?? 'unchanged' }, 'workstation snapshot');
    });
  }

  /** What other strategies may do with the mirrors (see GitMirrorManager). */
  readonly mirrors: GitMirrorManager = { mirror: (repository, opts) => this.readyMirror(repository, opts) };

  private async readyMirror(repository: string, opts: { fresh: boolean; signal: AbortSignal }): Promise<GitMirror> {
    let parsed: GitRequestPath;
    try {
      parsed = parseGitPath(repository);
    } catch (err) {
      if (err instanceof InvalidGitPathError) throw new GitMirrorRefusedError(`bad repository ${JSON.stringify(repository)}: ${err.message}`);
      throw err;
    }
    if (parsed.operation) throw new GitMirrorRefusedError(`bad repository ${JSON.stringify(repository)}: a .git segment before its end`);
    if (!this.hostAllowed(parsed.host)) throw new GitMirrorRefusedError(`host not allowed: ${parsed.host} (allowed-hosts of strategy git: ${[...this.allowedHosts].join(', ')})`);
    const repo = this.repository(parsed);
    // A module download is a use of the mirror like a clone: it keeps the background refresher going.
    this.refresher.touch(repo.upstreamURL);
    await this.ensureReady(repo, opts.signal);
    if (opts.fresh && (await repo.refsStale())) {
      // Joins the catch-up fetch git clients would queue; a failed fetch leaves the mirror as it is.
      await repo.fetchInBackground((job) => this.scheduler.submit(`${repo.upstreamURL}/fetch`, 'fetch', job)).catch((err: Error) => this.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'fetch for a mirror reader failed; reading the mirror as it is'));
    }
    return { upstreamURL: repo.upstreamURL, gitDir: repo.mirrorDir, env: this.settings.gitEnv };
  }

  /** Starts (or joins) the clone and resolves once the repository is Ready. */
  private async ensureReady(repo: Repository, signal: AbortSignal): Promise<void> {
    if (repo.state === 'ready') return;
    this.startClone(repo);
    await repo.waitWhileCloning(signal);
    if ((repo.state as string) === 'ready') return;
    const failure = repo.lastCloneFailure;
    if (upstreamLacksRepository(failure)) throw new UpstreamRepositoryMissingError(repo.upstreamURL, failure);
    throw new Error(`mirror of ${repo.upstreamURL} could not be cloned${failure ? `: ${failure}` : ''}`);
  }

  /** Periodic snapshot jobs for a Ready repository (only when snapshot-interval > 0). */
  private schedulePeriodic(repo: Repository): void {
    const interval = this.config['snapshot-interval'];
    if (this.periodicScheduled.has(repo.upstreamURL)) return;
    this.periodicScheduled.add(repo.upstreamURL);
    this.refresher.start(repo);
    this.maintenance.start(repo);
    const repackInterval = this.config['repack-interval'];
    if (repackInterval > 0) {
      // First repack one interval after Ready: a fresh clone is already one well-packed pack.
      this.scheduler.periodic(repo.upstreamURL, 'repack', repackInterval, (signal) => repo.repack(signal), repackInterval);
    }
    if (interval <= 0) return;
    const maxAgeMs = this.config['snapshot-max-age'];
    this.scheduler.periodic(repo.upstreamURL, 'snapshot', interval, async () => {
      if (!(await this.claimGeneration(repo, 'snapshot', interval))) return;
      // A failed pre-fetch (upstream briefly down) must not cost the interval's snapshot: the
      // mirror still holds what it last fetched, which is worth publishing (§4.5, #366).
      await repo.fetch().catch((err: Error) => this.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'fetch before the workstation snapshot failed; snapshotting the mirror as it is'));
      const commit = await this.snapshots.generateWorkstation(repo, { maxAgeMs });
      this.logger.info({ upstream: repo.upstreamURL, commit: commit ?? 'unchanged' }, 'workstation snapshot');
    });
    const mirrorInterval = this.config['mirror-snapshot-interval'] || interval;
    this.scheduler.periodic(repo.upstreamURL, 'mirror-snapshot', mirrorInterval, async () => {
      if (!(await this.claimGeneration(repo, 'mirror-snapshot', mirrorInterval))) return;
      const commit = await this.snapshots.generateMirror(repo, { maxAgeMs });
      this.logger.info({ upstream: repo.upstreamURL, commit: commit ?? 'unchanged' }, 'mirror snapshot');
    });
  }

  /**
   * One replica generates each artifact per interval: the claim lasts slightly less than the
   * interval so the holder renews it on its next run, and a crashed holder's claim lapses.
   * An unreachable metadata store means generating anyway (duplicate work beats no snapshots).
   */
  private async claimGeneration(repo: Repository, kind: string, intervalMs: number): Promise<boolean> {
    try {
      const won = await this.metadata.claim(CLAIMS_NAMESPACE, `${repo.upstreamURL}#${kind}`, this.replicaId, Math.max(1_000, intervalMs - Math.min(intervalMs / 10, 60_000)));
      if (!won) this.logger.debug({ upstream: repo.upstreamURL, kind }, 'another replica generates this interval');
      return won;
    } catch (err) {
      this.logger.warn({ err, upstream: repo.upstreamURL, kind }, 'generation claim failed; generating anyway');
      return true;
    }
  }

  /**
   * After a cold serve, restores the mirror from its cached mirror snapshot in the background
   * (once the cold reads are done, so they keep the bandwidth), verified by a fetch. It never
   * falls back to a full clone; a failure leaves the repository Empty and is retried with backoff.
   * Each attempt (retries too) first waits until no cold serve of the repository is in flight —
   * counted by the snapshot service across every serve, not only the one that scheduled it —
   * bounded by a deadline so a stalled client cannot hold it back for ever.
   */
  private scheduleMirrorRestore(repo: Repository, served: Promise<void>, delayMs = 0): void {
    const url = repo.upstreamURL;
    if (this.closing || repo.state !== 'empty' || this.restoring.has(url)) return;
    const pending = this.restores.get(url);
    if (pending?.timer && delayMs === 0) return; // a retry is already armed
    this.restoring.add(url);
    void served
      .catch(() => undefined)
      .then(() => this.snapshots.coldServesDone(repo))
      .then(async () => {
        if (repo.state !== 'empty' || !(await this.snapshots.hasMirrorSnapshot(repo))) return;
        if (!repo.tryStartCloning()) return;
        this.logger.info({ upstream: url }, 'restoring mirror from its snapshot after a cold serve');
        await this.runClone(repo, async (target, signal) => {
          if ((await this.snapshots.restoreMirror(repo, target, signal)) === 'absent') throw new Error('mirror snapshot disappeared');
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
          const backoffMs = Math.min(RESTORE_RETRY_MAX_MS, (this.restores.get(url)?.backoffMs ?? this.config['mirror-restore-retry'] / 2) * 2);
          this.logger.warn({ err: err.message, upstream: url, retryInMs: backoffMs }, 'mirror restore failed; will retry');
          const timer = setTimeout(() => {
            const entry = this.restores.get(url);
            if (entry) delete entry.timer;
            this.scheduleMirrorRestore(repo, Promise.resolve(), 1);
          }, backoffMs);
          timer.unref();
          this.restores.set(url, { backoffMs, timer });
        },
      )
      .finally(() => this.restoring.delete(url));
  }

  ready(): boolean {
    return this.warm;
  }

  /** Prepares directories and discovers mirrors left by a previous run. */
  async start(): Promise<void> {
    await fs.mkdir(path.dirname(this.settings.gitEnv['GIT_CONFIG_GLOBAL'] as string), { recursive: true });
    await fs.writeFile(this.settings.gitEnv['GIT_CONFIG_GLOBAL'] as string, '# hoard-controlled git config for server-side git\n');
    // Leftovers of a previous run are moved aside, never deleted in place: a killed run's
    // children may still be writing there, and start-up must not wait for or fail on them.
    await discardInBackground(this.settings.scratchRoot, this.logger);
    await discardInBackground(this.spoolRoot, this.logger);
    await fs.mkdir(this.settings.mirrorRoot, { recursive: true });
    const found = await this.discover(this.settings.mirrorRoot, []);
    this.logger.info({ mirrors: found.length }, 'discovered mirrors');
    for (const repo of found) {
      // Startup fetches run in the background; a failure is per repository and only logged.
      void this.scheduler
        .submit(`${repo.upstreamURL}/fetch`, 'startup-fetch', async (signal) => {
          await repo.configure();
          await repo.fetch({ signal, lenient: true });
          this.schedulePeriodic(repo);
        })
        // Upstream down at start-up: the refresher keeps trying, backing off from the first failure.
        .catch(() => {
          this.refresher.start(repo, { failures: 1 });
          this.maintenance.start(repo);
        });
    }
    this.warm = true;
    // After discovery, so a mirror left by the previous run is kept rather than cloned again;
    // after `warm`: readiness never waits for a prefetch (a clone may take an hour, or upstream
    // may be down), requests for a repository still cloning join its clone as for any other.
    this.prefetcher.start();
  }

  private async discover(dir: string, rel: string[]): Promise<Repository[]> {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    if (rel.length >= 2 && entries.some((e) => e.name === 'HEAD' && e.isFile())) {
      let parsed: GitRequestPath;
      try {
        // The same rules as requests, so a discovered mirror has the identity a request would give it.
        parsed = parseGitPath(rel.join('/'));
      } catch (err) {
        this.logger.warn({ dir, err: (err as Error).message }, 'ignoring a mirror directory whose path no request could name');
        return [];
      }
      // Directory names are encoded names (repo-names.ts); one that is not the canonical
      // encoding of what it decodes to is not where a request for that name would look.
      if (mirrorRelativePath(parsed.host, parsed.repoPath) !== rel.join('/')) {
        this.logger.warn({ dir }, 'ignoring a mirror directory whose name is not the encoding hoard gives that repository');
        return [];
      }
      if (!this.hostAllowed(parsed.host)) {
        // Config changed since the mirror was made: never contact that host again, not even to fetch.
        this.logger.warn({ dir, host: parsed.host }, 'ignoring a mirror whose host is not in allowed-hosts');
        return [];
      }
      await removeStaleLocks(dir, this.logger);
      const repo = new Repository(this.upstreamURL(parsed), dir, this.settings, 'ready');
      this.repos.set(repo.upstreamURL, repo);
      return [repo];
    }
    const out: Repository[] = [];
    for (const entry of entries) {
      // Dot-directories are scratch space (clones in progress, spools); never mirrors.
      if (!entry.isDirectory() || entry.name.startsWith('.') || rel.length > 10) continue;
      out.push(...(await this.discover(path.join(dir, entry.name), [...rel, entry.name])));
    }
    return out;
  }

  /**
   * hoard's own credential for reading `url` upstream: the GitHub App installation token of the
   * URL's org (first path segment) when an app serves the host, as HTTP Basic `x-access-token`.
   * Undefined otherwise, and when the token cannot be had (logged; the request goes on without).
   */
  private async serverAuthorization(url: URL, signal?: AbortSignal): Promise<string | undefined> {
    if (!this.githubTokens?.covers(url.host)) return undefined;
    const org = url.pathname.split('/')[1] ?? '';
    try {
      const token = await this.githubTokens.tokenFor(url.host, org, signal);
      return token ? installationBasicAuth(token) : undefined;
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, host: url.host, org }, 'github-app token unavailable; going upstream without it');
      return undefined;
    }
  }

  /**
   * Forwards a read (ref advertisement, upload-pack) upstream. A caller who sent no credentials of
   * their own gets hoard's (the mirror would serve them the same content); pushes and every other
   * forwarded request never carry hoard's credentials.
   */
  private async forwardRead(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer | undefined): Promise<void> {
    const authorization = req.headers.authorization ? undefined : await this.serverAuthorization(url);
    return forwardToUpstream(req, res, url, body, authorization ? { serverAuthorization: authorization } : {});
  }

  private hostAllowed(host: string): boolean {
    return this.allowedHosts.size === 0 || this.allowedHosts.has(host);
  }

  private scheme(host: string): 'http' | 'https' {
    return this.plainHttpHosts.has(host) ? 'http' : 'https';
  }

  private upstreamURL(parsed: GitRequestPath): string {
    return `${this.scheme(parsed.host)}://${parsed.host}/${parsed.urlPath}`;
  }

  private repository(parsed: GitRequestPath): Repository {
    const url = this.upstreamURL(parsed);
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

  /** Number of repository records held (tests check it stays bounded). */
  get repositoryCount(): number {
    return this.repos.size;
  }

  /** Entry point for every `/git/*` request. */
  async handle(req: IncomingMessage, res: ServerResponse, afterGit: string, query: URLSearchParams): Promise<void> {
    if (req.method === 'POST' && afterGit.endsWith(REFRESH_SUFFIX)) return this.handleRefresh(req, res, afterGit.slice(0, -REFRESH_SUFFIX.length));
    let parsed: GitRequestPath;
    try {
      parsed = parseGitPath(afterGit);
    } catch (err) {
      if (err instanceof InvalidGitPathError) return refuseRequest(req, res, 400, `bad git path: ${err.message}`);
      throw err;
    }
    if (!this.hostAllowed(parsed.host)) {
      return refuseRequest(req, res, 403, `host not allowed: ${parsed.host} (allowed-hosts: ${[...this.allowedHosts].join(', ')})`);
    }
    this.refresher.touch(this.upstreamURL(parsed));
    // The query goes upstream exactly as the client wrote it: re-serialising the parsed form
    // changes it (`a` becomes `a=`, `%20` becomes `+`), which signed or opaque queries do not survive.
    const queryAt = (req.url ?? '').indexOf('?');
    const rawQuery = queryAt === -1 ? '' : (req.url ?? '').slice(queryAt + 1);
    const forwardUrl = new URL(`${this.scheme(parsed.host)}://${parsed.host}/${parsed.rawPath}${rawQuery ? `?${rawQuery}` : ''}`);
    const op = parsed.operation;

    if (op === 'snapshot.tar.zst' || op === 'snapshot.bundle' || op === 'lfs-snapshot.tar.zst' || op === 'ensure-refs') {
      await this.snapshots.handle(req, res, this.repository(parsed), parsed, query);
      return;
    }
    const service = query.get('service');
    if (op === 'git-receive-pack' || service === 'git-receive-pack') return this.forwardPush(req, res, parsed, forwardUrl);
    const isInfoRefs = op === 'info/refs' && req.method === 'GET' && service === 'git-upload-pack';
    const isUploadPack = op === 'git-upload-pack' && req.method === 'POST';
    if (!isInfoRefs && !isUploadPack) return forwardToUpstream(req, res, forwardUrl);

    let body: Buffer | undefined;
    if (isUploadPack) {
      try {
        body = await readBoundedBody(req, MAX_REQUEST_BODY);
      } catch (err) {
        if (err instanceof BodyTooLargeError) return answerAndClose(req, res, 413, err.message);
        if (err instanceof BodyIncompleteError) return;
        throw err;
      }
      const problem = await uploadPackBodyProblem(req.headers, body);
      if (problem) return sendText(res, problem.status, `malformed git-upload-pack request: ${problem.message}`);
    }
    // Looked up only now: a record taken before the body arrived may have been dropped meanwhile
    // (its clone failed), and starting a clone on a dropped record would race the live one.
    const repo = this.repository(parsed);
    if (repo.state === 'ready') return this.serveFromMirror(req, res, repo, parsed, forwardUrl, body);
    this.startClone(repo);
    // A cache miss for the metrics and status page: upstream answers while the mirror is built.
    res.setHeader('x-hoard-cache', 'miss');
    if (isInfoRefs || !body) return this.forwardRead(req, res, forwardUrl, body);
    return this.serveFromSpool(req, res, repo, forwardUrl, body);
  }

  /** `POST /git/{host}/{repo}/refresh` (trusted callers only: see the route's `trustedOnly`). */
  private handleRefresh(req: IncomingMessage, res: ServerResponse, repoPart: string): void {
    let parsed: GitRequestPath;
    try {
      parsed = parseGitPath(repoPart);
      if (parsed.operation !== '') throw new InvalidGitPathError(`expected /git/{host}/{repository}${REFRESH_SUFFIX}`);
    } catch (err) {
      if (err instanceof InvalidGitPathError) return refuseRequest(req, res, 400, `bad git path: ${err.message}`);
      throw err;
    }
    if (!this.hostAllowed(parsed.host)) return refuseRequest(req, res, 403, `host not allowed: ${parsed.host} (allowed-hosts: ${[...this.allowedHosts].join(', ')})`);
    handleRefreshRequest(req, res, parsed, this);
  }

  /**
   * Refreshes every mirror of the repository (Ready, or being cloned: then once its clone ends),
   * the name compared case-insensitively (forges treat `Org/Repo` and `org/repo` alike, and
   * clients may have used either), through `Repository.refresh`: a verified fetch on its fetch
   * queue, which ref listings wait for instead of advertising the old refs.
   */
  refresh(parsed: GitRequestPath, reason: string): string[] {
    if (!this.hostAllowed(parsed.host)) return [];
    const wanted = this.upstreamURL(parsed).toLowerCase();
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
  private startClone(repo: Repository): void {
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
      if ((await this.snapshots.restoreMirror(repo, target, signal)) === 'restored') {
        // An unreachable upstream keeps the restored mirror (stale) rather than discarding it for
        // a clone that would fail the same way.
        const outcome = await repo.freshenRestored(target, signal);
        this.logger.info({ upstream: repo.upstreamURL, stale: outcome === 'stale' }, 'mirror restored from its snapshot');
        return outcome;
      }
    } catch (err) {
      if (signal.aborted) throw err;
      const corrupt = err instanceof CorruptMirrorSnapshotError;
      this.logger.warn({ err: (err as Error).message, upstream: repo.upstreamURL, corrupt }, 'mirror restore failed; cloning from upstream instead');
      await fs.rm(target, { recursive: true, force: true });
    }
    await repo.cloneFromUpstream(target, signal);
  }

  /** Runs a clone job for a repository the caller moved to Cloning; always ends Ready or Empty. */
  private async runClone(repo: Repository, populate: (target: string, signal: AbortSignal) => Promise<void | 'fresh' | 'stale'>): Promise<void> {
    this.spools.set(repo.upstreamURL, new SpoolSet(path.join(this.spoolRoot, createHash('sha256').update(repo.upstreamURL).digest('hex').slice(0, 24))));
    try {
      await this.scheduler.submit(repo.upstreamURL, 'clone', (signal) => repo.clone(signal, populate), { clone: true });
      this.schedulePeriodic(repo);
    } catch (err) {
      this.logger.warn({ err, upstream: repo.upstreamURL }, 'clone failed');
      throw err;
    } finally {
      // A clone job that could not even run (scheduler stopping) must not leave the repository Cloning.
      if (repo.state === 'cloning' && !repo.cloneInProgress) repo.reset();
      const set = this.spools.get(repo.upstreamURL);
      this.spools.delete(repo.upstreamURL);
      void set?.close();
    }
  }

  private async serveFromSpool(req: IncomingMessage, res: ServerResponse, repo: Repository, url: URL, body: Buffer): Promise<void> {
    const set = this.spools.get(repo.upstreamURL);
    const key = `upload-pack-${createHash('sha256').update(body).digest('hex').slice(0, 16)}`;
    const headers = forwardableHeaders(req.headers);
    headers['host'] = url.host;
    headers['content-length'] = String(body.length);
    // The spool's upstream request belongs to the spool, so its headers must not carry one caller's credentials to others.
    delete headers['authorization'];
    delete headers['cookie'];
    // hoard's own credential is no caller's: a spool shared by every caller may carry it.
    const own = req.headers.authorization ? undefined : await this.serverAuthorization(url);
    if (own) headers['authorization'] = own;
    const spool = req.headers.authorization ? undefined : set?.acquire(key, () => requestUpstream({ url, method: 'POST', headers, body, timeoutMs: this.settings.cloneTimeoutMs }));
    if (!spool) return this.forwardRead(req, res, url, body);
    try {
      await spool.serve(res);
    } catch (err) {
      if (err instanceof SpoolUnavailableError && !res.headersSent) return this.forwardRead(req, res, url, body);
      res.destroy();
    }
  }

  /**
   * Forwards push traffic upstream. When a push (a receive-pack POST) is answered 2xx, the
   * mirror is marked stale before any byte of the answer reaches the pusher, and refreshed once
   * the answer completed: the pusher's next fetch, and anyone's clone, then sees the push (the
   * ref listing waits for the refresh) instead of the mirror's pre-push refs.
   */
  private forwardPush(req: IncomingMessage, res: ServerResponse, parsed: GitRequestPath, forwardUrl: URL): Promise<void> {
    // Only an existing record can have a mirror (discovery and clones create them); a push to an
    // unknown repository must not grow the map.
    const repo = parsed.operation === 'git-receive-pack' && req.method === 'POST' ? this.repos.get(this.upstreamURL(parsed)) : undefined;
    if (!repo) return forwardToUpstream(req, res, forwardUrl);
    return forwardToUpstream(req, res, forwardUrl, undefined, {
      onResponse: (status, relayed) => {
        if (status >= 200 && status < 300) repo.refresh({ reason: 'push through hoard', after: relayed }).catch(() => undefined);
      },
    });
  }

  private async serveFromMirror(req: IncomingMessage, res: ServerResponse, repo: Repository, parsed: GitRequestPath, forwardUrl: URL, body: Buffer | undefined): Promise<void> {
    const isAdvertisement = body === undefined || isLsRefsRequest(req.headers, body);
    // A pending refresh (after a push) is waited for, bounded by the fetch timeout; if it fails or
    // runs out, upstream answers this listing, as for a stale ref check.
    if (isAdvertisement) {
      const refreshed = await repo.awaitRefreshes(this.settings.fetchTimeoutMs);
      if (res.destroyed) return;
      if (!refreshed || (await repo.refsStale())) {
        // Answer this ref listing from upstream so the client sees fresh refs now; catch up in the background.
        this.queueFetch(repo);
        return this.forwardRead(req, res, forwardUrl, body);
      }
    }
    if (!isAdvertisement && body && !this.config['serve-unreachable'] && (await this.wantsUnreachable(repo, req, body))) {
      // Protocol v2 upload-pack checks only that a wanted object exists; hoard does not hand out
      // what its refs no longer reach: upstream decides, as for a client that asked it directly.
      this.logger.info({ upstream: repo.upstreamURL }, 'a wanted commit is unreachable in the mirror (serve-unreachable = false); answering from upstream');
      return this.forwardRead(req, res, forwardUrl, body);
    }
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.once('close', onClose);
    try {
      const cgi = await runHttpBackend({
        projectRoot: this.settings.mirrorRoot,
        pathInfo: `/${mirrorRelativePath(parsed.host, parsed.repoPath)}/${parsed.operation}`,
        method: req.method ?? 'GET',
        query: req.url?.includes('?') ? (req.url.split('?')[1] ?? '') : '',
        headers: req.headers,
        body,
        env: this.servingEnv,
        timeoutMs: SERVE_TIMEOUT_MS,
        signal: abort.signal,
        remoteAddress: req.socket?.remoteAddress,
      });
      const held: Buffer[] = [];
      let heldBytes = 0;
      let flushed = false;
      const flush = () => {
        flushed = true;
        res.setHeader('x-hoard-cache', 'hit');
        res.writeHead(cgi.status, cgi.headers);
        for (const chunk of held) res.write(chunk);
        held.length = 0;
      };
      for await (const chunk of cgi.body) {
        if (!flushed) {
          held.push(chunk as Buffer);
          heldBytes += (chunk as Buffer).length;
          if (heldBytes > HOLD_BACK_BYTES) flush();
        } else if (!res.write(chunk)) {
          await waitForDrain(res);
          if (res.destroyed) break;
        }
      }
      const exit = await cgi.child.done.then(
        () => undefined,
        (err: Error) => err,
      );
      if (!flushed && cgi.child.stderr().includes('not our ref')) {
        this.logger.info({ upstream: repo.upstreamURL }, 'mirror lacks a wanted object; answering from upstream');
        this.queueFetch(repo);
        return this.forwardRead(req, res, forwardUrl, body);
      }
      if (!flushed) flush();
      if (exit && abort.signal.aborted) return;
      if (exit) this.logger.warn({ err: exit, upstream: repo.upstreamURL }, 'upload-pack failed');
      res.end();
    } finally {
      res.off('close', onClose);
    }
  }

  /**
   * True when a protocol v2 fetch wants a commit no ref of the mirror reaches, or its wants cannot
   * be read (then the mirror does not judge it). v0/v1 requests are left to upload-pack, which
   * enforces the mirror's allowReachableSHA1InWant itself.
   */
  private async wantsUnreachable(repo: Repository, req: IncomingMessage, body: Buffer): Promise<boolean> {
    const wants = await fetchWants(req.headers, body);
    if (wants === undefined) return true;
    try {
      return await repo.hasUnreachableWants(wants);
    } catch (err) {
      this.logger.warn({ err, upstream: repo.upstreamURL }, 'reachability check of wanted commits failed; answering from upstream');
      return true;
    }
  }

  /** Queues a catch-up fetch on the repository's fetch queue; joins the one already pending. */
  private queueFetch(repo: Repository): void {
    repo.fetchInBackground((job) => this.scheduler.submit(`${repo.upstreamURL}/fetch`, 'fetch', job)).catch(() => undefined);
  }

  /** Every mirror with its state, last fetch and snapshot, for the status page and gauges. */
  async status(): Promise<StatusSection> {
    return { repositories: await this.statusRows.rows(this.repos.values()) };
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const entry of this.restores.values()) if (entry.timer) clearTimeout(entry.timer);
    this.refresher.close();
    this.prefetcher.close();
    await this.scheduler.drain();
    await Promise.all([...this.spools.values()].map((s) => s.close()));
  }
}

/** `strategy git {}`. */
export const gitStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'git', description: 'Git smart-HTTP caching proxy served from local bare mirrors.', schema: gitSchema },
  async create(ctx: StrategyContext<GitConfig>) {
    const clone = ctx.global['git-clone'];
    const mirrorRoot = path.resolve(ctx.global.state, clone['mirror-root']);
    const strategy = new GitStrategy(ctx.config, ctx.logger, ctx.cache, ctx.metadata, mirrorRoot, ctx.global.state, clone, ctx.global.scheduler, ctx.global.githubTokens);
    await strategy.start();
    // Registered before /git/*, and static, so it wins over the wildcard (no host is called "webhook").
    ctx.routes.on('POST', '/git/webhook/github', (req, res) => handleGithubWebhook(req, res, { secret: ctx.config['webhook-secret'], mirrors: strategy, logger: ctx.logger }));
    // Parse the raw URL ourselves: the router decodes escapes, and the path must be validated as sent.
    ctx.routes.on(['GET', 'POST'], '/git/*', (req, res, _params, query) => strategy.handle(req, res, (req.url ?? '').split('?')[0]?.slice('/git/'.length) ?? '', query), {
      // Anyone who can reach hoard may read through it, but only trusted callers may make it fetch on demand.
      trustedOnly: (method, path) => method === 'POST' && path.endsWith(REFRESH_SUFFIX),
    });
    return strategy;
  },
};
