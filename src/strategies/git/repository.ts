// Over 400 lines on purpose: one Repository is the state machine of one mirror (Empty → Cloning
// → Ready) together with every git command that reads or changes it (clone, fetch, ref check,
// refresh, repack, reachability), because they share its locks and clocks: the running fetch,
// the snapshot exclusion, the ref-check timestamp and the pending refreshes. Split apart, each
// piece would need the others' private state; the lifecycle around it lives in mirrors.ts.
import { scratchPath } from '../../util/scratch.js';
import { mirrorConfig, withConfigEnv } from './mirror-config.js';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { runChild, startChild } from '../../util/process.js';
import { telemetry } from '../../util/telemetry.js';
import { GIT_REDIRECT_ERROR, NO_REDIRECTS, UpstreamMovedError, resolveUpstreamRedirect } from './upstream-redirect.js';
import { tracing } from '../../util/tracing-hook.js';
import { SingleFlight } from '../../util/single-flight.js';
import { advertisementDifferences, parseForEachRef, parseLsRemote, parseRefspecs } from './advertisement.js';

/** Repository lifecycle (reference git §3.1). */
export type RepoState = 'empty' | 'cloning' | 'ready';

/** Settings shared by all repositories of one strategy. */
export interface RepoSettings {
  mirrorRoot: string;
  /** Scratch space on the same filesystem, a dot-directory discovery skips. */
  scratchRoot: string;
  gitEnv: NodeJS.ProcessEnv;
  cloneTimeoutMs: number;
  fetchTimeoutMs: number;
  lsRemoteTimeoutMs: number;
  refCheckIntervalMs: number;
  packThreads: number;
  repackTimeoutMs: number;
  repackThreads: number;
  logger: Logger;
  /** `strategy git { serve-unreachable }`: hand out objects no ref of the mirror reaches. */
  serveUnreachable: boolean;
  /** The strategy's `allowed-hosts` check, which every hop of an upstream redirect must pass (absent: its own host only). */
  hostAllowed?: (host: string) => boolean;
  /**
   * Runs a job on the repository's fetch queue of the scheduler (worker caps, abort and drain on
   * shutdown). Absent (tests that build a Repository alone): the job runs at once.
   */
  runFetchJob?: (upstreamURL: string, id: string, job: (signal: AbortSignal) => Promise<void>) => Promise<void>;
  /**
   * Config for the git commands that talk to upstream `url` (clone, fetch, ls-remote), looked up
   * per command: GitHub App credentials as an `http.<origin>/.extraHeader`. It travels in the
   * child's environment only, never in a mirror's config file or on a command line.
   */
  upstreamConfig?: (url: string, signal?: AbortSignal) => Promise<Array<[string, string]>>;
}

