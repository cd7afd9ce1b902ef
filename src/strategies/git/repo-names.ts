/**
 * How a repository name (decoded segments joined by `/`, as the upstream server sees it) is
 * written in an upstream URL and as a mirror directory. Both writings are functions of the
 * decoded name alone, so every way a client may spell a name (`a+b`, `a%2Bb`, `a%2bb`) reaches
 * the same mirror and the same upstream URL, and two different names never share either.
 */

/** Bytes a mirror directory name keeps as they are; exactly the old plain-name alphabet. */
const MIRROR_KEPT = /^[A-Za-z0-9._-]$/;

/**
 * Bytes a URL path segment may carry literally (RFC 3986 `pchar` without `%`): unreserved,
 * sub-delims, `:` and `@`. Everything else (space, `%`, `?`, `#`, non-ASCII) is escaped.
 */
const URL_KEPT = /^[A-Za-z0-9._~!$&'()*+,;=:@-]$/;

const encoder = new TextEncoder();

function encodeBytes(segment: string, kept: RegExp): string {
  let out = '';
  for (const byte of encoder.encode(segment)) {
    const char = String.fromCharCode(byte);
    out += byte < 0x80 && kept.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * One mirror directory segment: `[A-Za-z0-9._-]` kept, every other UTF-8 byte (`%` too) written
 * as `%XX` with upper-case hex. Injective (`%` never stands for itself, so `a+b` → `a%2Bb` and a
 * name that really is `a%2Bb` → `a%252Bb`), and the identity on plain names, so mirrors made
 * before names were widened keep their directories.
 */
export function encodeMirrorSegment(segment: string): string {
  return encodeBytes(segment, MIRROR_KEPT);
}

/** The mirror's path relative to the mirror root: `<host>/<encoded segments>.git`. */
export function mirrorRelativePath(host: string, repoPath: string): string {
  return `${host}/${repoPath.split('/').map(encodeMirrorSegment).join('/')}.git`;
}

/** The repository path as written in an upstream URL (canonical: one spelling per name). */
export function urlEncodeRepoPath(repoPath: string): string {
  return repoPath
    .split('/')
    .map((segment) => encodeBytes(segment, URL_KEPT))
    .join('/');
}
