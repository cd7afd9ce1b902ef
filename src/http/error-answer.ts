import { isCacheError } from '../cache/errors.js';

/** A status and the message a caller may see. */
export interface ErrorAnswer {
  status: number;
  message: string;
}

/**
 * The one mapping of cache outcomes to HTTP statuses, for every handler and for errors that
 * escaped one. Undefined for errors that carry no meaning a caller may see (a bug or an internal
 * failure): the caller answers its own 500 without internal detail.
 */
export function cacheErrorAnswer(err: unknown): ErrorAnswer | undefined {
  if (!isCacheError(err)) return undefined;
  switch (err.code) {
    case 'not-found':
      return { status: 404, message: err.message };
    case 'insufficient-storage':
      return { status: 507, message: `Insufficient storage: ${err.message}` };
    case 'too-large':
      return { status: 413, message: `Object too large: ${err.message}` };
    case 'invalid-argument':
      return { status: 400, message: err.message };
    case 'unavailable':
      // The message names the tier and the cause (no secrets: endpoint, bucket and error code).
      return { status: 503, message: err.message };
    default:
      return undefined;
  }
}

/** Maps a handler failure to a status; cache outcomes that escaped a handler keep their meaning. */
export function statusFor(err: unknown): ErrorAnswer {
  return cacheErrorAnswer(err) ?? { status: 500, message: 'internal server error' };
}

/** How a full filesystem shows up: errno codes, and the words of git, tar and zstd on stderr. */
const OUT_OF_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT']);
const OUT_OF_SPACE_TEXT = /No space left on device|Disk quota exceeded|\bENOSPC\b|\bEDQUOT\b/i;

/** True when `err`, or anything in its cause chain, says the local filesystem is full. */
export function isOutOfSpace(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (isCacheError(e, 'insufficient-storage')) return true;
    const { code, message, stderrText } = e as { code?: unknown; message?: unknown; stderrText?: unknown };
    if (typeof code === 'string' && OUT_OF_SPACE_CODES.has(code)) return true;
    if (typeof message === 'string' && OUT_OF_SPACE_TEXT.test(message)) return true;
    if (typeof stderrText === 'string' && OUT_OF_SPACE_TEXT.test(stderrText)) return true;
  }
  return false;
}

/**
 * An absolute filesystem path inside a message: a `/` that starts the text or follows a space,
 * quote, bracket or separator (so the path part of `https://host/x` is left alone), up to the
 * next space or quote.
 */
const ABSOLUTE_PATH = /(^|[\s'"`([{=,;])\/(?!\/)[^\s'"`)\]}]*/g;

/**
 * `text` with every absolute filesystem path replaced by `<path>`. Error text from git, tar or
 * the filesystem names the state directory, mirror root or scratch space; a client has no use
 * for those and they tell an attacker how the server is laid out.
 */
export function withoutServerPaths(text: string): string {
  return text.replace(ABSOLUTE_PATH, '$1<path>');
}

/**
 * The answer for an operation (`what`, e.g. "snapshot generation") that failed on a child
 * process, the filesystem or the cache: a cache outcome keeps its status; a full disk is 507;
 * anything else is 500 naming the operation only. Messages never carry server paths; the caller
 * logs the full error.
 */
export function failureAnswer(err: unknown, what: string): ErrorAnswer {
  const cached = cacheErrorAnswer(err) ?? cacheErrorAnswer((err as { cause?: unknown } | undefined)?.cause);
  if (cached) return { status: cached.status, message: withoutServerPaths(`${what} failed: ${cached.message}`) };
  if (isOutOfSpace(err)) return { status: 507, message: `Insufficient storage: ${what} failed: the server is out of disk space` };
  return { status: 500, message: `${what} failed (see the server log)` };
}