/** Largest ref listing read from upstream or the mirror (a busy forge repository has 100k+ pull refs). */
const MAX_LISTING_BYTES = 256 << 20;
/** A symref target hoard will write into a mirror's HEAD: a branch with an ordinary name. */
const BRANCH_REF = /^refs\/heads\/[^\0-\x20\x7f~^:?*[\\]+$/;

/**
 * One upstream repository and its bare mirror. The state machine has a single atomic winner
 * for Empty → Cloning, and every path that does not end Ready returns to Empty, so a repository
 * can never be stuck Cloning.
 */
export class Repository {
  state: RepoState;
  lastFetch = 0;
  /**
   * True while the mirror was restored from its snapshot but never fetched: the upstream was
   * unreachable, so it is served as it was snapshotted (stale) until a fetch succeeds.
   */
  staleSinceRestore = false;
  /**
   * The fetch running now. Not a util/single-flight: a verified caller must tell the fetch that
   * was running when it arrived from one that started after (by identity), and wait out the
   * exclusion of a mirror snapshot between the two.
   */
  private fetching: Promise<void> | undefined;
  /** Held while something (a mirror snapshot) must see a mirror no fetch is changing. */
  private exclusion: Promise<void> | undefined;
  /**
   * The queued or running catch-up fetch (key 'catch-up', at most one per repository) and the one
   * trailing catch-up asked for while it ran (key 'trailing').
   */
  private readonly backgroundFetch = new SingleFlight<void>();
  /** True once the queued catch-up's job has begun (it may have listed upstream's refs already). */
  private catchUpStarted = false;
  private refCheckAt = 0;
  private refCheckStale = false;
  /** Where upstream's HEAD pointed at the last ref check, and the mirror's then; undefined = unknown. */
  private upstreamHead: string | undefined;
  private mirrorHead: string | undefined;
  /** When `upstreamHead` was learnt (see followUpstreamHead). */
  private upstreamHeadAt = 0;
  /** Refreshes asked for (a push, a webhook) and not yet done: ref listings wait for them. */
  private readonly refreshes = new Set<Promise<void>>();
  /** Bumped whenever a clone or fetch may have moved refs; memoised reads of refs check it. */
  private refsVersion = 0;
  private headMemo: { version: number; value: Promise<string> } | undefined;
  private readonly stateWaiters = new Set<() => void>();

  constructor(
    readonly upstreamURL: string,
    readonly mirrorDir: string,
    private readonly settings: RepoSettings,
    initial: RepoState,
  ) {
    this.state = initial;
    this.remoteURL = upstreamURL;
  }

  private setState(state: RepoState): void {
    this.state = state;
    for (const waiter of this.stateWaiters) waiter();
  }

  /** Atomically claims the clone; true for exactly one caller while Empty. */
  tryStartCloning(): boolean {
    if (this.state !== 'empty') return false;
    this.setState('cloning');
    return true;
  }

  /** Resolves when the state leaves Cloning (or at once when it is not Cloning). */
  waitWhileCloning(signal?: AbortSignal): Promise<void> {
    if (this.state !== 'cloning') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.state !== 'cloning') {
          this.stateWaiters.delete(check);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }
      };
      const onAbort = () => {
        this.stateWaiters.delete(check);
        reject(new Error('cancelled while waiting for the clone'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.stateWaiters.add(check);
    });
  }

  /**
   * Runs git. `upstream` names the command when it talks to the upstream (clone, fetch,
   * ls-remote): it then gets the strategy's upstream config (credentials) and, with tracing on,
   * runs in a client span whose `traceparent` git sends on its HTTP requests. Both travel as
   * http.extraHeader through the environment: never on the command line, where error messages
   * and process listings would show them, and never in a config file.
   */
  async git(args: string[], opts: { timeoutMs: number; signal?: AbortSignal | undefined; cwd?: string; allowLocal?: boolean; maxBytes?: number; upstream?: 'clone' | 'fetch' | 'ls-remote' }): Promise<string> {
    // Server-side git only talks http(s) to upstreams; cloning our own mirror is the one local use.
    let env = opts.allowLocal ? { ...this.settings.gitEnv, GIT_ALLOW_PROTOCOL: `${this.settings.gitEnv['GIT_ALLOW_PROTOCOL'] ?? 'http:https'}:file` } : this.settings.gitEnv;
    if (opts.upstream && this.settings.upstreamConfig) env = withConfigEnv(env, await this.settings.upstreamConfig(this.remoteURL, opts.signal));
    const run = (childEnv: NodeJS.ProcessEnv) =>
      runChild('git', [...NO_REDIRECTS, ...args], { env: childEnv, timeoutMs: opts.timeoutMs, signal: opts.signal, ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.maxBytes ? { maxBytes: opts.maxBytes } : {}) });
    const started = tracing && opts.upstream ? tracing.gitSpan(opts.upstream, this.remoteURL, (traceparent) => run(withConfigEnv(env, [['http.extraHeader', `traceparent: ${traceparent}`]]))) : run(env);
    return started.catch(async (err: Error) => {
      if (!GIT_REDIRECT_ERROR.test(err.message)) throw err;
      // git met a redirect it must not follow: hoard follows it itself, hop by hop, and either
      // refuses (naming the host) or records where the repository lives now for a second try.
      const outcome = await resolveUpstreamRedirect(this.remoteURL, this.settings.hostAllowed, opts.signal);
      if (!outcome) throw new Error(`upstream ${new URL(this.remoteURL).host} answered a redirect hoard could not follow: ${err.message}`, { cause: err });
      if ('refused' in outcome) throw new Error(outcome.refused, { cause: err });
      this.settings.logger.info({ upstream: this.upstreamURL, movedTo: outcome.url }, 'upstream redirects; using its new URL');
      this.remoteURL = outcome.url;
      throw new UpstreamMovedError(outcome.url, { cause: err });
    });
  }

  /**
   * Runs an upstream command, and once more when it met a redirect hoard accepted (GitLab's
   * `.git` suffix, a renamed GitHub repository), first pointing `mirror`'s origin at the new URL.
   */
  private async atUpstream<T>(run: () => Promise<T>, mirror?: string, signal?: AbortSignal): Promise<T> {
    try {
      return await this.measuredUpstream(run);
    } catch (err) {
      if (!(err instanceof UpstreamMovedError)) throw err;
      if (mirror) await this.git(['-C', mirror, 'config', 'remote.origin.url', this.remoteURL], { timeoutMs: 30_000, signal });
      return this.measuredUpstream(run);
    }
  }

  /** Runs a git command that talks to the upstream, reported as one upstream request of its host. */
  private async measuredUpstream<T>(run: () => Promise<T>): Promise<T> {
    let host: string;
    try {
      host = new URL(this.remoteURL).host;
    } catch {
      host = 'unknown';
    }
    const observed = telemetry().upstream(host);
    try {
      const result = await run();
      observed.answered(0);
      return result;
    } catch (err) {
      observed.failed();
      throw err;
    }
  }

  /** Applies the serving configuration to a mirror directory. */
  async configure(dir = this.mirrorDir): Promise<void> {
    for (const [key, value] of mirrorConfig(this.settings.packThreads, this.settings.serveUnreachable)) {
      await this.git(['-C', dir, 'config', key, value], { timeoutMs: 30_000 });
    }
  }

  /**
   * Where upstream git commands go: `upstreamURL` (the mirror's identity, what clients name)
   * until the upstream redirected and hoard accepted every hop, then the final URL.
   */
  private remoteURL: string;

  /** True while `clone` runs (distinguishes a queued clone from a running one). */
  cloneInProgress = false;
  /** Why the last clone failed (cleared by a successful one), for the requests that waited on it. */
  lastCloneFailure: string | undefined;

  /** Returns a Cloning repository whose job never ran to Empty. */
  reset(): void {
    if (this.state === 'cloning' && !this.cloneInProgress) this.setState('empty');
  }

  /**
   * Clones the mirror (the caller won `tryStartCloning`): builds it in `target` inside a scratch
   * directory (default: a full `git clone --mirror` from upstream; the strategy may restore a
   * mirror snapshot instead) and renames it into place, so a failure leaves nothing at the mirror
   * path and never touches siblings. Always ends Ready or Empty.
   */
  async clone(signal: AbortSignal, populate?: (target: string, signal: AbortSignal) => Promise<void | 'fresh' | 'stale'>): Promise<void> {
    if (this.state !== 'cloning') throw new Error(`clone of ${this.upstreamURL} started in state ${this.state}`);
    this.cloneInProgress = true;
    const scratch = scratchPath(this.settings.scratchRoot, 'clone-');
    try {
      await fs.mkdir(scratch, { recursive: true });
      const target = path.join(scratch, 'repo.git');
      const outcome = await (populate ?? ((dir, s) => this.cloneFromUpstream(dir, s)))(target, signal);
      await this.configure(target);
      await fs.mkdir(path.dirname(this.mirrorDir), { recursive: true });
      await fs.rename(target, this.mirrorDir);
      this.refsChanged();
      this.staleSinceRestore = outcome === 'stale';
      // Just cloned: the refs are as fresh as a ref check could make them. A stale restore was
      // never fetched: the next request checks (and the next fetch freshens) at once.
      this.lastFetch = this.staleSinceRestore ? 0 : Date.now();
      this.refCheckAt = this.staleSinceRestore ? 0 : Date.now();
      this.refCheckStale = false;
      this.lastCloneFailure = undefined;
      // What an earlier mirror's ref check saw no longer applies (HEAD is upstream's as cloned).
      this.upstreamHead = undefined;
      this.upstreamHeadAt = 0;
      this.mirrorHead = undefined;
      this.setState('ready');
      this.settings.logger.info({ upstream: this.upstreamURL, stale: this.staleSinceRestore }, 'mirror ready');
    } catch (err) {
      this.lastCloneFailure = (err as Error).message;
      throw err;
    } finally {
      await fs.rm(scratch, { recursive: true, force: true }).catch(() => undefined);
      this.cloneInProgress = false;
      if ((this.state as RepoState) !== 'ready') this.setState('empty');
    }
  }

  /** A full mirror clone from upstream into `target`. */
  async cloneFromUpstream(target: string, signal: AbortSignal): Promise<void> {
    await this.atUpstream(() => this.git(['clone', '--mirror', '-c', 'http.postBuffer=524288000', '--', this.remoteURL, target], { timeoutMs: this.settings.cloneTimeoutMs, signal, upstream: 'clone' }));
  }

  /**
   * Points a restored mirror at the upstream and fetches, so a mirror built from a snapshot is
   * up to date before it becomes Ready. When the fetch fails (the upstream is down) the restored
   * mirror, already verified sound by the restore, is kept and reported 'stale': serving what the
   * snapshot holds beats serving nothing, and the next fetch brings it up to date.
   */
  async freshenRestored(target: string, signal: AbortSignal): Promise<'fresh' | 'stale'> {
    await this.git(['-C', target, 'config', 'remote.origin.url', this.remoteURL], { timeoutMs: 30_000, signal });
    await this.git(['-C', target, 'config', 'remote.origin.mirror', 'true'], { timeoutMs: 30_000, signal });
    await this.git(['-C', target, 'config', '--replace-all', 'remote.origin.fetch', '+refs/*:refs/*'], { timeoutMs: 30_000, signal });
    try {
      await this.atUpstream(() => this.git(['-C', target, '-c', 'http.postBuffer=524288000', 'fetch', '--prune', '--quiet', 'origin'], { timeoutMs: this.settings.cloneTimeoutMs, signal, upstream: 'fetch' }), target, signal);
      return 'fresh';
    } catch (err) {
      if (signal.aborted) throw err;
      this.settings.logger.warn({ upstream: this.upstreamURL, err: (err as Error).message }, 'restored mirror could not be freshened (upstream unreachable); keeping it, stale');
      return 'stale';
    }
  }

  /**
   * Fetches from upstream. Coalescing (default): joins a running fetch instead of starting
   * another. `verified`: waits for a running fetch, then fetches again so the result reflects
   * upstream as of now.
   */
  async fetch(opts: { signal?: AbortSignal | undefined; verified?: boolean; lenient?: boolean } = {}): Promise<void> {
    // Fetches that were already running when we were called cannot prove freshness to a verified
    // caller; one that starts after that point can.
    const before = this.fetching;
    for (;;) {
      // Checked on every pass: while we waited for a fetch, a mirror snapshot may have claimed the
      // exclusion (it waits for that same fetch), and it must see no fetch until it is done.
      while (this.exclusion) await this.exclusion;
      const running = this.fetching;
      if (!running) break;
      if (!opts.verified || running !== before) return running;
      await running.catch(() => undefined);
    }
    const speed = opts.lenient ? [] : ['-c', 'http.lowSpeedLimit=1000', '-c', 'http.lowSpeedTime=60'];
    // A ref check since the last fetch ended is what this fetch is for; otherwise HEAD must be asked.
    const headKnown = this.upstreamHeadAt > this.lastFetch;
    const run = this.atUpstream(() => this.git(['-C', this.mirrorDir, '-c', 'http.postBuffer=524288000', ...speed, 'fetch', '--prune', '--prune-tags', '--quiet', 'origin'], {
      timeoutMs: opts.lenient ? this.settings.cloneTimeoutMs : this.settings.fetchTimeoutMs,
      signal: opts.signal,
      upstream: 'fetch',
    }), this.mirrorDir, opts.signal)
      .then(() => this.followUpstreamHead(opts.signal, headKnown))
      .finally(() => this.refsChanged())
      .then(() => {
      this.lastFetch = Date.now();
      this.staleSinceRestore = false;
      this.refCheckAt = Date.now();
      this.refCheckStale = false;
    });
    this.fetching = run;
    try {
      await run;
    } finally {
      if (this.fetching === run) this.fetching = undefined;
    }
  }

  /**
   * Queues a background catch-up fetch through `submit` unless one is already queued, and returns
   * it. During a stale window every ref listing asks for a fetch; one per repository is enough,
   * since a fetch brings in everything upstream has when it runs. A caller arriving while the
   * catch-up already runs gets one trailing ref check after it (shared with every other such
   * caller) and a second catch-up if that finds the mirror still behind: the running fetch may
   * have read upstream's refs before the change this caller saw, and with no further request
   * (a CI job that fetched once) the mirror would otherwise stay behind a mid-fetch force-push.
   */
  fetchInBackground(submit: (job: (signal: AbortSignal) => Promise<void>) => Promise<void>): Promise<void> {
    const running = this.backgroundFetch.current('catch-up');
    if (running && this.catchUpStarted) {
      return this.backgroundFetch.run('trailing', async () => {
        await running.catch(() => undefined);
        // A real check, not the verdict the fetch that just ended left behind.
        this.refCheckAt = 0;
        if (await this.refsStale()) await this.queueCatchUp(submit);
      });
    }
    return this.queueCatchUp(submit);
  }

  private queueCatchUp(submit: (job: (signal: AbortSignal) => Promise<void>) => Promise<void>): Promise<void> {
    return this.backgroundFetch.run('catch-up', () => submit(async (signal) => {
      this.catchUpStarted = true;
      try {
        await this.fetch({ signal });
      } finally {
        this.catchUpStarted = false;
      }
    }));
  }

  /**
   * True when upstream's advertisement differs from the mirror: any ref the mirror's fetch
   * refspecs map (heads, tags, and every other namespace a `clone --mirror` copies) new, moved or
   * deleted, or HEAD pointing elsewhere (the rule: advertisement.ts). The repository's one
   * freshness check, for ref listings and snapshots alike. Rate-limited to one check per
   * ref-check-interval (the timestamp is taken before the check so concurrent requests do not
   * stampede; they get the last verdict); a failed ls-remote counts as fresh. While a catch-up
   * fetch or a refresh is pending the refs are known to be behind, so no ls-remote runs until it
   * lands. (A pending trailing check is not a verdict: the mirror is served meanwhile.)
   */
  async refsStale(): Promise<boolean> {
    if (this.backgroundFetch.has('catch-up') || this.refreshes.size > 0) return true;
    const now = Date.now();
    if (now - this.refCheckAt < this.settings.refCheckIntervalMs) return this.refCheckStale;
    this.refCheckAt = now;
    try {
      const local = { timeoutMs: 30_000, maxBytes: MAX_LISTING_BYTES };
      const [remote, refs, head, refspecs] = await Promise.all([
        this.atUpstream(() => this.git(['ls-remote', '--symref', '--', this.remoteURL], { timeoutMs: this.settings.lsRemoteTimeoutMs, maxBytes: MAX_LISTING_BYTES, upstream: 'ls-remote' })),
        this.git(['-C', this.mirrorDir, 'for-each-ref', '--format=%(objectname) %(refname)'], local),
        // Exit 1 = detached HEAD: no symref to compare.
        this.git(['-C', this.mirrorDir, 'symbolic-ref', '-q', 'HEAD'], local).catch(() => ''),
        this.git(['-C', this.mirrorDir, 'config', '--get-all', 'remote.origin.fetch'], local).catch(() => ''),
      ]);
      const upstream = parseLsRemote(remote);
      this.upstreamHead = upstream.head;
      this.upstreamHeadAt = Date.now();
      this.mirrorHead = head.trim() || undefined;
      const differences = advertisementDifferences(upstream, { refs: parseForEachRef(refs), head: this.mirrorHead }, parseRefspecs(refspecs));
      const stale = differences.length > 0;
      if (stale) this.settings.logger.info({ upstream: this.upstreamURL, differences }, 'mirror refs behind upstream');
      this.refCheckStale = stale;
      if (stale) this.refCheckAt = 0;
      return stale;
    } catch (err) {
      this.settings.logger.warn({ err, upstream: this.upstreamURL }, 'ref check failed; treating refs as fresh');
      this.refCheckStale = false;
      this.refCheckAt = 0;
      return false;
    }
  }

  /**
   * Brings the mirror up to upstream now, for callers that know upstream changed (a push that
   * went through hoard, a webhook): from this call on, ref listings wait for it (`awaitRefreshes`)
   * instead of advertising the mirror's old refs. Once `after` settles (a forwarded push has
   * completed upstream) a verified fetch runs on the repository's fetch queue; a repository
   * being cloned is refreshed when its clone ends, an Empty one needs nothing. Rejects when the
   * fetch failed (the next ref listing then runs a real ref check).
   */
  refresh(opts: { reason: string; after?: Promise<unknown> }): Promise<void> {
    const run = (async () => {
      await opts.after?.catch(() => undefined);
      if (this.state === 'cloning') await this.waitWhileCloning();
      if (this.state !== 'ready') return;
      this.settings.logger.info({ upstream: this.upstreamURL, reason: opts.reason }, 'refreshing mirror');
      // Verified: a fetch that started before the push landed upstream cannot stand in for this one.
      const job = (signal: AbortSignal) => this.fetch({ signal, verified: true });
      await (this.settings.runFetchJob ? this.settings.runFetchJob(this.upstreamURL, 'refresh', job) : job(new AbortController().signal));
    })();
    this.refreshes.add(run);
    run
      .catch((err: Error) => {
        this.settings.logger.warn({ err: err.message, upstream: this.upstreamURL, reason: opts.reason }, 'mirror refresh failed');
        this.refCheckAt = 0;
      })
      .finally(() => this.refreshes.delete(run));
    return run;
  }

  /**
   * Waits, at most `timeoutMs`, for the refreshes pending now. True when there were none or all
   * succeeded; false when one failed or the wait ran out (the caller answers from upstream then).
   */
  async awaitRefreshes(timeoutMs: number): Promise<boolean> {
    if (this.refreshes.size === 0) return true;
    const all = Promise.all([...this.refreshes]).then(
      () => true,
      () => false,
    );
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([all, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * `git fetch` never moves a mirror's HEAD, so a change of upstream's default branch would never
   * reach clones: point HEAD where upstream's pointed at the last ref check, once that branch is here.
   * A fetch no ref check preceded since the previous fetch ended (the background refresher's, a
   * webhook's, a push's refresh) asks upstream's HEAD itself: otherwise those would bring every ref
   * but HEAD.
   */
  private async followUpstreamHead(signal: AbortSignal | undefined, headKnown: boolean): Promise<void> {
    if (!headKnown) {
      try {
        const listing = await this.atUpstream(() => this.git(['ls-remote', '--symref', '--', this.remoteURL, 'HEAD'], { timeoutMs: this.settings.lsRemoteTimeoutMs, signal, maxBytes: MAX_LISTING_BYTES, upstream: 'ls-remote' }));
        this.upstreamHead = parseLsRemote(listing).head;
        this.upstreamHeadAt = Date.now();
      } catch (err) {
        // The fetch itself succeeded; HEAD is followed at the next ref check instead.
        this.settings.logger.warn({ err: (err as Error).message, upstream: this.upstreamURL }, "could not read upstream's HEAD after a fetch");
        return;
      }
    }
    const target = this.upstreamHead;
    if (target === undefined || target === this.mirrorHead) return;
    // The name comes from upstream: only an ordinary branch the mirror now holds becomes HEAD.
    if (!BRANCH_REF.test(target)) return;
    const exists = await this.git(['-C', this.mirrorDir, 'rev-parse', '--verify', '-q', `${target}^{commit}`], { timeoutMs: 30_000, signal }).then(
      () => true,
      () => false,
    );
    if (!exists) return;
    await this.git(['-C', this.mirrorDir, 'symbolic-ref', 'HEAD', target], { timeoutMs: 30_000, signal });
    this.settings.logger.info({ upstream: this.upstreamURL, from: this.mirrorHead, to: target }, 'mirror HEAD follows upstream');
    this.mirrorHead = target;
  }

  /**
   * Runs `fn` while no fetch changes the mirror: waits for a running fetch and holds new ones
   * back (tarring a mirror while `git fetch` rewrites packed-refs captures a truncated file).
   */
  async withFetchesExcluded<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusion) await this.exclusion;
    let release!: () => void;
    this.exclusion = new Promise<void>((resolve) => (release = resolve));
    try {
      await this.fetching?.catch(() => undefined);
      return await fn();
    } finally {
      this.exclusion = undefined;
      release();
    }
  }

  /**
   * Geometric repack: folds the small packs that fetches leave behind into larger ones without
   * rewriting the big base pack each time, and refreshes the multi-pack index, bitmaps and commit
   * graph that make upload-pack fast. Runs beside fetches (git repack is safe against them).
   */
  async repack(signal: AbortSignal): Promise<void> {
    const threads = this.settings.repackThreads > 0 ? ['-c', `pack.threads=${this.settings.repackThreads}`] : [];
    await this.git(['-C', this.mirrorDir, ...threads, 'repack', '-d', '-q', '--geometric=2', '--write-midx', '--write-bitmap-index'], { timeoutMs: this.settings.repackTimeoutMs, signal });
    await this.git(['-C', this.mirrorDir, 'commit-graph', 'write', '--reachable', '--split', '--no-progress'], { timeoutMs: this.settings.repackTimeoutMs, signal });
  }

  /**
   * True when some of `wants` is a commit (or a tag of one) that no ref of the mirror reaches: a
   * commit a force-push upstream orphaned. Ids the mirror lacks are ignored (upload-pack answers
   * them "not our ref", which sends the request upstream), and so are trees and blobs: proving
   * those reachable needs a walk of every object, and partial clones fetch them lazily by id.
   */
  async hasUnreachableWants(wants: string[], signal?: AbortSignal): Promise<boolean> {
    if (wants.length === 0) return false;
    const child = startChild('git', ['-C', this.mirrorDir, 'rev-list', '--ignore-missing', '--max-count=1', '--stdin', '--not', '--all'], {
      env: this.settings.gitEnv,
      timeoutMs: 60_000,
      signal,
      stdin: 'pipe',
      stdout: 'pipe',
    });
    let found = false;
    child.child.stdout?.on('data', () => {
      found = true;
    });
    child.child.stdin?.on('error', () => undefined);
    child.child.stdin?.end(`${wants.join('\n')}\n`);
    await child.done;
    return found;
  }

  /** Forces the next `refsStale` to run a real check. */
  invalidateRefCheck(): void {
    this.refCheckAt = 0;
  }

  /** HEAD commit of the mirror. */
  async head(): Promise<string> {
    // Every snapshot chunk request needs HEAD for its freshen headers; a `git rev-parse` each time
    // costs ~25 ms, so it is remembered until the mirror's refs next change.
    const version = this.refsVersion;
    if (this.headMemo?.version === version) return this.headMemo.value;
    const value = this.git(['-C', this.mirrorDir, 'rev-parse', 'HEAD'], { timeoutMs: 30_000 }).then((out) => out.trim());
    this.headMemo = { version, value };
    value.catch(() => {
      if (this.headMemo?.value === value) this.headMemo = undefined;
    });
    return value;
  }

  /** Forgets what was read from the mirror's refs; called whenever a clone or fetch changed them. */
  private refsChanged(): void {
    this.refsVersion++;
    this.headMemo = undefined;
  }
}
