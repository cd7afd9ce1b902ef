// Over 400 lines on purpose: the tiered cache's read path (fall-through with the authoritative
// ETag check, near-tier fills teed from a deeper read, ranged reads and their background heal)
// and its write path (authoritative tier first, near tiers after) share one set of invariants
// about which tier may answer; keeping them in one file keeps those invariants readable together.
import { randomUUID } from 'node:crypto';
import { Readable, Transform, Writable, finished, pipeline } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import type { Cache, CacheStats, CacheWriter, CreateOptions, OpenResult, StaleRead, StatResult } from './cache.js';
import type { Conditions, ReadConditions } from './conditional.js';
import { CacheError, isCacheError, notFound } from './errors.js';
import { assertNamespace, type CacheKey } from './key.js';
import { unquoteStrongETag, type StoredHeaders } from './headers.js';
import type { MetadataStore, VersionedValue } from '../metadata/store.js';
import { teeInto, waitForDrain } from '../util/tee.js';
import { SingleFlight } from '../util/single-flight.js';

/**
 * Heals running at once across the process. Each one reads a whole object from a deeper tier
 * (usually S3) and writes it to local disk; on the 2-core machines hoard targets a handful is
 * enough to converge tier 0 without starving the requests being served. Saturation skips the
 * heal; the next ranged read of that key asks again.
 */
const MAX_HEALS = 4;
/** A heal that has not finished by then is abandoned (its tier-0 write is discarded). */
const HEAL_TIMEOUT_MS = 5 * 60_000;
/** Told which tier answered each read, and with how many bytes (metrics: bytes served by tier). */
export interface TierObserver {
  /** Tier `tier` (0 = nearest) answered an open with `bytes` body bytes (the range length for a 206). */
  served(tier: number, bytes: number): void;
}

/** The body bytes an open answers with: the range's length for a 206, else the whole object. */
export function bodyBytes(result: OpenResult): number {
  const length = Number(result.headers['content-length']);
  return Number.isFinite(length) ? length : result.size;
}

/** Compare-and-set rounds a writer spends agreeing the ETag map with the authoritative tier. */
const PUBLISH_ATTEMPTS = 3;

/**
 * Background copies of whole objects into tier 0 after ranged reads were served from a deeper
 * tier. Shared by every namespace view of one tiered cache so the bound and the per-key
 * deduplication hold process-wide, and so `close` can cancel and drain them.
 */
class Healer {
  private readonly running = new SingleFlight<void>();
  private readonly controller = new AbortController();

  /** Starts `job` unless one is already running for `id`, the limit is reached, or we are closing. */
  start(id: string, job: (signal: AbortSignal) => Promise<void>): void {
    if (this.controller.signal.aborted || this.running.has(id) || this.running.size >= MAX_HEALS) return;
    const signal = AbortSignal.any([this.controller.signal, AbortSignal.timeout(HEAL_TIMEOUT_MS)]);
    // Healing is an optimisation: any failure just leaves tier 0 as it was.
    void this.running.run(id, () => job(signal).catch(() => undefined));
  }

  /** Resolves once no heal is running (tests use it instead of sleeping). */
  idle(): Promise<void> {
    return this.running.idle();
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.idle();
  }
}

/** Headers a tier-0 copy is created with: the source's, minus what describes one transfer. */
function copyHeaders(headers: StoredHeaders): StoredHeaders {
  const stored = { ...headers };
  delete stored['content-length'];
  delete stored['content-range'];
  return stored;
}

/**
 * Several caches as one, nearest first; the last tier is authoritative (reference §3.5).
 *
 * Reads fall through to the first tier holding a copy that agrees with the authoritative ETag
 * recorded in the metadata store (a near copy that disagrees was left behind by a replacement on
 * another replica and is evicted). A full read from a deeper tier is teed into tier 0 and
 * committed only when the whole body arrived; a ranged read schedules a background heal instead.
 * Writes go to every tier, authoritative first, and then record the winning ETag.
 */
class TieredCache implements Cache {
  constructor(
    private readonly tiers: Cache[],
    private readonly metadata: MetadataStore,
    readonly ns: string,
    private readonly healer: Healer,
    private readonly observer: TierObserver | undefined,
  ) {}

