import type { RepositoryStatus, StatusSection, Strategy } from '../../http/strategy.js';
import { RESULTS, mostRecent, type StrategyMetrics } from '../strategy-metrics.js';
import type { RecentErrors } from './recent-errors.js';

/** Repository rows the page lists (most recently used first); the rest are only counted. */
export const MAX_PAGE_REPOSITORIES = 500;

/** A table of the status page: the HTML page and its refreshing script render the same rows. */
export interface StatusTable {
  id: string;
  title: string;
  /** Shown under the title (e.g. "showing 500 of 812"). */
  note?: string;
  columns: string[];
  /** Cell texts; `cls` marks a row (`bad`, `warn`, `good`) for colour. */
  rows: Array<{ cells: string[]; cls?: string }>;
  /** Shown instead of an empty table. */
  empty: string;
}

/** What `GET /?format=json` answers and the page shows. */
export interface StatusReport {
  generatedAt: string;
  uptimeSeconds: number;
  tables: StatusTable[];
  /** The same facts unformatted, for scripts. */
  data: {
    repositories: Array<RepositoryStatus & { strategy: string }>;
    repositoriesTotal: number;
    strategies: Array<{ strategy: string; counts: Record<string, number>; hitRate: number | undefined }>;
    tiers: Awaited<ReturnType<StrategyMetrics['tierStatus']>>;
    upstreams: ReturnType<StrategyMetrics['upstreamHealth']>;
    recentErrors: ReturnType<RecentErrors['list']>;
  };
}

/** Everything the status page reads; each part comes from the interface that owns it. */
export interface StatusSources {
  strategies: readonly Strategy[];
  metrics: StrategyMetrics;
  recentErrors: RecentErrors | undefined;
}

/** Every strategy's repositories, tagged with the strategy (a failing section contributes none). */
export async function allRepositories(strategies: readonly Strategy[]): Promise<Array<RepositoryStatus & { strategy: string }>> {
  const sections = await Promise.all(strategies.map(async (s) => ({ name: s.name, section: s.status ? await Promise.resolve(s.status()).catch((): StatusSection => ({})) : ({} as StatusSection) })));
  return sections.flatMap(({ name, section }) => (section.repositories ?? []).map((r) => ({ ...r, strategy: name })));
}

/** `1.5 GiB` */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** `3m 20s ago`-style age of an epoch-ms instant (`–` when absent). */
export function formatAge(ms: number | undefined, now: number): string {
  if (!ms) return '–';
  let s = Math.max(0, Math.round((now - ms) / 1000));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h ago`;
  if (h) return `${h}h ${m}m ago`;
  if (m) return `${m}m ${s}s ago`;
  return `${s}s ago`;
}

function percent(x: number | undefined): string {
  return x === undefined ? '–' : `${(x * 100).toFixed(1)}%`;
}

/**
 * The share of cacheable answers served from the cache: (hit + stale + revalidated) over those
 * plus misses. Errors and pass-through answers are shown beside it, not in it.
 */
export function hitRate(counts: Record<string, number>): number | undefined {
  const served = (counts['hit'] ?? 0) + (counts['stale'] ?? 0) + (counts['revalidated'] ?? 0);
  const total = served + (counts['miss'] ?? 0);
  return total === 0 ? undefined : served / total;
}

/** Gathers the status report. Cheap: memory reads, tiers' stats, memoised snapshot stats. */
export async function gatherStatus(sources: StatusSources, now = Date.now()): Promise<StatusReport> {
  const [repositories, tiers] = await Promise.all([allRepositories(sources.strategies), sources.metrics.tierStatus()]);
  const shown = mostRecent(repositories, MAX_PAGE_REPOSITORIES) as Array<RepositoryStatus & { strategy: string }>;
  const strategies = sources.metrics.resultCounts().map(({ strategy, counts }) => ({ strategy, counts, hitRate: hitRate(counts) }));
  const upstreams = sources.metrics.upstreamHealth();
  const recentErrors = sources.recentErrors?.list() ?? [];
  const tables: StatusTable[] = [
    {
      id: 'repositories',
      title: 'Repositories',
      ...(repositories.length > shown.length ? { note: `showing the ${shown.length} most recently used of ${repositories.length}` } : {}),
      columns: ['Repository', 'Strategy', 'State', 'Last fetch', 'Snapshot age', 'Snapshot size'],
      rows: shown.map((r) => ({ cells: [r.name, r.strategy, r.state, formatAge(r.lastFetchMs, now), formatAge(r.snapshotMs, now), formatBytes(r.snapshotBytes)], cls: r.state === 'ready' ? 'good' : r.state === 'empty' ? 'warn' : '' })),
      empty: 'No repositories yet: clone one through hoard.',
    },
    {
      id: 'strategies',
      title: 'Hit rates',
      columns: ['Strategy', 'Hit rate', ...RESULTS],
      rows: strategies.map((s) => ({ cells: [s.strategy, percent(s.hitRate), ...RESULTS.map((r) => String(s.counts[r] ?? 0))], cls: (s.counts['error'] ?? 0) > 0 ? 'warn' : '' })),
      empty: 'No requests served yet.',
    },
    {
      id: 'tiers',
      title: 'Cache tiers',
      columns: ['Tier', 'Backend', 'Size', 'Limit', 'Used', 'Objects', 'Evictions', 'Bytes served'],
      rows: tiers.map((t) => ({
        cells: [String(t.tier), t.name, formatBytes(t.size), formatBytes(t.limit), t.size !== undefined && t.limit ? percent(t.size / t.limit) : '–', t.objects === undefined ? '–' : String(t.objects), t.evictions === undefined ? '–' : String(t.evictions), formatBytes(t.servedBytes)],
      })),
      empty: 'No cache tiers.',
    },
    {
      id: 'upstreams',
      title: 'Upstream health',
      columns: ['Host', 'Requests', 'Errors', 'Last error', 'Last success'],
      rows: upstreams.map((u) => ({ cells: [u.host, String(u.requests), String(u.errors), formatAge(u.lastErrorMs, now), formatAge(u.lastOkMs, now)], cls: u.lastErrorMs && (!u.lastOkMs || u.lastErrorMs > u.lastOkMs) ? 'bad' : u.errors > 0 ? 'warn' : 'good' })),
      empty: 'No upstream contacted yet.',
    },
    {
      id: 'errors',
      title: 'Recent errors',
      columns: ['When', 'Level', 'Source', 'Message'],
      rows: recentErrors.map((e) => ({ cells: [formatAge(e.time, now), e.level, e.source ?? '–', e.message], cls: e.level === 'error' ? 'bad' : 'warn' })),
      empty: sources.recentErrors ? 'No warnings or errors logged.' : 'Not recorded (the server was started with its own logger).',
    },
  ];
  return {
    generatedAt: new Date(now).toISOString(),
    uptimeSeconds: Math.round(process.uptime()),
    tables,
    data: { repositories: shown, repositoriesTotal: repositories.length, strategies, tiers, upstreams, recentErrors },
  };
}
