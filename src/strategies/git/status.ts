import type { Cache } from '../../cache/cache.js';
import type { RepositoryStatus } from '../../http/strategy.js';
import type { Repository } from './repository.js';
import { artifactKey } from './artifacts.js';

/** How long a repository's snapshot figures are reused before the cache is asked again. */
const SNAPSHOT_MEMO_MS = 30_000;
/** The same for "no snapshot": shorter, so a first snapshot shows up soon after it is written. */
const NO_SNAPSHOT_MEMO_MS = 5_000;

interface SnapshotFigures {
  readAt: number;
  found: boolean;
  value: Promise<{ at: number; bytes: number } | undefined>;
}

/**
 * The git strategy's rows of the status page and per-repository gauges: each mirror's state and
 * last fetch (in memory), and its workstation snapshot's age and size, read from the cache (so a
 * snapshot another replica published counts too). Status is read on every page load and metrics
 * scrape; with an S3 tier a stat is a network round trip, so snapshot figures are memoised.
 */
export class GitStatus {
  private readonly snapshots = new Map<string, SnapshotFigures>();

  constructor(
    private readonly cache: Cache,
    private readonly lastTouched: (upstreamURL: string) => number | undefined,
  ) {}

  async rows(repos: Iterable<Repository>): Promise<RepositoryStatus[]> {
    const list = [...repos];
    const live = new Set(list.map((r) => r.upstreamURL));
    for (const url of this.snapshots.keys()) if (!live.has(url)) this.snapshots.delete(url);
    return Promise.all(
      list.map(async (repo) => {
        const snapshot = await this.snapshotOf(repo.upstreamURL);
        return {
          name: repo.upstreamURL,
          state: repo.state,
          lastFetchMs: repo.lastFetch || undefined,
          snapshotMs: snapshot?.at,
          snapshotBytes: snapshot?.bytes,
          lastUsedMs: this.lastTouched(repo.upstreamURL),
        };
      }),
    );
  }

  private snapshotOf(upstreamURL: string): Promise<{ at: number; bytes: number } | undefined> {
    const now = Date.now();
    const memo = this.snapshots.get(upstreamURL);
    if (memo && now - memo.readAt < (memo.found ? SNAPSHOT_MEMO_MS : NO_SNAPSHOT_MEMO_MS)) return memo.value;
    const value = this.cache.stat(artifactKey(upstreamURL, 'snapshot')).then(
      (st) => {
        const at = Date.parse(st.headers['last-modified'] ?? '');
        return { at: Number.isNaN(at) ? now : at, bytes: st.size };
      },
      // Not found (no snapshot yet) or a tier unavailable: no figures this time.
      () => undefined,
    );
    const figures: SnapshotFigures = { readAt: now, found: true, value };
    void value.then((v) => (figures.found = v !== undefined));
    this.snapshots.set(upstreamURL, figures);
    return value;
  }
}