  namespace(ns: string): Cache {
    assertNamespace(ns);
    return new TieredCache(
      this.tiers.map((t) => t.namespace(ns)),
      this.metadata,
      ns,
      this.healer,
      this.observer,
    );
  }

  private get last(): number {
    return this.tiers.length - 1;
  }

  private tier(i: number): Cache {
    return this.tiers[i] as Cache;
  }

  /** The recorded authoritative ETag (with its version for compare-and-set); a metadata outage reads as "none" so local tiers keep serving. */
  private async recorded(key: CacheKey): Promise<VersionedValue | undefined> {
    try {
      return await this.metadata.get(this.ns, key);
    } catch {
      return undefined;
    }
  }

  /**
   * Decides whether tier `i`'s copy must be skipped because it disagrees with the recorded
   * authoritative ETag, evicting it when so. `etag` is the copy's ETag when the caller already
   * knows it; otherwise (a 412 or 416 carries no headers) the tier is asked. A copy that vanished
   * meanwhile is skipped too. The authoritative tier is never stale by definition.
   */
  private async skipStale(i: number, key: CacheKey, recorded: VersionedValue | undefined, etag?: string): Promise<boolean> {
    if (i === this.last || recorded === undefined) return false;
    let actual = etag;
    if (actual === undefined) {
      try {
        actual = (await this.tier(i).stat(key)).headers['etag'];
      } catch (err) {
        if (isCacheError(err, 'not-found')) return true;
        throw err;
      }
    }
    if (actual === recorded.value) return false;
    await this.tier(i).invalidate(key).catch(() => undefined);
    return true;
  }

  /**
   * The authoritative tier answered with `etag` but the map records something else: the last
   * map write and the last authoritative write came from different writers (or the writer died
   * between the two). The authoritative tier is the truth, so the entry is corrected; otherwise
   * every replica would evict its good near copy and re-read the shared tier on every request.
   * Compare-and-set on the version read before the tier was asked means a newer publish is
   * never overwritten (see `publish` for why that ordering suffices).
   */
  private async repair(key: CacheKey, recorded: VersionedValue | undefined, etag: string | undefined): Promise<void> {
    if (recorded === undefined || etag === undefined || recorded.value === etag) return;
    await this.metadata.compareAndSet(this.ns, key, etag, recorded.version).catch(() => false);
  }

  /**
   * What tier `i` refusing a stat or open means for the probe (§3.5): `next` asks the next tier,
   * `rejected` remembers a 412 and asks the next, `final` answers with the error. A stale copy's
   * answer means nothing: a 304 or 416 computed from it would answer for an object that was
   * replaced, and a current copy's 412 stands only unless a deeper tier holds the pinned version.
   */
  private async judgeRefusal(i: number, key: CacheKey, recorded: VersionedValue | undefined, err: unknown): Promise<'next' | 'rejected' | 'final'> {
    if (isCacheError(err, 'not-found')) return 'next';
    if (isCacheError(err, 'precondition-failed')) return (await this.skipStale(i, key, recorded)) ? 'next' : 'rejected';
    if (isCacheError(err, 'not-modified')) {
      const etag = err.headers?.['etag'];
      if (await this.skipStale(i, key, recorded, etag)) return 'next';
      if (i === this.last) await this.repair(key, recorded, etag);
      return 'final';
    }
    if (isCacheError(err, 'range-not-satisfiable') && (await this.skipStale(i, key, recorded))) return 'next';
    return 'final';
  }

  statAuthoritative(key: CacheKey): Promise<StatResult> {
    return this.tier(this.last).statAuthoritative(key);
  }

  /**
   * A stale read, after the fresh probe found nothing: the nearest tier still holding an expired
   * copy answers (a fresh copy anywhere always wins, since the fresh probe runs first). No
   * backfill: a stale copy is not worth spreading.
   */
  private async staleProbe<T>(read: (tier: Cache) => Promise<T>): Promise<T> {
    for (const tier of this.tiers) {
      try {
        return await read(tier);
      } catch (err) {
        if (!isCacheError(err, 'not-found')) throw err;
      }
    }
    throw notFound();
  }

