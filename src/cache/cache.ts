import type { Readable, Writable } from 'node:stream';
import type { Conditions, ReadConditions } from './conditional.js';
import type { CacheKey } from './key.js';
import type { StoredHeaders } from './headers.js';

/**
 * How fresh an answer is. An object past its TTL is not deleted at once: it stays until evicted
 * for space, and a reader that asks for it (`allowStale`) gets it with `stale: true`, so a
 * strategy can serve it while the upstream is down (stale-if-error) or revalidate it.
 */
export interface Freshness {
  /** True only when the object is past its TTL (returned because `allowStale` was set). */
  stale?: boolean;
  /** When the object was committed (epoch ms), when the backend knows it. */
  storedAt?: number;
  /** When its TTL ends or ended (epoch ms), when the backend knows it. */
  expiresAt?: number;
}

/** Read option: also return an object past its TTL (marked `stale`) instead of not-found. */
export interface StaleRead {
  allowStale?: boolean;
}

/** Result of a successful `open`: a body stream plus the headers to serve with it. */
export interface OpenResult extends Freshness {
  /** 200 for the whole object, 206 when a range applied. */
  status: 200 | 206;
  /** Stored headers plus `content-length` (and `content-range` for 206). */
  headers: StoredHeaders;
  /** Total object size in bytes (not the range length). */
  size: number;
  /** The bytes. Callers must consume or destroy it. */
  body: Readable;
}

/** Result of a successful `stat`. */
export interface StatResult extends Freshness {
  /** Stored headers plus `content-length` of the whole object. */
  headers: StoredHeaders;
  size: number;
}

/** Options for `create`. */
export interface CreateOptions {
  /** Time to live in milliseconds; 0 or absent means the backend maximum. */
  ttlMs?: number;
  /** Raw (unquoted) ETag to store; a random UUID when absent. */
  etag?: string;
  /** Aborting the signal discards the write. */
  signal?: AbortSignal;
}

/**
 * A pending write. Bytes written are invisible to readers until the stream finishes: ending the
 * stream commits (the 'finish' event fires only after the object is published), destroying it
 * (or an error, or the create signal) discards everything. Use `stream.pipeline` to feed it.
 */
export type CacheWriter = Writable;

/** Object count and byte totals reported by `/api/v1/stats`. */
export interface CacheStats {
  objects: number;
  size: number;
  capacity: number;
  /** Entries this backend evicted (expired or over its limit) since start; absent when it does not evict. */
  evictions?: number;
}

/**
 * The cache contract every backend and composite satisfies (reference §2.2). A `Cache` is a view
 * bound to one namespace; `namespace()` returns a sibling view (it replaces, never nests).
 * Outcomes other than success are `CacheError`s: not-found, not-modified (with headers),
 * precondition-failed, range-not-satisfiable (with size), stats-unavailable.
 */
export interface Cache {
  /** The namespace this view is bound to ('' for the root view). */
  readonly ns: string;
  /** A view of the same storage bound to `ns` (validated). */
  namespace(ns: string): Cache;
  /**
   * Headers of a live object; conditionals evaluated, Range ignored. An expired object is
   * not-found unless `allowStale` is set.
   */
  stat(key: CacheKey, cond?: Conditions & StaleRead): Promise<StatResult>;
  /**
   * `stat` answered by the authoritative (last) tier only: a near copy can outlive a lost shared
   * object, and a replica deciding "already published" must not be fooled by it (reference git
   * §4.2, #395). A single cache is its own authority.
   */
  statAuthoritative(key: CacheKey): Promise<StatResult>;
  /**
   * Body and headers; conditionals evaluated before any byte is read; one range honoured. An
   * expired object is not-found unless `allowStale` is set.
   */
  open(key: CacheKey, cond?: ReadConditions & { signal?: AbortSignal } & StaleRead): Promise<OpenResult>;
  /** Starts a write; see CacheWriter. Throws `invalid-argument` for a bad ETag. */
  create(key: CacheKey, headers: StoredHeaders, opts?: CreateOptions): CacheWriter;
  /** Removes the object (an expired one too); not-found when absent. */
  delete(key: CacheKey): Promise<void>;
  /** Evicts a possibly stale local copy; never removes authoritative shared storage. */
  invalidate(key: CacheKey): Promise<void>;
  /** Totals for the whole cache (all namespaces). */
  stats(): Promise<CacheStats>;
  /** Sorted namespaces that hold at least one object. */
  listNamespaces(): Promise<string[]>;
  /** Releases timers, handles and background work. */
  close(): Promise<void>;
  /** Human description, e.g. `disk:/var/lib/hoard/cache`. */
  toString(): string;
}
