import type { CacheStats, CacheWriter, CreateOptions, OpenResult, StaleRead, StatResult } from './cache.js';
import { BackendCache, BufferBody, ObjectWriter, clampTtl, freshness, type Backend } from './backend.js';
import { checkConditions, resolveRange, type Conditions, type ReadConditions } from './conditional.js';
import { CacheError, notFound } from './errors.js';
import { headersForRead, prepareStoredHeaders, type StoredHeaders } from './headers.js';
import type { CacheKey } from './key.js';

interface Entry {
  headers: StoredHeaders;
  /** `headersForRead(headers, body.length)`, computed once at commit; reads hand out copies. */
  readHeaders: StoredHeaders;
  body: Buffer;
  expiresAt: number;
  storedAt: number;
}

/** Options of `cache memory {}` (milliseconds for durations). */
export interface MemoryCacheOptions {
  limitBytes: number;
  maxTtlMs: number;
  now?: () => number;
}

/**
 * Size-bounded in-process LRU. A Map keeps entries in recency order: every read re-inserts its
 * entry, so the first entries are the least recently used and are evicted first.
 */
class MemoryBackend implements Backend {
  private readonly entries = new Map<string, Entry>();
  private size = 0;
  private readonly now: () => number;

  constructor(private readonly opts: MemoryCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** The entry; an expired one is not-found unless `allowStale`, but stays until space is needed. */
  private live(id: string, allowStale = false): Entry {
    const entry = this.entries.get(id);
    if (!entry) throw notFound();
    if (!allowStale && entry.expiresAt <= this.now()) throw notFound();
    return entry;
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.size -= entry.body.length;
  }

  private touch(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.entries.set(id, entry);
  }

  async stat(ns: string, key: CacheKey, cond: Conditions & StaleRead): Promise<StatResult> {
    const entry = this.live(`${ns}/${key}`, cond.allowStale);
    checkConditions(cond, entry.headers);
    return { headers: { ...entry.readHeaders }, size: entry.body.length, ...freshness(entry.storedAt, entry.expiresAt, this.now()) };
  }

  async open(ns: string, key: CacheKey, cond: ReadConditions & StaleRead): Promise<OpenResult> {
    const id = `${ns}/${key}`;
    const entry = this.live(id, cond.allowStale);
    const fresh = freshness(entry.storedAt, entry.expiresAt, this.now());
    checkConditions(cond, entry.headers);
    const size = entry.body.length;
    // Without a Range header there is nothing to resolve (the common, hot case).
    const range = cond.range === undefined ? undefined : resolveRange(cond, entry.headers['etag'], size);
    this.touch(id, entry);
    if (!range) {
      return { status: 200, headers: { ...entry.readHeaders }, size, body: new BufferBody(entry.body), ...fresh };
    }
    const slice = entry.body.subarray(range.start, range.end + 1);
    const headers = headersForRead(entry.headers, slice.length);
    headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
    return { status: 206, headers, size, body: new BufferBody(slice), ...fresh };
  }

  create(ns: string, key: CacheKey, headers: StoredHeaders, opts: CreateOptions): CacheWriter {
    const stored = prepareStoredHeaders(headers, opts.etag);
    const ttl = clampTtl(opts.ttlMs, this.opts.maxTtlMs);
    const chunks: Buffer[] = [];
    let length = 0;
    return new ObjectWriter(
      {
        write: async (chunk) => {
          length += chunk.length;
          if (length > this.opts.limitBytes) {
            throw new CacheError('too-large', `object exceeds the memory cache limit of ${this.opts.limitBytes} bytes`);
          }
          chunks.push(chunk);
        },
        commit: async () => {
          const id = `${ns}/${key}`;
          this.remove(id);
          const body = Buffer.concat(chunks, length);
          const storedAt = this.now();
          this.entries.set(id, { headers: stored, readHeaders: headersForRead(stored, body.length), body, expiresAt: storedAt + ttl, storedAt });
          this.size += body.length;
          this.evict();
        },
        discard: async () => {
          chunks.length = 0;
        },
      },
      opts.signal,
    );
  }

  /** Entries removed by eviction (expired or over the limit) since start, for `stats().evictions`. */
  private evictions = 0;

  /** Over the limit: expired entries go first, then the least recently used (expired ones are kept while there is room). */
  private evict(): void {
    if (this.size <= this.opts.limitBytes) return;
    const now = this.now();
    for (const [id, entry] of this.entries) {
      if (this.size <= this.opts.limitBytes) return;
      if (entry.expiresAt > now) continue;
      this.remove(id);
      this.evictions++;
    }
    for (const id of this.entries.keys()) {
      if (this.size <= this.opts.limitBytes) break;
      this.remove(id);
      this.evictions++;
    }
  }

  async delete(ns: string, key: CacheKey): Promise<void> {
    const id = `${ns}/${key}`;
    this.live(id, true);
    this.remove(id);
  }

  async stats(): Promise<CacheStats> {
    return { objects: this.entries.size, size: this.size, capacity: this.opts.limitBytes, evictions: this.evictions };
  }

  async listNamespaces(): Promise<string[]> {
    const now = this.now();
    const names = new Set<string>();
    for (const [id, entry] of this.entries) {
      const ns = id.slice(0, id.indexOf('/'));
      if (ns && entry.expiresAt > now) names.add(ns);
    }
    return [...names].sort();
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.size = 0;
  }

  describe(): string {
    return `memory:${Math.round(this.opts.limitBytes / (1024 * 1024))}MB`;
  }
}

/** Creates the in-memory cache (root namespace view). */
export function createMemoryCache(opts: MemoryCacheOptions): BackendCache {
  return new BackendCache(new MemoryBackend(opts));
}
