import { encodeMirrorSegment, urlEncodeRepoPath } from './repo-names.js';

/** What a `/git/{host}/{repo}[.git]/{operation}` request addresses. */
export interface GitRequestPath {
  /** Upstream host, possibly with a port (`github.com`, `127.0.0.1:9000`). */
  host: string;
  /**
   * Repository name without a trailing `.git`, percent-escapes decoded (`org/repo`,
   * `group/sub/repo`, `user@repo`, `ünïcödé`): the identity of the repository.
   */
  repoPath: string;
  /** `repoPath` as written in an upstream URL (see repo-names.ts); one spelling per name. */
  urlPath: string;
  /** Whatever follows the repository (`info/refs`, `git-upload-pack`, `snapshot.tar.zst`, `info/lfs/objects/batch`, or ''). */
  operation: string;
  /** The path after `/git/{host}/` exactly as the client sent it (for forwarding). */
  rawPath: string;
}
/** Operations recognised at the end of a path, longest first so suffix matching is unambiguous. */
const OPERATIONS = ['info/refs', 'git-upload-pack', 'git-receive-pack', 'snapshot.tar.zst', 'snapshot.bundle', 'lfs-snapshot.tar.zst', 'ensure-refs'];

const HOST = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*(:[0-9]{1,5})?$/;
/**
 * What may appear literally in the raw path: printable ASCII but `\` (WHATWG URLs read it as `/`)
 * and `#` (it would end the forwarded URL's path where the parsed name goes on).
 */
const RAW_PATH = /^[\x21\x22\x24-\x5b\x5d-\x7e]*$/;
const ESCAPE = /%(?![0-9A-Fa-f]{2})/;
/** C0 and C1 control characters and DEL. */
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;
/** Longest repository segment as a mirror directory name (NAME_MAX 255 less room for `.git`). */
const MAX_MIRROR_SEGMENT = 240;
const MAX_REPO_SEGMENTS = 8;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A request path hoard refuses before touching the filesystem or a git command line. */
export class InvalidGitPathError extends Error {}

/** Decodes one raw segment's percent-escapes as UTF-8, refusing what no file name may hold. */
function decodeSegment(raw: string): string {
  let segment = raw;
  if (raw.includes('%')) {
    if (ESCAPE.test(raw)) throw new InvalidGitPathError(`malformed percent-escape in path segment ${JSON.stringify(raw)}`);
    const bytes = Buffer.from(raw.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
    try {
      segment = utf8.decode(bytes);
    } catch {
      throw new InvalidGitPathError(`path segment ${JSON.stringify(raw)} is not valid UTF-8 once decoded`);
    }
    if (segment.includes('/')) throw new InvalidGitPathError(`encoded "/" in path segment ${JSON.stringify(raw)}`);
  }
  if (CONTROL.test(segment)) throw new InvalidGitPathError(`control character in path segment ${JSON.stringify(raw)}`);
  if (segment === '') throw new InvalidGitPathError('empty path segment (doubled or trailing "/")');
  if (segment === '.' || segment === '..') throw new InvalidGitPathError(`relative path segment ${JSON.stringify(segment)} is not allowed`);
  if (segment.startsWith('-')) throw new InvalidGitPathError(`option-like path segment ${JSON.stringify(segment)} is not allowed`);
  return segment;
}

/**
 * Parses and validates the part of the URL after `/git/` (the raw, undecoded path). Each segment
 * is percent-decoded on its own (as UTF-8; an encoded `/` is refused, so segment boundaries are
 * the ones the client wrote). No segment anywhere may then be empty, `.`/`..`, start with `-`
 * (option injection) or hold control characters; repository segments may also not start with
 * `.` (dot-directories hold hoard's scratch space), hold `\`, end in `.lock`, or end in `.git`
 * except on the last one. Any other name a git server could serve (`a+b`, `x~y`, `user@repo`,
 * spaces, non-ASCII) is accepted; repo-names.ts writes it safely on disk and upstream.
 */
export function parseGitPath(afterGit: string): GitRequestPath {
  const slash = afterGit.indexOf('/');
  if (slash <= 0) throw new InvalidGitPathError('expected /git/{host}/{repository}/...');
  const host = afterGit.slice(0, slash).toLowerCase();
  const rawPath = afterGit.slice(slash + 1);
  if (!HOST.test(host) || host.length > 255) throw new InvalidGitPathError(`invalid host ${JSON.stringify(host)}`);
  const port = host.includes(':') ? Number(host.split(':')[1]) : undefined;
  if (port !== undefined && (port < 1 || port > 65535)) throw new InvalidGitPathError(`invalid port in ${JSON.stringify(host)}`);
  if (!RAW_PATH.test(rawPath)) throw new InvalidGitPathError('repository path contains a "\\" or "#", or a space, control or non-ASCII character that is not percent-encoded');
  if (rawPath === '') throw new InvalidGitPathError('missing repository path');
  // Every segment is checked, decoded, before the path is split into repository and operation:
  // the tail is forwarded upstream, and `new URL` would resolve a `..` (or `%2e%2e`) there into
  // another upstream path.
  const rawSegments = rawPath.split('/');
  const decoded = rawSegments.map(decodeSegment);

  // Operations are matched as the client wrote them (git never escapes them); the repository is
  // what precedes the operation, else everything up to a `.git` segment, else the whole path.
  let repoCount = rawSegments.length;
  let operation = '';
  for (const op of OPERATIONS) {
    if (rawPath === op) throw new InvalidGitPathError('missing repository path');
    if (rawPath.endsWith(`/${op}`)) {
      operation = op;
      repoCount -= op.split('/').length;
      break;
    }
  }
  if (!operation) {
    const dotGit = decoded.findIndex((segment) => segment.endsWith('.git'));
    if (dotGit !== -1 && dotGit < decoded.length - 1) {
      repoCount = dotGit + 1;
      operation = rawSegments.slice(repoCount).join('/');
    }
  }
  const segments = decoded.slice(0, repoCount);
  const last = segments.length - 1;
  if (segments[last]?.endsWith('.git')) segments[last] = segments[last].slice(0, -'.git'.length);
  if (segments.length < 1 || segments[last] === '') throw new InvalidGitPathError('missing repository path');
  if (segments.length > MAX_REPO_SEGMENTS) throw new InvalidGitPathError(`repository path has more than ${MAX_REPO_SEGMENTS} segments`);
  for (const [i, segment] of segments.entries()) {
    if (segment.startsWith('.') || segment.includes('\\') || segment.endsWith('.lock')) {
      throw new InvalidGitPathError(`invalid repository path segment ${JSON.stringify(segment)} (no leading ".", no "\\", no ".lock" ending)`);
    }
    if (encodeMirrorSegment(segment).length > MAX_MIRROR_SEGMENT) {
      throw new InvalidGitPathError(`repository path segment ${JSON.stringify(segment)} is too long (at most ${MAX_MIRROR_SEGMENT} bytes as a mirror directory name)`);
    }
    // Mirrors live at `<host>/<repo>.git`; a `.git` directory before the last segment would put a
    // mirror inside another mirror (and make discovery stop at the outer one).
    if (i < last && segment.endsWith('.git')) {
      throw new InvalidGitPathError(`only the last repository path segment may end in .git (got ${JSON.stringify(segment)})`);
    }
  }
  const repoPath = segments.join('/');
  return { host, repoPath, urlPath: urlEncodeRepoPath(repoPath), operation, rawPath };
}