  async stat(key: CacheKey, cond: Conditions & StaleRead = {}): Promise<StatResult> {
    const { allowStale, ...fresh } = cond;
    try {
      return await this.statFresh(key, fresh);
    } catch (err) {
      if (!allowStale || !isCacheError(err, 'not-found')) throw err;
      return this.staleProbe((tier) => tier.stat(key, cond));
    }
  }

  async open(key: CacheKey, cond: ReadConditions & { signal?: AbortSignal } & StaleRead = {}): Promise<OpenResult> {
    const { allowStale, ...fresh } = cond;
    try {
      return await this.openFresh(key, fresh);
    } catch (err) {
      if (!allowStale || !isCacheError(err, 'not-found')) throw err;
      return this.staleProbe((tier) => tier.open(key, cond));
    }
  }

  private async statFresh(key: CacheKey, cond: Conditions): Promise<StatResult> {
    const recorded = await this.recorded(key);
    let rejected = false;
    for (const [i, tier] of this.tiers.entries()) {
      let result: StatResult;
      try {
        result = await tier.stat(key, cond);
      } catch (err) {
        const verdict = await this.judgeRefusal(i, key, recorded, err);
        if (verdict === 'final') throw err;
        if (verdict === 'rejected') rejected = true;
        continue;
      }
      if (await this.skipStale(i, key, recorded, result.headers['etag'])) continue;
      if (i === this.last) await this.repair(key, recorded, result.headers['etag']);
      return result;
    }
    if (rejected) throw new CacheError('precondition-failed', 'precondition failed');
    throw notFound();
  }

  private async openFresh(key: CacheKey, cond: ReadConditions & { signal?: AbortSignal }): Promise<OpenResult> {
    // Read before any tier is asked: `repair` relies on the map read preceding the tier read.
    const recorded = await this.recorded(key);
    let rejected = false;
    for (const [i, tier] of this.tiers.entries()) {
      let result: OpenResult;
      try {
        result = await tier.open(key, cond);
      } catch (err) {
        const verdict = await this.judgeRefusal(i, key, recorded, err);
        if (verdict === 'final') throw err;
        if (verdict === 'rejected') rejected = true;
        continue;
      }
      const etag = result.headers['etag'];
      // With the ETag given, this only compares (and evicts); it cannot fail.
      if (await this.skipStale(i, key, recorded, etag)) {
        result.body.destroy();
        continue;
      }
      if (i === this.last) await this.repair(key, recorded, etag);
      this.observer?.served(i, bodyBytes(result));
      if (i === 0) return result;
      if (result.status === 200) return { ...result, body: this.backfill(key, result) };
      if (etag !== undefined) {
        // A present record names the version tier 0 may hold: only a copy of it heals (a tier 0
        // written after a deeper tier was last updated is newer). With no record (never replaced,
        // written before the map kept every key, or metadata memory lost in a restart) only the
        // authoritative tier's answer is trustworthy, since an intermediate tier may lag; the heal
        // then seeds the map with it first, so its commit can be gated on the map like any other.
        if (recorded === undefined ? i === this.last : recorded.value === etag) this.heal(key, tier, etag, recorded === undefined);
      }
      return result;
    }
    if (rejected) throw new CacheError('precondition-failed', 'precondition failed');
    throw notFound();
  }

  /**
   * The caller's body: `source` passed through a tee into a tier-0 writer. `pipeline` ties the
   * two streams together, so a source failing mid-stream errors the caller's stream (it must not
   * hang, and an unlistened 'error' would crash the process) and discards the tier-0 copy, and a
   * caller that stops reading releases the source (an S3 socket).
   */
  private backfill(key: CacheKey, source: OpenResult): Readable {
    return pipeline(source.body, this.tee(key, source.headers), () => {
      // Errors reach the caller through the tee, which pipeline destroys with them.
    });
  }

  /**
   * A pass-through that copies every chunk into tier 0 and commits only once the source ended.
   * The caller sees EOF once the copy is committed, so its next request finds it locally; a
   * failing tier-0 write only costs the copy, the caller's read carries on.
   */
  private tee(key: CacheKey, headers: StoredHeaders): Transform {
    const raw = unquoteStrongETag(headers['etag'] ?? '');
    let writer: CacheWriter | undefined;
    try {
      writer = this.tier(0).create(key, copyHeaders(headers), raw ? { etag: raw } : {});
    } catch {
      // Cannot create a tier-0 entry (bad stored ETag, full disk): serve without backfill.
      writer = undefined;
    }
    return teeInto(writer);
  }

