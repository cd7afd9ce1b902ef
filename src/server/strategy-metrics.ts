// Over 400 lines on purpose: one class declares every series below the HTTP layer (results,
// tiers, upstreams, fills, scheduler, repositories) and binds its label children once, so that
// `docs/grafana-dashboard.json`, `docs/alerts.yml` and the metrics-docs test check one place; the
// series families share the caps (MAX_*) and the bound-children cache, which a split would copy.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Cache } from '../cache/cache.js';
import type { TierObserver } from '../cache/tiered.js';
import type { FillObservation, QueueDepthSource, Telemetry, UpstreamObservation } from '../util/telemetry.js';
import type { RepositoryStatus } from '../http/strategy.js';

/** What `res.getHeader('x-hoard-cache')` returns. */
export type CacheHeaderValue = number | string | string[] | undefined;

/** Results a strategy's answer is counted as. `pass`: answered without the cache (forwarded, generated, refused). */
export const RESULTS = ['hit', 'miss', 'stale', 'revalidated', 'error', 'pass'] as const;
export type Result = (typeof RESULTS)[number];

/**
 * Per-repository series are capped to the most recently used repositories; beyond the cap a
 * repository still counts in `hoard_repositories{state}`, just without its own series.
 */
export const MAX_REPOSITORY_SERIES = 500;
/** Distinct upstream hosts with their own series; further hosts are counted as `other`. */
export const MAX_UPSTREAM_HOSTS = 100;
/** Distinct strategy names and job kinds with their own series (both come from code and config). */
const MAX_NAMES = 64;

/** A counter child plus the same count as a plain number, for the status page. */
interface CountingChild {
  inc(): void;
  value: number;
}

/** One upstream host's request tally, for the status page's upstream health. */
export interface UpstreamHealth {
  host: string;
  requests: number;
  errors: number;
  /** Epoch ms of the last failure (connect error, timeout, 5xx, failed git command). */
  lastErrorMs: number | undefined;
  /** Epoch ms of the last answer that was no failure. */
  lastOkMs: number | undefined;
}

/** One tier's figures, for the status page. */
export interface TierStatus {
  tier: number;
  name: string;
  size: number | undefined;
  limit: number | undefined;
  objects: number | undefined;
  evictions: number | undefined;
  servedBytes: number;
}

function headerResult(value: CacheHeaderValue): Result | undefined {
  switch (value) {
    case 'hit':
    case 'miss':
    case 'stale':
    case 'revalidated':
      return value;
    default:
      return undefined;
  }
}

/** `disk`, `memory`, `s3` from a cache's description (`disk:/var/lib/hoard`). */
function tierKind(cache: Cache): string {
  const text = String(cache);
  const colon = text.indexOf(':');
  return colon === -1 ? text : text.slice(0, colon);
}

/**
 * The metrics a user alerts on: cache results per strategy, bytes served by tier, tier sizes and
 * evictions, upstream requests, latency and errors per host, fills, scheduler queue depth and job
 * durations, and per-repository mirror state, last fetch and snapshot age.
 *
 * Hot paths (a result per request, an upstream request, a fill) touch only label children bound
 * once and kept in small Maps: prom-client's `inc(labels)` hashes and validates the label object
 * on every call, which earlier request profiles showed. Sizes, queue depth and repository series
 * are read when scraped (`collect`), never maintained per request.
 */
export class StrategyMetrics implements Telemetry, TierObserver {
  private readonly results: Counter<'strategy' | 'result'>;
  private readonly resultChildren = new Map<string, Record<Result, CountingChild>>();
  private readonly servedBytes: Counter<'tier' | 'kind'>;
  private readonly servedChildren: Array<{ inc(v: number): void; value: number }> = [];
  private readonly upstreamRequests: Counter<'host' | 'status'>;
  private readonly upstreamErrors: Counter<'host'>;
  private readonly upstreamDuration: Histogram<'host'>;
  private readonly upstreamChildren = new Map<string, UpstreamChildren>();
  private readonly fills: Counter<'outcome'>;
  private readonly fillStarted: { inc(): void };
  private readonly fillCommitted: { inc(): void };
  private readonly fillAbandoned: { inc(): void };
  private readonly jobDuration: Histogram<'kind' | 'outcome'>;
  private readonly jobChildren = new Map<string, { observe(v: number): void }>();
  private readonly evictions: Counter<'tier' | 'kind'>;
  private readonly evictionsSeen = new Map<number, number>();
  private readonly queues = new Set<QueueDepthSource>();
  private tiers: Cache[] = [];
  private tierStats: Array<Awaited<ReturnType<Cache['stats']>> | undefined> = [];
  private repositorySource: () => Promise<RepositoryStatus[]> = async () => [];

