/** What a `/git/{host}/{repo}[.git]/{operation}` request addresses. */
export interface GitRequestPath {
  /** Upstream host, possibly with a port (`github.com`, `127.0.0.1:9000`). */
  host: string;
  /** Repository path without a trailing `.git` (`org/repo`, `group/sub/repo`). */
  repoPath: string;
  /** Whatever follows the repository (`info/refs`, `git-upload-pack`, `snapshot.tar.zst`, `info/lfs/objects/batch`, or ''). */
  operation: string;
  /** The path after `/git/{host}/` exactly as the client sent it (for forwarding). */
  rawPath: string;
}

/** Operations recognised at the end of a path, longest first so suffix matching is unambiguous. */
const OPERATIONS = ['info/refs', 'git-upload-pack', 'git-receive-pack', 'snapshot.tar.zst', 'snapshot.bundle', 'lfs-snapshot.tar.zst', 'ensure-refs'];

const HOST = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*(:[0-9]{1,5})?$/;
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

/** A request path hoard refuses before touching the filesystem or a git command line. */
export class InvalidGitPathError extends Error {}

/**
 * Parses and validates the part of the URL after `/git/` (the raw, undecoded path). No segment
 * anywhere may be empty, `.`/`..` or start with `-` (option injection); repository segments must
 * also be plain names: no leading `.` (dot-directories hold hoard's scratch space), no `.git`
 * except on the last one, no percent-escapes or control characters.
 */
export function parseGitPath(afterGit: string): GitRequestPath {
  const slash = afterGit.indexOf('/');
  if (slash <= 0) throw new InvalidGitPathError('expected /git/{host}/{repository}/...');
  const host = afterGit.slice(0, slash).toLowerCase();
  const rawPath = afterGit.slice(slash + 1);
  if (!HOST.test(host) || host.length > 255) throw new InvalidGitPathError(`invalid host ${JSON.stringify(host)}`);
  const port = host.includes(':') ? Number(host.split(':')[1]) : undefined;
  if (port !== undefined && (port < 1 || port > 65535)) throw new InvalidGitPathError(`invalid port in ${JSON.stringify(host)}`);
  if (/[%\\\x00-\x20\x7f]/.test(rawPath)) throw new InvalidGitPathError('repository path contains escapes or control characters');
  if (rawPath === '') throw new InvalidGitPathError('missing repository path');
  // Every segment is checked before the path is split into repository and operation: the tail is
  // forwarded upstream, and `new URL` would resolve a `..` there into another upstream path.
  for (const segment of rawPath.split('/')) {
    if (segment === '') throw new InvalidGitPathError('empty path segment (doubled or trailing "/")');
    if (segment === '.' || segment === '..') throw new InvalidGitPathError(`relative path segment ${JSON.stringify(segment)} is not allowed`);
    if (segment.startsWith('-')) throw new InvalidGitPathError(`option-like path segment ${JSON.stringify(segment)} is not allowed`);
  }

  let operation = '';
  let repo = rawPath;
  for (const op of OPERATIONS) {
    if (repo === op) throw new InvalidGitPathError('missing repository path');
    if (repo.endsWith(`/${op}`)) {
      operation = op;
      repo = repo.slice(0, -op.length - 1);
      break;
    }
  }
  if (!operation) {
    // Unknown operations (LFS API, plain repo URLs) keep the repo as far as a `.git` segment or the whole path.
    const dotGit = repo.indexOf('.git/');
    if (dotGit !== -1) {
      operation = repo.slice(dotGit + 5);
      repo = repo.slice(0, dotGit + 4);
    }
  }
  repo = repo.replace(/\.git$/, '');
  const segments = repo.split('/');
  if (segments.length < 1 || segments.length > 8 || repo === '') throw new InvalidGitPathError('missing repository path');
  for (const [i, segment] of segments.entries()) {
    if (!SEGMENT.test(segment) || segment.length > 100 || segment.endsWith('.lock')) {
      throw new InvalidGitPathError(`invalid repository path segment ${JSON.stringify(segment)}`);
    }
    // Mirrors live at `<host>/<repo>.git`; a `.git` directory before the last segment would put a
    // mirror inside another mirror (and make discovery stop at the outer one).
    if (i < segments.length - 1 && segment.endsWith('.git')) {
      throw new InvalidGitPathError(`only the last repository path segment may end in .git (got ${JSON.stringify(segment)})`);
    }
  }
  return { host, repoPath: repo, operation, rawPath };
}