  /**
   * Copies the whole object into tier 0 in the background after a ranged read was served from
   * tier `from` with ETag `etag`, the recorded one or, when `seed`, the authoritative tier's for
   * a key with no record. The source is pinned with If-Match, and the map is checked again just
   * before the commit: a Delete or replacement during the copy must not be resurrected in tier 0.
   */
  private heal(key: CacheKey, from: Cache, etag: string, seed: boolean): void {
    const raw = unquoteStrongETag(etag);
    if (!raw) return;
    this.healer.start(`${this.ns}/${key}`, async (signal) => {
      // Seeding comes before the copy: a Delete from then on removes the entry and fails the
      // pre-commit check. (Seeding after opening the source would let a Delete in between be
      // undone: the entry would reappear and the copy commit.)
      if (seed && !(await this.seed(key, etag))) return;
      const full = await from.open(key, { ifMatch: etag, signal });
      const gate = new Transform({
        transform: (chunk: Buffer, _enc, cb) => cb(null, chunk),
        flush: (cb) => {
          this.recorded(key).then(
            (now) => cb(now?.value === etag ? null : new Error('heal superseded: the recorded ETag changed during the copy')),
            (err: Error) => cb(err),
          );
        },
      });
      await pipelineAsync(full.body, gate, this.tier(0).create(key, copyHeaders(full.headers), { etag: raw, signal }), { signal });
    });
  }

  /**
   * Records `etag`, just read from the authoritative tier, for a key the map had no entry for,
   * and tells whether the map now names it. Compare-and-set against "absent" means an entry a
   * writer published meanwhile is never overwritten: the writer's is newer (it committed to the
   * authoritative tier before publishing), so the heal is dropped. A writer whose own publish
   * then finds our seed re-reads the authoritative tier (`publish`), so the seed cannot stick
   * over a newer version. A metadata outage rejects, which abandons the heal: without an entry
   * the pre-commit check could not see a concurrent Delete.
   */
  private async seed(key: CacheKey, etag: string): Promise<boolean> {
    if (await this.metadata.compareAndSet(this.ns, key, etag, null)) return true;
    return (await this.metadata.get(this.ns, key))?.value === etag;
  }

  /** Test hook: resolves once every background heal has finished. */
  async settled(): Promise<void> {
    await this.healer.idle();
  }

  /**
   * Records the authoritative ETag after a write committed everywhere. `before` is the entry as
   * read when the write started, i.e. before our authoritative commit. If it is still current,
   * nobody published since, so recording our ETag is right for now; a writer that committed to
   * the authoritative tier after us will fail its own compare-and-set (we changed the version)
   * and ask the authoritative tier, which names it. When our compare-and-set fails, someone
   * published meanwhile and only the authoritative tier knows whose commit landed last, so its
   * ETag is what gets recorded. Without this, "last publish wins" in the map and "last commit
   * wins" in the authoritative tier could disagree until the key is written again.
   *
   * Why readers may `repair` with the version they read: every value in the map was published
   * after its writer's authoritative commit, and a reader reads the map before the tier, so the
   * tier's answer is at least as new as the entry the reader holds; the compare-and-set fails if
   * anyone published since.
   */
  private async publish(key: CacheKey, etag: string, before: Promise<VersionedValue | undefined>): Promise<void> {
    let target = etag;
    let seen = await before;
    for (let attempt = 0; attempt < PUBLISH_ATTEMPTS; attempt++) {
      if (seen?.value === target) return;
      if (await this.metadata.compareAndSet(this.ns, key, target, seen?.version ?? null)) return;
      let current: string | undefined;
      try {
        current = (await this.tier(this.last).stat(key)).headers['etag'];
      } catch {
        // Deleted meanwhile, or unreachable: leave the entry to the next writer or reader.
        return;
      }
      if (current === undefined) return;
      target = current;
      seen = await this.metadata.get(this.ns, key);
    }
  }

