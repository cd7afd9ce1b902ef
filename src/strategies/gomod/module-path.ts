/**
 * The GOPROXY protocol's escaped forms of module paths and versions, checked the way the `go`
 * command checks them (golang.org/x/mod/module: UnescapePath, UnescapeVersion, CheckPath,
 * CanonicalVersion). Case-insensitive file systems and URLs are why Go writes an upper-case
 * letter as `!` plus its lower-case form (`github.com/!burnt!sushi/toml`); the escaped form has
 * no upper-case letters at all, so it is the one canonical spelling hoard builds cache keys and
 * upstream URLs from.
 */

/** A module path or version that passed every check: its escaped and its real spelling. */
export interface EscapedName {
  /** As sent on the wire (after percent-decoding): `example.com/!burnt!sushi/toml`. */
  escaped: string;
  /** What it stands for: `example.com/BurntSushi/toml`. */
  unescaped: string;
}

/** Either the checked name or why it is refused. */
export type EscapeCheck = ({ ok: true } & EscapedName) | { ok: false; reason: string };

/**
 * Reverses Go's `!`-escaping: `!x` is upper-case X; an upper-case letter, a `!` not followed by a
 * lower-case letter, or any non-ASCII character means the text is not an escaped form at all.
 */
function unescape(escaped: string): string | undefined {
  let out = '';
  for (let i = 0; i < escaped.length; i++) {
    const c = escaped.charCodeAt(i);
    if (c >= 0x80) return undefined;
    if (c >= 0x41 && c <= 0x5a) return undefined; // A-Z never appear escaped
    if (c === 0x21) {
      const next = escaped.charCodeAt(++i);
      if (!(next >= 0x61 && next <= 0x7a)) return undefined;
      out += String.fromCharCode(next - 0x20);
      continue;
    }
    out += escaped[i];
  }
  return out;
}

/** Reserved device names Go refuses as a path element (with or without an extension). */
const WINDOWS_RESERVED = new Set(['CON', 'PRN', 'AUX', 'NUL', ...[1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((n) => [`COM${n}`, `LPT${n}`])]);

/** Characters of a module path element (x/mod modPathOK). */
const MODULE_ELEMENT_CHARS = /^[A-Za-z0-9._~-]+$/;
/** Characters of a file name, which is what a version must be (x/mod fileNameOK, ASCII part). */
const FILE_NAME_CHARS = /^[A-Za-z0-9!#$%&()+,\-.=@[\]^_{}~ ]+$/;
/** The first element is a host name: lower-case, with a dot. */
const FIRST_ELEMENT_CHARS = /^[a-z0-9.-]+$/;

/** x/mod checkElem: the rules every element shares, then the character set of its kind. */
function elementProblem(elem: string, kind: 'module' | 'file'): string | undefined {
  if (elem === '') return 'empty path element';
  if (/^\.+$/.test(elem)) return `invalid path element ${JSON.stringify(elem)}`;
  if (kind === 'module' && elem.startsWith('.')) return `leading dot in path element ${JSON.stringify(elem)}`;
  if (elem.endsWith('.')) return `trailing dot in path element ${JSON.stringify(elem)}`;
  if (!(kind === 'module' ? MODULE_ELEMENT_CHARS : FILE_NAME_CHARS).test(elem)) return `invalid character in ${JSON.stringify(elem)}`;
  const dot = elem.indexOf('.');
  const short = dot === -1 ? elem : elem.slice(0, dot);
  if (WINDOWS_RESERVED.has(short.toUpperCase())) return `${JSON.stringify(short)} is a reserved name on Windows`;
  // Names like `prog~1` look like Windows 8.3 short names and could alias another directory.
  if (kind === 'module' && /~\d+$/.test(short)) return `${JSON.stringify(short)} looks like a Windows short name`;
  return undefined;
}

/**
 * x/mod SplitPathVersion's validity half: a `/vN` major-version suffix must be v2 or above with
 * no leading zero, and `gopkg.in/` paths need their `.vN` suffix.
 */
function majorSuffixProblem(path: string): string | undefined {
  if (path.startsWith('gopkg.in/')) {
    const m = /\.v(\d+)(-unstable)?$/.exec(path);
    // `.v0` is allowed; other leading zeros (`.v01`, `.v0-unstable`) are not.
    if (!m || (m[1]!.startsWith('0') && m[0] !== '.v0')) return 'gopkg.in paths need a .vN suffix';
    return undefined;
  }
  const m = /\/v([0-9.]+)$/.exec(path);
  if (!m) return undefined;
  const suffix = m[1]!;
  if (suffix.includes('.') || suffix.startsWith('0') || suffix === '1') return `invalid major version suffix /v${suffix}`;
  return undefined;
}

/** x/mod CheckPath on an unescaped module path. */
function modulePathProblem(path: string): string | undefined {
  if (path === '') return 'empty module path';
  if (path.startsWith('-')) return 'leading dash';
  if (path.includes('//')) return 'double slash';
  if (path.endsWith('/')) return 'trailing slash';
  const elements = path.split('/');
  for (const elem of elements) {
    const problem = elementProblem(elem, 'module');
    if (problem) return problem;
  }
  const first = elements[0]!;
  if (!first.includes('.')) return 'missing dot in first path element';
  if (!FIRST_ELEMENT_CHARS.test(first)) return `invalid character in first path element ${JSON.stringify(first)}`;
  return majorSuffixProblem(path);
}

/** Checks an escaped module path as the `go` command sends it (UnescapePath). */
export function checkEscapedModulePath(escaped: string): EscapeCheck {
  const unescaped = unescape(escaped);
  if (unescaped === undefined) return { ok: false, reason: `invalid escaped module path ${JSON.stringify(escaped)} (upper case is written !x)` };
  const problem = modulePathProblem(unescaped);
  if (problem) return { ok: false, reason: `invalid module path ${JSON.stringify(unescaped)}: ${problem}` };
  return { ok: true, escaped, unescaped };
}

/** Checks an escaped version (or version query such as a branch name) (UnescapeVersion). */
export function checkEscapedVersion(escaped: string): EscapeCheck {
  const unescaped = unescape(escaped);
  if (unescaped === undefined) return { ok: false, reason: `invalid escaped version ${JSON.stringify(escaped)} (upper case is written !x)` };
  const problem = elementProblem(unescaped, 'file');
  if (problem) return { ok: false, reason: `invalid version ${JSON.stringify(unescaped)}: ${problem}` };
  return { ok: true, escaped, unescaped };
}

const NUMBER = '(?:0|[1-9]\\d*)';
/** A pre-release identifier: numeric without leading zeros, or alphanumeric with a letter or `-`. */
const PRERELEASE_ID = '(?:0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*)';
/**
 * What x/mod CanonicalVersion returns unchanged: full `vX.Y.Z`, optional pre-release, and no build
 * metadata except `+incompatible`. Such a version names fixed content for ever, so its files may
 * be cached; anything else (`v1.2`, a branch) is a query the upstream resolves each time.
 */
const CANONICAL_VERSION = new RegExp(`^v${NUMBER}\\.${NUMBER}\\.${NUMBER}(?:-${PRERELEASE_ID}(?:\\.${PRERELEASE_ID})*)?(?:\\+incompatible)?$`);

/** Whether an unescaped version is canonical semver in Go's sense (cacheable). */
export function isCanonicalVersion(version: string): boolean {
  return CANONICAL_VERSION.test(version);
}
