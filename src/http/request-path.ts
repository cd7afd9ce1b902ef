/**
 * One canonical reading of a request path, shared by the authorization policy and the router.
 *
 * The router (find-my-way) percent-decodes paths before matching. If the policy looked at the raw
 * path while the router matched the decoded one, `/%61pi/v1/object/...` would pass the policy as
 * "not /api" and then be routed to the object API. So the path is decoded exactly once here, the
 * policy judges the decoded string, and the router is handed a form that decodes back to that
 * same string (and nothing else).
 */

/** A decoded request path, or the reason it is refused (answered with 400). */
export type NormalisedPath =
  | {
      ok: true;
      /** The decoded path the policy judges, e.g. `/api/v1/object/ns/k`. */
      path: string;
      /** The string to give the router: `path` with only `%`, `?` and `#` re-encoded. */
      routable: string;
    }
  | { ok: false; message: string };

/**
 * Characters the router would treat specially in an already-decoded path: `%` would be decoded a
 * second time, `?` and `#` would end the path. Re-encoding just these makes the router's own
 * decoding an exact inverse (it decodes them back inside parameters, and no route has them in a
 * static segment).
 */
const ROUTER_SPECIAL = /[%?#]/g;
const HAS_ROUTER_SPECIAL = /[%?#]/;

/** A whole `.` or `..` segment (what `path.split('/')` would yield as one), without the array. */
const DOT_SEGMENT = /(?:^|\/)\.\.?(?:\/|$)/;

/**
 * First path segments whose segments hoard itself interprets (object keys, namespaces, mirror
 * paths on disk): an encoded slash there is a segment boundary nobody can see.
 */
const OWN_PREFIXES = new Set(['api', 'admin', 'git']);

/**
 * Decodes `raw` (the path part of the request target, starting with `/`) once. Refused:
 * malformed percent-encoding or invalid UTF-8, encoded slashes (`%2F`) under hoard's own
 * prefixes (/api, /admin, /git), NUL bytes, and `.`/`..` segments (an upstream would resolve
 * them, reaching a path the policy never judged). Elsewhere `%2F` is allowed: caching strategies
 * forward the raw path as written, and registries such as GitLab's API need encoded slashes.
 */
export function normaliseRequestPath(raw: string): NormalisedPath {
  let path: string;
  try {
    path = raw.includes('%') ? decodeURIComponent(raw) : raw;
  } catch {
    return { ok: false, message: 'bad request: invalid percent-encoding in path' };
  }
  // (The cheap tests guard the costlier ones: this runs on every request.)
  if (path !== raw && /%2f/i.test(raw) && OWN_PREFIXES.has((path.replace(/^\/+/, '').split('/')[0] ?? '').toLowerCase())) {
    return { ok: false, message: 'bad request: encoded slashes (%2F) are not allowed in /api, /admin and /git paths' };
  }
  if (path.includes('\0')) return { ok: false, message: 'bad request: NUL in path' };
  if (DOT_SEGMENT.test(path)) {
    return { ok: false, message: 'bad request: "." and ".." path segments are not allowed' };
  }
  return { ok: true, path, routable: HAS_ROUTER_SPECIAL.test(path) ? path.replace(ROUTER_SPECIAL, (c) => encodeURIComponent(c)) : path };
}