  create(key: CacheKey, headers: StoredHeaders, opts: CreateOptions = {}): CacheWriter {
    const etag = opts.etag ?? randomUUID();
    const writers = this.tiers.map((t) => t.create(key, headers, { ...opts, etag }));
    // Read now, before the authoritative tier commits (see `publish`).
    const before = this.recorded(key);
    for (const w of writers) w.on('error', () => undefined);
    const destroyAll = (err?: Error) => {
      for (const w of writers) w.destroy(err);
    };
    const waitFor = (w: Writable) =>
      new Promise<void>((resolve, reject) => {
        finished(w, (err) => (err ? reject(err) : resolve()));
      });
    const fanout = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        // Every tier must take the chunk: one that fails instead of draining fails the write.
        const waits = writers.filter((w) => !w.write(chunk)).map(async (w) => {
          await waitForDrain(w);
          if (w.destroyed) throw w.errored ?? new Error('tier writer closed');
        });
        Promise.all(waits).then(() => cb(), (err: Error) => cb(err));
      },
      final: (cb) => {
        // The authoritative tier commits first: if it fails, the near tiers are discarded, so a
        // write that did not reach shared storage never becomes visible anywhere.
        const last = writers[writers.length - 1] as Writable;
        const near = writers.slice(0, -1);
        // `publish` needs the map as it was before our authoritative commit: the read must have
        // completed (not merely started) first, or it could already include a later writer's entry.
        before
          .then(() => {
            last.end();
            return waitFor(last);
          })
          .then(() => {
            for (const w of near) w.end();
            return Promise.all(near.map(waitFor));
          })
          // The map is advisory: a failed publish is corrected by the next reader (`repair`).
          .then(() => this.publish(key, `"${etag}"`, before).catch(() => undefined))
          .then(() => cb(), (err: Error) => {
            destroyAll(err);
            cb(err);
          });
      },
      destroy(err, cb) {
        if (!writers.every((w) => w.writableFinished)) destroyAll(err ?? new Error('write cancelled'));
        cb(err);
      },
    });
    for (const w of writers) {
      w.once('error', (err) => fanout.destroy(err));
    }
    return fanout;
  }

  async delete(key: CacheKey): Promise<void> {
    let found = false;
    for (const tier of this.tiers) {
      try {
        await tier.delete(key);
        found = true;
      } catch (err) {
        if (!isCacheError(err, 'not-found')) throw err;
      }
    }
    await this.metadata.delete(this.ns, key).catch(() => undefined);
    if (!found) throw notFound();
  }

  /** Evicts the near tiers' copies; the authoritative tier is never touched (reference §3.5). */
  async invalidate(key: CacheKey): Promise<void> {
    for (const tier of this.tiers.slice(0, -1)) await tier.invalidate(key);
  }

  async stats(): Promise<CacheStats> {
    for (const tier of [...this.tiers].reverse()) {
      try {
        return await tier.stats();
      } catch (err) {
        if (!isCacheError(err, 'stats-unavailable')) throw err;
      }
    }
    throw new CacheError('stats-unavailable', 'no tier reports stats');
  }

  async listNamespaces(): Promise<string[]> {
    const names = new Set<string>();
    for (const tier of this.tiers) for (const ns of await tier.listNamespaces()) names.add(ns);
    return [...names].sort();
  }

  async close(): Promise<void> {
    await this.healer.close();
    for (const tier of this.tiers) await tier.close();
  }

  toString(): string {
    return `tiered:${this.tiers.map(String).join(',')}`;
  }
}

/** Combines ≥2 caches, nearest first; the last one is authoritative. */
export function createTieredCache(tiers: Cache[], metadata: MetadataStore, observer?: TierObserver): Cache {
  if (tiers.length < 2) throw new Error('a tiered cache needs at least two tiers');
  return new TieredCache(tiers, metadata, tiers[0]?.ns ?? '', new Healer(), observer);
}

/**
 * Waits for a tiered cache's background heals to finish (no-op for other caches). For tests and
 * benchmarks that must observe tier 0 after a ranged read without sleeping.
 */
export async function settleBackgroundWork(cache: Cache): Promise<void> {
  if (cache instanceof TieredCache) await cache.settled();
}
