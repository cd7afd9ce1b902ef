import type { StoredHeaders } from './headers.js';

/** Machine-readable reason a cache operation did not return an object. */
export type CacheErrorCode =
  | 'not-found'
  | 'not-modified'
  | 'precondition-failed'
  | 'range-not-satisfiable'
  | 'stats-unavailable'
  | 'insufficient-storage'
  /** The object can never fit this cache, whatever is evicted (HTTP 413). */
  | 'too-large'
  | 'invalid-argument'
  /** A tier the operation needs cannot be reached or refuses service (HTTP 503); the message names it. */
  | 'unavailable';

/**
 * The cache's outcome signals (cachew's error sentinels). Conditional outcomes carry what the
 * HTTP layer must echo: a 304 carries the stored headers, a 416 carries the object size.
 */
export class CacheError extends Error {
  readonly code: CacheErrorCode;
  readonly headers: StoredHeaders | undefined;
  readonly size: number | undefined;

  constructor(code: CacheErrorCode, message: string, extra: { headers?: StoredHeaders; size?: number; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'CacheError';
    this.code = code;
    this.headers = extra.headers;
    this.size = extra.size;
  }
}

/** True when `err` is a CacheError with the given code. */
export function isCacheError(err: unknown, code?: CacheErrorCode): err is CacheError {
  return err instanceof CacheError && (code === undefined || err.code === code);
}

/** Shorthand for the common miss. */
export function notFound(what = 'cache object not found'): CacheError {
  return new CacheError('not-found', what);
}

/**
 * The error for a tier that could not serve an operation: `tier` names it (`s3 (bucket x)`),
 * `reason` says why in a few words a caller may see; the full error is kept as the cause.
 */
export function tierUnavailable(tier: string, reason: string, cause: unknown): CacheError {
  return new CacheError('unavailable', `cache tier ${tier} unavailable: ${reason}`, { cause });
}

/** Maps filesystem "out of space" failures to a typed error so the HTTP layer can answer 507. */
export function asStorageError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new CacheError('insufficient-storage', `cache storage is full (${code})`, { cause: err });
  }
  return err;
}
