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
