import { createHash } from 'node:crypto';

/** A cache key: 32 bytes rendered as 64 lowercase hex characters. */
export type CacheKey = string & { readonly __brand: 'CacheKey' };

const HEX64 = /^[0-9a-f]{64}$/;
const NAMESPACE = /^[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

/**
 * Parses key text as cachew does: exactly 64 hex chars are taken literally (lower-cased), anything
 * else is hashed with SHA-256. Parsing therefore never fails.
 */
export function parseKey(text: string): CacheKey {
  const lower = text.toLowerCase();
  if (text.length === 64 && HEX64.test(lower)) return lower as CacheKey;
  return createHash('sha256').update(text).digest('hex') as CacheKey;
}

/** True when `text` is already a canonical key (no hashing needed). */
export function isCanonicalKey(text: string): text is CacheKey {
  return HEX64.test(text);
}

/** Namespaces are path segments on disk and in S3, so the alphabet is deliberately tiny. */
export function isValidNamespace(ns: string): boolean {
  return NAMESPACE.test(ns) && ns.length <= 128;
}

/** Throws a clear error for a namespace that could escape its directory or collide. */
export function assertNamespace(ns: string): void {
  if (!isValidNamespace(ns)) {
    throw new Error(`invalid namespace ${JSON.stringify(ns)}: must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*$`);
  }
}
