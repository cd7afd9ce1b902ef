import { ChildProcessError } from '../../util/process.js';

/**
 * git's own words when the upstream answered HTTP 404 to a clone or fetch (http.c,
 * HTTP_MISSING_TARGET). Server-side git runs without a locale of its own, so the English text
 * is what it prints; a translated git only makes the answer a 502 again, never a wrong 404.
 */
const MISSING = /repository '[^']*' not found/;

/** The upstream does not have the repository (answer 404: the caller named something that does not exist). */
export class UpstreamRepositoryMissingError extends Error {
  constructor(upstreamURL: string, cause: unknown) {
    super(`the upstream has no repository ${upstreamURL}`, { cause });
    this.name = 'UpstreamRepositoryMissingError';
  }
}

/**
 * True when `failure` (a git child's error, or the message a failed clone recorded, which carries
 * the tail of git's stderr) says the upstream answered 404 for the repository.
 */
export function upstreamLacksRepository(failure: unknown): boolean {
  if (typeof failure === 'string') return MISSING.test(failure);
  return failure instanceof ChildProcessError && MISSING.test(failure.stderrText);
}
