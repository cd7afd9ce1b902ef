import { CacheError } from './errors.js';
import type { StoredHeaders } from './headers.js';

/** Request validators a cache evaluates before any body byte is read (reference §2.6). */
export interface Conditions {
  ifMatch?: string | undefined;
  ifNoneMatch?: string | undefined;
}

/** Conditions plus a single byte range (reference §2.7). */
export interface ReadConditions extends Conditions {
  range?: string | undefined;
  ifRange?: string | undefined;
}

/** The opaque part of an entity tag: `W/"x"` and `"x"` both give `"x"`. */
function opaqueTag(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/**
 * RFC 9110 §8.8.3.2: two entity tags match weakly when their opaque parts are equal, whichever is
 * weak; they match strongly only when neither is weak and they are equal.
 */
function tagsMatch(a: string, b: string, weak: boolean): boolean {
  if (weak) return opaqueTag(a) === opaqueTag(b);
  return a === b && !a.startsWith('W/');
}

/** True when `etag` is in the If-Match / If-None-Match `list` (or the list is `*`). */
function listMatches(list: string, etag: string, weak: boolean): boolean {
  return list.split(',').some((member) => {
    const tag = member.trim();
    return tag === '*' || tagsMatch(tag, etag, weak);
  });
}

/**
 * Throws `precondition-failed` or `not-modified` (carrying `headers`) as §2.6 says; returns
 * normally when the object should be served. If-Match compares strongly (RFC 9110 §13.1.1),
 * If-None-Match weakly (§13.1.2), so a client that cached `W/"x"` gets its 304 for `"x"`.
 */
export function checkConditions(cond: Conditions, headers: StoredHeaders): void {
  const etag = headers['etag'] ?? '';
  if (cond.ifMatch !== undefined && (etag === '' || !listMatches(cond.ifMatch, etag, false))) {
    throw new CacheError('precondition-failed', 'precondition failed');
  }
  if (cond.ifNoneMatch !== undefined && etag !== '' && listMatches(cond.ifNoneMatch, etag, true)) {
    throw new CacheError('not-modified', 'not modified', { headers });
  }
}

/** An inclusive byte range, already clamped to the object. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Resolves a Range header against an object of `size` bytes. Returns undefined when the full body
 * must be served, a range when it applies, and throws `range-not-satisfiable` when it cannot.
 */
export function resolveRange(cond: ReadConditions, etag: string | undefined, size: number): ByteRange | undefined {
  const header = cond.range?.trim();
  if (!header) return undefined;
  // If-Range compares strongly (RFC 9110 §13.1.5): a weak validator never allows a partial answer.
  if (cond.ifRange !== undefined && (!etag || !tagsMatch(cond.ifRange.trim(), etag, false))) return undefined;
  if (!header.startsWith('bytes=')) return undefined;
  const spec = header.slice('bytes='.length).trim();
  if (spec.includes(',')) return undefined;
  const match = /^(\d*)-(\d*)$/.exec(spec);
  if (!match) return undefined;
  const [, startText = '', endText = ''] = match;
  const unsatisfiable = () => new CacheError('range-not-satisfiable', 'range not satisfiable', { size });
  if (startText === '') {
    if (endText === '') return undefined;
    const suffix = Number(endText);
    if (suffix <= 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(startText);
  if (!Number.isSafeInteger(start)) return undefined;
  if (endText === '') {
    if (start >= size) throw unsatisfiable();
    return { start, end: size - 1 };
  }
  const end = Number(endText);
  if (!Number.isSafeInteger(end) || end < start) return undefined;
  if (start >= size) throw unsatisfiable();
  return { start, end: Math.min(end, size - 1) };
}