  constructor(registry: Registry) {
    const registers = [registry];
    this.results = new Counter({ name: 'hoard_strategy_requests_total', help: 'Answers of each strategy by cache result (hit, miss, stale, revalidated; error = 5xx; pass = answered without the cache).', labelNames: ['strategy', 'result'], registers });
    this.servedBytes = new Counter({ name: 'hoard_cache_served_bytes_total', help: 'Body bytes of cache reads by the tier that answered (0 = nearest).', labelNames: ['tier', 'kind'], registers });
    this.upstreamRequests = new Counter({ name: 'hoard_upstream_requests_total', help: 'Requests to upstream servers (HTTP, and git commands talking to an upstream) by host and status class (ok = git command succeeded, error = no answer).', labelNames: ['host', 'status'], registers });
    this.upstreamErrors = new Counter({ name: 'hoard_upstream_errors_total', help: 'Upstream requests that failed: no answer (connect error, timeout), a 5xx, or a failed git command.', labelNames: ['host'], registers });
    this.upstreamDuration = new Histogram({
      name: 'hoard_upstream_request_duration_seconds',
      help: 'Time to the upstream response head (HTTP) or to the end of the git command.',
      labelNames: ['host'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120, 600],
      registers,
    });
    this.fills = new Counter({ name: 'hoard_cache_fills_total', help: 'Cache fills (copies written while serving) by outcome: started, committed, abandoned.', labelNames: ['outcome'], registers });
    this.fillStarted = this.fills.labels({ outcome: 'started' });
    this.fillCommitted = this.fills.labels({ outcome: 'committed' });
    this.fillAbandoned = this.fills.labels({ outcome: 'abandoned' });
    this.jobDuration = new Histogram({
      name: 'hoard_job_duration_seconds',
      help: 'Background job durations by kind (clone, fetch, snapshot, repack, ...) and outcome.',
      labelNames: ['kind', 'outcome'],
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'hoard_scheduler_queue_depth',
      help: 'Background jobs waiting to run, over all schedulers.',
      registers,
      collect() {
        let depth = 0;
        for (const queue of self.queues) depth += queue.depth;
        this.set(depth);
      },
    });
    const tierGauge = (name: string, help: string, pick: (s: NonNullable<StrategyMetrics['tierStats'][number]>) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['tier', 'kind'],
        registers,
        async collect() {
          await self.sharedTierStats();
          this.reset();
          self.tiers.forEach((tier, i) => {
            const stats = self.tierStats[i];
            const value = stats && pick(stats);
            if (value !== undefined) this.set({ tier: String(i), kind: tierKind(tier) }, value);
          });
        },
      });
    tierGauge('hoard_cache_size_bytes', 'Bytes stored in each tier (tiers that report stats).', (s) => s.size);
    tierGauge('hoard_cache_limit_bytes', 'Configured size limit of each tier.', (s) => s.capacity);
    tierGauge('hoard_cache_objects', 'Objects stored in each tier.', (s) => s.objects);
    this.evictions = new Counter({
      name: 'hoard_cache_evictions_total',
      help: 'Entries a tier evicted (expired or over its limit).',
      labelNames: ['tier', 'kind'],
      registers,
      // The tiers' eviction totals are turned into increments as their stats are read.
      async collect() {
        await self.sharedTierStats();
      },
    });
    const repositoryGauge = (name: string, help: string, labelNames: string[], fill: (gauge: Gauge<string>, repositories: RepositoryStatus[], now: number) => void) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          const repositories = await self.sharedRepositories();
          this.reset();
          fill(this, repositories, Date.now());
        },
      });
    repositoryGauge('hoard_repositories', 'Repositories by mirror state (all of them, uncapped).', ['state'], (gauge, repositories) => {
      const byState = new Map<string, number>();
      for (const r of repositories) byState.set(r.state, (byState.get(r.state) ?? 0) + 1);
      for (const [state, count] of byState) gauge.set({ state }, count);
    });
    const capped = `(the ${MAX_REPOSITORY_SERIES} most recently used repositories)`;
    repositoryGauge('hoard_repository_state', `1 for the state each repository's mirror is in ${capped}.`, ['repository', 'state'], (gauge, repositories) => {
      for (const r of mostRecent(repositories, MAX_REPOSITORY_SERIES)) gauge.set({ repository: r.name, state: r.state }, 1);
    });
    repositoryGauge('hoard_repository_last_fetch_timestamp_seconds', `Unix time of the last successful fetch or clone ${capped}.`, ['repository'], (gauge, repositories) => {
      for (const r of mostRecent(repositories, MAX_REPOSITORY_SERIES)) if (r.lastFetchMs) gauge.set({ repository: r.name }, Math.floor(r.lastFetchMs / 1000));
    });
    repositoryGauge('hoard_repository_snapshot_age_seconds', `Age of the current snapshot ${capped}.`, ['repository'], (gauge, repositories, now) => {
      for (const r of mostRecent(repositories, MAX_REPOSITORY_SERIES)) if (r.snapshotMs) gauge.set({ repository: r.name }, Math.max(0, (now - r.snapshotMs) / 1000));
    });
  }

  /**
   * prom-client collects every metric of a scrape at once (all collects start in one tick), so
   * gauges fed by one read share the read in flight instead of each repeating it.
   */
  private tierRound: Promise<void> | undefined;
  private repositoryRound: Promise<RepositoryStatus[]> | undefined;

  private sharedTierStats(): Promise<void> {
    return (this.tierRound ??= this.refreshTierStats().finally(() => (this.tierRound = undefined)));
  }

  private sharedRepositories(): Promise<RepositoryStatus[]> {
    return (this.repositoryRound ??= this.repositorySource()
      .catch(() => [])
      .finally(() => (this.repositoryRound = undefined)));
  }

  /** The tiers whose size, limit and evictions are exported, nearest first. */
  watchTiers(tiers: Cache[]): void {
    this.tiers = tiers;
    this.tierStats = tiers.map(() => undefined);
  }

  /** Where the per-repository series come from (the strategies' status sections). */
  watchRepositories(source: () => Promise<RepositoryStatus[]>): void {
    this.repositorySource = source;
  }

  private async refreshTierStats(): Promise<void> {
    this.tierStats = await Promise.all(
      this.tiers.map((tier) =>
        // A tier without stats (s3) or failing to report has no size series this scrape.
        tier.stats().catch(() => undefined),
      ),
    );
    this.tiers.forEach((tier, i) => {
      const total = this.tierStats[i]?.evictions;
      if (total === undefined) return;
      const delta = total - (this.evictionsSeen.get(i) ?? 0);
      this.evictionsSeen.set(i, total);
      // Touched even at 0 so the series exists from the first scrape (alerts compare rates).
      this.evictions.inc({ tier: String(i), kind: tierKind(tier) }, Math.max(0, delta));
    });
  }

  /** The tiers with their current figures, for the status page. */
  async tierStatus(): Promise<TierStatus[]> {
    await this.sharedTierStats();
    return this.tiers.map((tier, i) => {
      const stats = this.tierStats[i];
      return { tier: i, name: String(tier), size: stats?.size, limit: stats?.capacity, objects: stats?.objects, evictions: stats?.evictions, servedBytes: this.servedChildren[i]?.value ?? 0 };
    });
  }

  observeResult(strategy: string, status: number, cacheHeader: CacheHeaderValue): void {
    const result: Result = status >= 500 ? 'error' : (headerResult(cacheHeader) ?? 'pass');
    this.resultsOf(strategy)[result].inc();
  }

  private resultsOf(strategy: string): Record<Result, CountingChild> {
    let children = this.resultChildren.get(strategy);
    if (!children) {
      const name = this.resultChildren.size < MAX_NAMES ? strategy : 'other';
      children = this.resultChildren.get(name) ?? bindResults(this.results, name);
      this.resultChildren.set(strategy, children);
    }
    return children;
  }

  /** Counts per strategy and result so far, for the status page's hit rates. */
  resultCounts(): Array<{ strategy: string; counts: Record<Result, number> }> {
    const seen = new Set<Record<Result, CountingChild>>();
    const out: Array<{ strategy: string; counts: Record<Result, number> }> = [];
    for (const [strategy, children] of this.resultChildren) {
      if (seen.has(children)) continue;
      seen.add(children);
      const counts = {} as Record<Result, number>;
      for (const r of RESULTS) counts[r] = children[r].value;
      out.push({ strategy, counts });
    }
    return out.sort((a, b) => a.strategy.localeCompare(b.strategy));
  }

  served(tier: number, bytes: number): void {
    let child = this.servedChildren[tier];
    if (!child) {
      const bound = this.servedBytes.labels({ tier: String(tier), kind: this.tiers[tier] ? tierKind(this.tiers[tier] as Cache) : 'unknown' });
      const made = { value: 0, inc: (v: number) => {
        made.value += v;
        bound.inc(v);
      } };
      child = made;
      this.servedChildren[tier] = child;
    }
    child.inc(bytes);
  }

  upstream(host: string): UpstreamObservation {
    const children = this.upstreamOf(host);
    const started = process.hrtime.bigint();
    let settled = false;
    const settle = (statusClass: string): void => {
      if (settled) return;
      settled = true;
      children.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      children.byStatus(statusClass).inc();
      children.health.requests++;
      if (statusClass === 'error' || statusClass === '5xx') {
        children.errors.inc();
        children.health.errors++;
        children.health.lastErrorMs = Date.now();
      } else {
        children.health.lastOkMs = Date.now();
      }
    };
    return {
      answered: (status) => settle(status === 0 ? 'ok' : `${Math.floor(status / 100)}xx`),
      failed: () => settle('error'),
    };
  }

  private upstreamOf(host: string): UpstreamChildren {
    let children = this.upstreamChildren.get(host);
    if (!children) {
      const name = this.upstreamChildren.size < MAX_UPSTREAM_HOSTS ? host.toLowerCase() : 'other';
      children = this.upstreamChildren.get(name) ?? bindUpstream(this, name);
      this.upstreamChildren.set(host, children);
    }
    return children;
  }

  /** Request and error tallies per upstream host, most errors first. */
  upstreamHealth(): UpstreamHealth[] {
    const unique = new Set([...this.upstreamChildren.values()].map((c) => c.health));
    return [...unique].sort((a, b) => b.errors - a.errors || a.host.localeCompare(b.host));
  }

  /** @internal children of one upstream host (bindUpstream). */
  labelsForHost(host: string): Pick<UpstreamChildren, 'duration' | 'errors' | 'byStatus'> {
    const statuses = new Map<string, { inc(): void }>();
    return {
      duration: this.upstreamDuration.labels({ host }),
      errors: this.upstreamErrors.labels({ host }),
      byStatus: (statusClass) => {
        let child = statuses.get(statusClass);
        if (!child) {
          child = this.upstreamRequests.labels({ host, status: statusClass });
          statuses.set(statusClass, child);
        }
        return child;
      },
    };
  }

  fill(): FillObservation {
    this.fillStarted.inc();
    let settled = false;
    return {
      committed: () => {
        if (settled) return;
        settled = true;
        this.fillCommitted.inc();
      },
      abandoned: () => {
        if (settled) return;
        settled = true;
        this.fillAbandoned.inc();
      },
    };
  }

  job(kind: string, seconds: number, ok: boolean): void {
    const id = `${kind}\0${ok}`;
    let child = this.jobChildren.get(id);
    if (!child) {
      const name = /^[a-z][a-z0-9-]{0,31}$/.test(kind) && this.jobChildren.size < MAX_NAMES ? kind : 'other';
      child = this.jobDuration.labels({ kind: name, outcome: ok ? 'ok' : 'failed' });
      this.jobChildren.set(id, child);
    }
    child.observe(seconds);
  }

  watchQueue(source: QueueDepthSource): () => void {
    this.queues.add(source);
    return () => this.queues.delete(source);
  }
}

interface UpstreamChildren {
  duration: { observe(v: number): void };
  errors: { inc(): void };
  byStatus(statusClass: string): { inc(): void };
  health: UpstreamHealth;
}

function bindUpstream(metrics: StrategyMetrics, host: string): UpstreamChildren {
  return { ...metrics.labelsForHost(host), health: { host, requests: 0, errors: 0, lastErrorMs: undefined, lastOkMs: undefined } };
}

function bindResults(counter: Counter<'strategy' | 'result'>, strategy: string): Record<Result, CountingChild> {
  const out = {} as Record<Result, CountingChild>;
  for (const result of RESULTS) {
    const bound = counter.labels({ strategy, result });
    const child: CountingChild = {
      value: 0,
      inc: () => {
        child.value++;
        bound.inc();
      },
    };
    out[result] = child;
  }
  return out;
}

/** The `limit` most recently used repositories (recency: last use, else last fetch). */
export function mostRecent(repositories: RepositoryStatus[], limit: number): RepositoryStatus[] {
  const recency = (r: RepositoryStatus) => r.lastUsedMs ?? r.lastFetchMs ?? 0;
  return [...repositories].sort((a, b) => recency(b) - recency(a) || a.name.localeCompare(b.name)).slice(0, limit);
}
