import { randomUUID } from 'node:crypto';
import { Transform, Writable, finished } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Cache, CacheStats, CacheWriter, CreateOptions, OpenResult, StatResult } from './cache.js';
import type { Conditions, ReadConditions } from './conditional.js';
import { CacheError, isCacheError, notFound } from './errors.js';
import { assertNamespace, type CacheKey } from './key.js';
import { unquoteStrongETag, type StoredHeaders } from './headers.js';
import type { MetadataStore } from '../metadata/store.js';

/** Heals running at once across the process (ranged reads that miss tier 0). */
const MAX_HEALS = 2;

/**
 * Several caches as one, nearest first; the last tier is authoritative. Reads fall through to
 * the first tier that has the object and copy it back into tier 0 only when the reader consumed
 * it to the end. Writes go to every tier, all or nothing. The authoritative ETag of each key is
 * kept in the metadata store so a replica notices when another replica replaced an object and
 * drops its stale near copy.
 */
class TieredCache implements Cache {
  private readonly healing: Set<string>;

  constructor(
    private readonly tiers: Cache[],
    private readonly metadata: MetadataStore,
    readonly ns: string,
    healing?: Set<string>,
  ) {
    this.healing = healing ?? new Set();
  }

  namespace(ns: string): Cache {
    assertNamespace(ns);
    return new TieredCache(
      this.tiers.map((t) => t.namespace(ns)),
      this.metadata,
      ns,
      this.healing,
    );
  }

  private async authoritativeETag(key: CacheKey): Promise<string | undefined> {
    try {
      return (await this.metadata.get(this.ns, key))?.value;
    } catch {
      return undefined;
    }
  }

  /** True when a near-tier copy disagrees with the recorded authoritative ETag (and drops it). */
  private async isStale(tierIndex: number, key: CacheKey, etag: string | undefined): Promise<boolean> {
    if (tierIndex === this.tiers.length - 1) return false;
    const expected = await this.authoritativeETag(key);
    if (expected === undefined || expected === etag) return false;
    await this.tiers[tierIndex]?.invalidate(key).catch(() => undefined);
    return true;
  }

  async stat(key: CacheKey, cond: Conditions = {}): Promise<StatResult> {
    for (const [i, tier] of this.tiers.entries()) {
      let result: StatResult;
      try {
        // Conditions are evaluated after the staleness check, against the copy we will trust.
        result = await tier.stat(key);
      } catch (err) {
        if (isCacheError(err, 'not-found')) continue;
        throw err;
      }
      if (await this.isStale(i, key, result.headers['etag'])) continue;
      return tier.stat(key, cond);
    }
    throw notFound();
  }

  async open(key: CacheKey, cond: ReadConditions & { signal?: AbortSignal } = {}): Promise<OpenResult> {
    for (const [i, tier] of this.tiers.entries()) {
      let result: OpenResult;
      try {
        result = await tier.open(key, cond);
      } catch (err) {
        if (isCacheError(err, 'not-found')) continue;
        throw err;
      }
      if (await this.isStale(i, key, result.headers['etag'])) {
        result.body.destroy();
        continue;
      }
      if (i === 0 || this.tiers.length < 2) return result;
      if (result.status === 200) return { ...result, body: result.body.pipe(this.backfill(key, result.headers)) };
      this.heal(key, tier);
      return result;
    }
    throw notFound();
  }

  /** A pass-through that copies the stream into tier 0, committing only at the reader's EOF. */
  private backfill(key: CacheKey, headers: StoredHeaders): Transform {
    const etag = unquoteStrongETag(headers['etag'] ?? '');
    const stored = { ...headers };
    delete stored['content-length'];
    delete stored['content-range'];
    let writer: CacheWriter | undefined = (this.tiers[0] as Cache).create(key, stored, etag ? { etag } : {});
    writer.on('error', () => undefined);
    const abandon = () => {
      writer?.destroy();
      writer = undefined;
    };
    const tee = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (!writer || writer.destroyed) return cb(null, chunk);
        if (writer.write(chunk)) cb(null, chunk);
        else writer.once('drain', () => cb(null, chunk));
      },
      flush(cb) {
        if (!writer) return cb();
        const w = writer;
        writer = undefined;
        w.end();
        finished(w, () => cb());
      },
    });
    tee.once('close', () => {
      if (writer) abandon();
    });
    return tee;
  }

  /** Copies a whole object into tier 0 in the background after a ranged read missed it. */
  private heal(key: CacheKey, from: Cache): void {
    const id = `${this.ns}/${key}`;
    if (this.healing.has(id) || this.healing.size >= MAX_HEALS) return;
    this.healing.add(id);
    void (async () => {
      try {
        const full = await from.open(key);
        const etag = unquoteStrongETag(full.headers['etag'] ?? '');
        const stored = { ...full.headers };
        delete stored['content-length'];
        await pipeline(full.body, (this.tiers[0] as Cache).create(key, stored, etag ? { etag } : {}));
      } catch {
        // Healing is an optimisation; the next read tries again.
      } finally {
        this.healing.delete(id);
      }
    })();
  }

  create(key: CacheKey, headers: StoredHeaders, opts: CreateOptions = {}): CacheWriter {
    const etag = opts.etag ?? randomUUID();
    const writers = this.tiers.map((t) => t.create(key, headers, { ...opts, etag }));
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
        const waits = writers.filter((w) => !w.write(chunk)).map((w) => new Promise<void>((resolve, reject) => {
          const onDrain = () => {
            w.off('close', onClose);
            resolve();
          };
          const onClose = () => {
            w.off('drain', onDrain);
            reject(w.errored ?? new Error('tier writer closed'));
          };
          w.once('drain', onDrain);
          w.once('close', onClose);
        }));
        Promise.all(waits).then(() => cb(), (err: Error) => cb(err));
      },
      final: (cb) => {
        // The authoritative tier commits first: if it fails, the near tiers are discarded, so a
        // write that did not reach shared storage never becomes visible anywhere.
        const last = writers[writers.length - 1] as Writable;
        const near = writers.slice(0, -1);
        last.end();
        waitFor(last)
          .then(() => {
            for (const w of near) w.end();
            return Promise.all(near.map(waitFor));
          })
          .then(() => this.metadata.set(this.ns, key, `"${etag}"`).catch(() => undefined))
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
    for (const tier of this.tiers) await tier.close();
  }

  toString(): string {
    return `tiered:${this.tiers.map(String).join(',')}`;
  }
}

/** Combines ≥2 caches, nearest first; the last one is authoritative. */
export function createTieredCache(tiers: Cache[], metadata: MetadataStore): Cache {
  if (tiers.length < 2) throw new Error('a tiered cache needs at least two tiers');
  return new TieredCache(tiers, metadata, tiers[0]?.ns ?? '');
}
