import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { Logger } from 'pino';
import { Scheduler } from '../../jobs/scheduler.js';
import { sendText } from '../../http/router.js';
import { answerAndClose, refuseRequest } from '../../http/answer-and-close.js';
import { watchClientAbort } from '../../http/request-abort.js';
import { BodyIncompleteError, BodyTooLargeError, readBoundedBody } from '../../http/read-body.js';
import type { StatusSection, Strategy, StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { waitForDrain } from '../../util/tee.js';
import { zeroAsDefault } from '../../config/zero-as-default.js';
import { forwardToUpstream, forwardableHeaders, requestUpstream } from '../../http/upstream.js';
import { SpoolUnavailableError } from '../shared/spool.js';
import { BundleService } from './bundles.js';
import { runHttpBackend } from './cgi.js';
import { ColdServes } from './cold-serve.js';
import { gitSchema, type GitConfig } from './config.js';
import { SnapshotGenerator } from './generate.js';
import { Mirrors } from './mirrors.js';
import { InvalidGitPathError, parseGitPath, type GitRequestPath } from './paths.js';
import { PeriodicJobs } from './periodic.js';
import { Prefetcher, parsePrefetchEntry } from './prefetch.js';
import { mirrorRelativePath } from './repo-names.js';
import { configEnv, wantPolicyConfig } from './mirror-config.js';
import type { Repository } from './repository.js';
import { ArtifactRoutes } from './snapshot-routes.js';
import { GitStatus } from './status.js';
import { fetchWants, isLsRefsRequest, uploadPackBodyProblem } from './upload-pack-request.js';
import { handleGithubWebhook, handleRefreshRequest } from './webhook.js';
import { createHash } from 'node:crypto';

/** Largest upload-pack request body held in memory (it must be replayable for the not-our-ref fallback). */
const MAX_REQUEST_BODY = 64 << 20;
/** Mirror responses are held back up to this size so a `not our ref` failure can still go upstream. */
const HOLD_BACK_BYTES = 1 << 20;
const SERVE_TIMEOUT_MS = 60 * 60_000;
/** `POST /git/{host}/{repo}/refresh`: fetch the mirror now (any forge's push hook, or an operator). */
const REFRESH_SUFFIX = '/refresh';

/**
 * The git caching strategy (reference git §2-3, §6): the smart-HTTP routes, served from the local
 * mirrors that `Mirrors` keeps, with pushes and unknown paths forwarded upstream; the artifact
 * routes (snapshots, bundles, ensure-refs) go to `ArtifactRoutes`. This class composes the parts
 * and owns no lifecycle of its own.
 */
class GitStrategy implements Strategy {
  readonly name = 'git';
  get services() {
    return { gitMirrors: this.mirrors.gitMirrors };
  }
  readonly mirrors: Mirrors;
  private readonly config: GitConfig;
  private readonly logger: Logger;
  private readonly scheduler: Scheduler;
  /** Environment of `git http-backend` serving a mirror: the want policy rides above the mirror's own config. */
  private readonly servingEnv: NodeJS.ProcessEnv;
  private readonly artifacts: ArtifactRoutes;
  private readonly prefetcher: Prefetcher;
  private readonly statusRows: GitStatus;
  private warm = false;

  constructor(ctx: StrategyContext<GitConfig>) {
    const { config, logger, cache, metadata } = ctx;
    const clone = ctx.global['git-clone'];
    this.config = config;
    this.logger = logger;
    this.scheduler = new Scheduler({ concurrency: ctx.global.scheduler.concurrency, maxCloneConcurrency: ctx.global.scheduler['max-clone-concurrency'], logger });
    this.mirrors = new Mirrors({
      config,
      clone,
      scheduler: this.scheduler,
      cache,
      logger,
      mirrorRoot: path.resolve(ctx.global.state, clone['mirror-root']),
      stateDir: ctx.global.state,
      githubTokens: ctx.global.githubTokens,
    });
    const scratchRoot = this.mirrors.settings.scratchRoot;
    this.servingEnv = { ...this.mirrors.settings.gitEnv, ...configEnv(wantPolicyConfig(config['serve-unreachable'])) };
    const generator = new SnapshotGenerator({ cache, logger, scratchRoot, zstdThreads: config['zstd-threads'] });
    const periodic = new PeriodicJobs({ config, clone, scheduler: this.scheduler, metadata, logger, generator, mirrors: this.mirrors });
    const bundles = new BundleService({ cache, logger, scratchRoot, bundleTtlMs: zeroAsDefault(gitSchema, config, 'bundle-cache-ttl') }, this.mirrors);
    this.artifacts = new ArtifactRoutes(cache, logger, this.mirrors, new ColdServes(cache, logger, scratchRoot, this.mirrors), generator, bundles);
    this.statusRows = new GitStatus(cache, (url) => this.mirrors.refresher.lastTouched(url));
    const prefetched = config.prefetch.map(parsePrefetchEntry);
    for (const parsed of prefetched) this.mirrors.refresher.pin(this.mirrors.rules.upstreamURL(parsed));
    this.prefetcher = new Prefetcher({
      entries: prefetched,
      repository: (parsed) => this.mirrors.repository(parsed),
      ensureReady: (repo, signal) => this.mirrors.ensureReady(repo, signal),
      snapshot: (repo, discovered) => periodic.prefetchSnapshot(repo, discovered),
      firstRetryMs: config['mirror-restore-retry'],
      logger,
    });
  }

  ready(): boolean {
    return this.warm;
  }

  /** Discovers mirrors left by a previous run, then starts the prefetches. */
  async start(): Promise<void> {
    await this.mirrors.start();
    this.warm = true;
    // After discovery, so a mirror left by the previous run is kept rather than cloned again;
    // after `warm`: readiness never waits for a prefetch (a clone may take an hour, or upstream
    // may be down), requests for a repository still cloning join its clone as for any other.
    this.prefetcher.start();
  }

  /** Number of repository records held (tests check it stays bounded). */
  get repositoryCount(): number {
    return this.mirrors.repositoryCount;
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
    if (!this.mirrors.rules.hostAllowed(parsed.host)) {
      return refuseRequest(req, res, 403, `host not allowed: ${parsed.host} (allowed-hosts: ${this.mirrors.rules.allowedHostList()})`);
    }
    this.mirrors.refresher.touch(this.mirrors.rules.upstreamURL(parsed));
    // The query goes upstream exactly as the client wrote it: re-serialising the parsed form
    // changes it (`a` becomes `a=`, `%20` becomes `+`), which signed or opaque queries do not survive.
    const queryAt = (req.url ?? '').indexOf('?');
    const rawQuery = queryAt === -1 ? '' : (req.url ?? '').slice(queryAt + 1);
    const forwardUrl = new URL(`${this.mirrors.rules.scheme(parsed.host)}://${parsed.host}/${parsed.rawPath}${rawQuery ? `?${rawQuery}` : ''}`);
    const op = parsed.operation;

    if (op === 'snapshot.tar.zst' || op === 'snapshot.bundle' || op === 'lfs-snapshot.tar.zst' || op === 'ensure-refs') {
      await this.artifacts.handle(req, res, this.mirrors.repository(parsed), parsed, query);
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
    const repo = this.mirrors.repository(parsed);
    if (repo.state === 'ready') return this.serveFromMirror(req, res, repo, parsed, forwardUrl, body);
    this.mirrors.startClone(repo);
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
    if (!this.mirrors.rules.hostAllowed(parsed.host)) return refuseRequest(req, res, 403, `host not allowed: ${parsed.host} (allowed-hosts: ${this.mirrors.rules.allowedHostList()})`);
    handleRefreshRequest(req, res, parsed, this.mirrors);
  }

  /**
   * Forwards a read (ref advertisement, upload-pack) upstream. A caller who sent no credentials of
   * their own gets hoard's (the mirror would serve them the same content); pushes and every other
   * forwarded request never carry hoard's credentials.
   */
  private async forwardRead(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer | undefined): Promise<void> {
    const authorization = req.headers.authorization ? undefined : await this.mirrors.serverAuthorization(url);
    return forwardToUpstream(req, res, url, body, authorization ? { serverAuthorization: authorization } : {});
  }

  private async serveFromSpool(req: IncomingMessage, res: ServerResponse, repo: Repository, url: URL, body: Buffer): Promise<void> {
    const set = this.mirrors.spoolsOf(repo);
    const key = `upload-pack-${createHash('sha256').update(body).digest('hex').slice(0, 16)}`;
    const headers = forwardableHeaders(req.headers);
    headers['host'] = url.host;
    headers['content-length'] = String(body.length);
    // The spool's upstream request belongs to the spool, so its headers must not carry one caller's credentials to others.
    delete headers['authorization'];
    delete headers['cookie'];
    // hoard's own credential is no caller's: a spool shared by every caller may carry it.
    const own = req.headers.authorization ? undefined : await this.mirrors.serverAuthorization(url);
    if (own) headers['authorization'] = own;
    const spool = req.headers.authorization ? undefined : set?.acquire(key, () => requestUpstream({ url, method: 'POST', headers, body, timeoutMs: this.mirrors.settings.cloneTimeoutMs }));
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
    const repo = parsed.operation === 'git-receive-pack' && req.method === 'POST' ? this.mirrors.existing(parsed) : undefined;
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
      const refreshed = await repo.awaitRefreshes(this.mirrors.settings.fetchTimeoutMs);
      if (res.destroyed) return;
      if (!refreshed || (await repo.refsStale())) {
        // Answer this ref listing from upstream so the client sees fresh refs now; catch up in the background.
        this.mirrors.queueFetch(repo);
        return this.forwardRead(req, res, forwardUrl, body);
      }
    }
    if (!isAdvertisement && body && !this.config['serve-unreachable'] && (await this.wantsUnreachable(repo, req, body))) {
      // Protocol v2 upload-pack checks only that a wanted object exists; hoard does not hand out
      // what its refs no longer reach: upstream decides, as for a client that asked it directly.
      this.logger.info({ upstream: repo.upstreamURL }, 'a wanted commit is unreachable in the mirror (serve-unreachable = false); answering from upstream');
      return this.forwardRead(req, res, forwardUrl, body);
    }
    const abort = watchClientAbort(res);
    try {
      const cgi = await runHttpBackend({
        projectRoot: this.mirrors.settings.mirrorRoot,
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
        this.mirrors.queueFetch(repo);
        return this.forwardRead(req, res, forwardUrl, body);
      }
      if (!flushed) flush();
      if (exit && abort.signal.aborted) return;
      if (exit) this.logger.warn({ err: exit, upstream: repo.upstreamURL }, 'upload-pack failed');
      res.end();
    } finally {
      abort.release();
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

  /** Every mirror with its state, last fetch and snapshot, for the status page and gauges. */
  async status(): Promise<StatusSection> {
    return { repositories: await this.statusRows.rows(this.mirrors.records()) };
  }

  async close(): Promise<void> {
    this.mirrors.stop();
    this.prefetcher.close();
    await this.scheduler.drain();
    await this.mirrors.closeSpools();
  }
}

/** `strategy git {}`. */
export const gitStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'git', description: 'Git smart-HTTP caching proxy served from local bare mirrors.', schema: gitSchema },
  async create(ctx: StrategyContext<GitConfig>) {
    const strategy = new GitStrategy(ctx);
    await strategy.start();
    // Registered before /git/*, and static, so it wins over the wildcard (no host is called "webhook").
    ctx.routes.on('POST', '/git/webhook/github', (req, res) => handleGithubWebhook(req, res, { secret: ctx.config['webhook-secret'], mirrors: strategy.mirrors, logger: ctx.logger }));
    // Parse the raw URL ourselves: the router decodes escapes, and the path must be validated as sent.
    ctx.routes.on(['GET', 'POST'], '/git/*', (req, res, _params, query) => strategy.handle(req, res, (req.url ?? '').split('?')[0]?.slice('/git/'.length) ?? '', query), {
      // Anyone who can reach hoard may read through it, but only trusted callers may make it fetch on demand.
      trustedOnly: (method, path) => method === 'POST' && path.endsWith(REFRESH_SUFFIX),
    });
    return strategy;
  },
};
