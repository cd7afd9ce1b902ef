import { randomUUID } from 'node:crypto';
import { CacheError } from './errors.js';

/** Headers stored with an object. Names are lower-case; values are single strings. */
export type StoredHeaders = Record<string, string>;

/**
 * Headers that describe one transfer rather than the object, so they are never stored
 * (reference §2.3). Content-Length is recomputed on every read from the stored size.
 */
const TRANSPORT_HEADERS = new Set([
  'content-length',
  'date',
  'accept-encoding',
  'user-agent',
  'transfer-encoding',
  'time-to-live',
  'if-match',
  'if-none-match',
  'range',
  'if-range',
  'content-range',
  'connection',
  'keep-alive',
]);

const RAW_ETAG = /^[A-Za-z0-9._\-:/+=]+$/;

/** True for a raw (unquoted) ETag value hoard accepts. */
export function isValidRawETag(raw: string): boolean {
  return raw.length > 0 && raw.length <= 256 && RAW_ETAG.test(raw);
}

/** Quotes a raw ETag after validating it; throws `invalid-argument` otherwise. */
export function quoteETag(raw: string): string {
  if (!isValidRawETag(raw)) {
    throw new CacheError('invalid-argument', `invalid ETag ${JSON.stringify(raw)}: use [A-Za-z0-9._-:/+=]`);
  }
  return `"${raw}"`;
}

/**
 * Parses a strong quoted ETag sent by a client (`"abc"`) into its raw form. Weak (`W/"…"`),
 * unquoted or malformed tags return undefined.
 */
export function unquoteStrongETag(value: string): string | undefined {
  if (value.length < 3 || !value.startsWith('"') || !value.endsWith('"')) return undefined;
  const raw = value.slice(1, -1);
  return isValidRawETag(raw) ? raw : undefined;
}

/** Lower-cases names and flattens multi-valued headers from Node's header objects. */
export function normalizeHeaders(input: Record<string, string | string[] | number | undefined>): StoredHeaders {
  const out: StoredHeaders = {};
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

/**
 * Builds the header set a backend stores on create: transport headers dropped, Last-Modified
 * defaulted to now, ETag set to the given raw tag or a random UUID (cachew #377).
 */
export function prepareStoredHeaders(headers: StoredHeaders, rawETag?: string): StoredHeaders {
  const out: StoredHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!TRANSPORT_HEADERS.has(lower)) out[lower] = value;
  }
  if (!out['last-modified']) out['last-modified'] = new Date().toUTCString();
  out['etag'] = rawETag === undefined ? `"${randomUUID()}"` : quoteETag(rawETag);
  return out;
}

/** Stored headers as served: never a stale Content-Range, always the real Content-Length. */
export function headersForRead(stored: StoredHeaders, contentLength: number): StoredHeaders {
  const out: StoredHeaders = { ...stored };
  delete out['content-range'];
  out['content-length'] = String(contentLength);
  return out;
}
