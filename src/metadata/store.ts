/**
 * Cross-replica metadata store: a small versioned key/value space with compare-and-set and expiring
 * claims. Replicas use it for the tiered cache's authoritative ETag map and to elect one snapshot
 * generator per interval. Values are short strings (callers JSON-encode); it is not a data store.
 */

/** A stored value with the opaque version a later compare-and-set must present. */
export interface VersionedValue {
  value: string;
  version: string;
}

/** Backend-neutral metadata store; every method is safe to call concurrently. */
export interface MetadataStore {
  /** Current value of `key` in `namespace`, or undefined when absent. */
  get(namespace: string, key: string): Promise<VersionedValue | undefined>;
  /** Unconditional write (last writer wins). */
  set(namespace: string, key: string, value: string): Promise<void>;
  /**
   * Write only if the current version equals `expectedVersion` (`null` = only if absent).
   * Resolves false when another writer got there first; never overwrites silently.
   */
  compareAndSet(namespace: string, key: string, value: string, expectedVersion: string | null): Promise<boolean>;
  /** Remove `key`; absent keys are not an error. */
  delete(namespace: string, key: string): Promise<void>;
  /**
   * Try to hold the claim `name` for `ttlMs` as `owner`. Succeeds when the claim is free, expired,
   * or already held by `owner` (which renews it). A crashed holder's claim lapses after its TTL.
   */
  claim(namespace: string, name: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Give up a claim held by `owner`; a claim held by someone else is left alone. */
  release(namespace: string, name: string, owner: string): Promise<void>;
  /** Release resources (timers, clients). Idempotent. */
  close(): Promise<void>;
  /** Human description, e.g. `memory` or `s3:bucket`. */
  toString(): string;
}
