/**
 * Which modules are private (served from git mirrors instead of the upstream GOPROXY) and where
 * in which repository each one lives.
 */

/**
 * Go's GOPRIVATE matching (x/mod module.MatchPrefixPatterns): a pattern of N elements matches a
 * module whose first N path elements match it element by element, `*` and `?` as in path.Match
 * (never across `/`). So `example.com/private/*` matches `example.com/private/repo/sub/v2`, and
 * a pattern with a trailing `/` matches nothing, as in Go.
 */
export class PrivatePatterns {
  private readonly patterns: RegExp[][];

  /** Throws for a pattern hoard cannot match the way Go does (it would be silently ignored). */
  constructor(patterns: string[]) {
    this.patterns = patterns.map((pattern) => {
      if (pattern === '') throw new Error('strategy gomod: private-paths holds an empty pattern');
      if (/[[\]\\]/.test(pattern)) throw new Error(`strategy gomod: private-paths pattern ${JSON.stringify(pattern)}: character classes and escapes are not supported (use * and ?)`);
      return pattern.split('/').map((elem) => new RegExp(`^${elem.replace(/[.+^${}()|]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`));
    });
  }

  get empty(): boolean {
    return this.patterns.length === 0;
  }

  /** Whether an (unescaped) module path is private. */
  matches(module: string): boolean {
    const elements = module.split('/');
    return this.patterns.some((pattern) => pattern.length <= elements.length && pattern.every((re, i) => re.test(elements[i]!)));
  }
}

/** Where a module lives: its repository and, inside it, its directory and tags. */
export interface ModuleLayout {
  /** The module path (unescaped, real case). */
  module: string;
  /** The repository for the git mirror manager: `host[:port]/org/repo`. */
  repository: string;
  /** The module's directory inside the repository before any `/vN` subdirectory ('' = root). */
  codeDir: string;
  /** N of a `/vN` major-version suffix (N ≥ 2); undefined for v0/v1 modules. */
  major: number | undefined;
  /**
   * Whether the `/vN` suffix may name a `vN/` subdirectory (x/mod: only when the suffix is not
   * part of the repository root itself).
   */
  majorSubdirectory: boolean;
  /** What the module's tags start with: `<codeDir>/`, or '' at the repository root. */
  tagPrefix: string;
}

/**
 * Maps a module path to its repository the way hosts like GitHub, GitLab (without subgroups) and
 * Bitbucket lay them out: the repository is `host/org/repo` (the first three elements), or the
 * path up to an element ending in `.git` (Go's VCS qualifier); what follows is the module's
 * directory, less a `/vN` suffix. `hosts` sends a module host's repositories to another git host
 * (`go.example.com` → `git.example.com:8443`). Hosts whose repositories sit at other depths
 * (GitLab subgroups, go-import meta tags) are not resolved.
 */
export function moduleLayout(module: string, hosts: Readonly<Record<string, string>>): ModuleLayout {
  const elements = module.split('/');
  const qualified = elements.findIndex((elem, i) => i > 0 && elem.endsWith('.git'));
  const rootLength = qualified !== -1 ? qualified + 1 : Math.min(3, elements.length);
  const codeRoot = elements.slice(0, rootLength).join('/');
  const suffix = /\/v([1-9]\d*)$/.exec(module);
  const major = suffix && Number(suffix[1]) >= 2 ? Number(suffix[1]) : undefined;
  let codeDir = '';
  if (codeRoot !== module) {
    const pathPrefix = major ? module.slice(0, -suffix![0].length) : module;
    codeDir = pathPrefix.length > codeRoot.length ? pathPrefix.slice(codeRoot.length + 1) : '';
  }
  const host = elements[0]!;
  const repository = [hosts[host] ?? host, ...elements.slice(1, rootLength)].join('/');
  return { module, repository, codeDir, major, majorSubdirectory: major !== undefined && codeRoot !== module, tagPrefix: codeDir ? `${codeDir}/` : '' };
}
