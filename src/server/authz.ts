import { isLoopbackAddress } from '../util/loopback.js';
import type { TrustedOnlyRule } from '../http/strategy.js';

/**
 * The default authorization policy: admin and object-write surfaces, and the requests a route
 * declares trusted-only (the git refresh route, the status page at `/`), are reachable from
 * loopback only; everything else is open. Kept as pure functions so a policy engine can replace them.
 */

/** First path segments only trusted callers may use by default (cachew §7.1). */
const PROTECTED_SEGMENTS = new Set(['api', 'admin']);

export { isLoopbackAddress };

/** Decides whether a remote address counts as trusted (loopback unless a caller says otherwise). */
export type TrustedRemote = (remoteAddress: string | undefined) => boolean;

/**
 * Decides whether `remoteAddress` may call `path`. `path` must be the decoded path the router
 * matches (see request-path.ts), never the raw request target. Like cachew, the first segment is
 * taken after trimming leading slashes, so `//api/...` is guarded too; it is compared
 * case-insensitively so no spelling of `api`/`admin` can slip past a less strict router.
 */
export function isAllowed(path: string, remoteAddress: string | undefined, trusted: TrustedRemote = isLoopbackAddress): boolean {
  // path.replace(/^\/+/, '').split('/')[0], without the intermediate strings and array.
  let start = 0;
  while (path.charCodeAt(start) === 0x2f) start++;
  const end = path.indexOf('/', start);
  const first = path.slice(start, end === -1 ? path.length : end).toLowerCase();
  return !PROTECTED_SEGMENTS.has(first) || trusted(remoteAddress);
}

/**
 * The second half of the policy, applied once the router found the route: a request its route
 * declares trusted-only (`RouteOptions.trustedOnly`) needs a trusted caller, by the same
 * `trusted` judgement as /api and /admin.
 */
export function isAllowedByRoute(rule: TrustedOnlyRule | undefined, method: string, path: string, remoteAddress: string | undefined, trusted: TrustedRemote = isLoopbackAddress): boolean {
  return !rule?.(method, path) || trusted(remoteAddress);
}
