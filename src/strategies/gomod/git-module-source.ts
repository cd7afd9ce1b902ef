import { runChild } from '../../util/process.js';
import type { GitMirror } from '../../http/git-mirrors.js';
import { compareVersions, isPseudoVersion, majorOf, parseCanonical, pseudoTimestamp, pseudoVersion, pseudoVersionParts } from './go-semver.js';
import type { ModuleLayout } from './private-modules.js';

/** A version or file the repository does not have (the GOPROXY protocol's 404 "not found: …"). */
export class ModuleNotFoundError extends Error {}

/** Largest go.mod Go reads (x/mod/zip MaxGoMod, codehost.MaxGoMod). */
export const MAX_GO_MOD = 16 << 20;
const GIT_TIMEOUT_MS = 60_000;
const HEX = /^[0-9a-f]{4,40}$/;

/** A version resolved to the commit it names. */
export interface ResolvedVersion {
  version: string;
  commit: string;
  /** Committer time, Unix seconds (what Go's `.info` Time and pseudo-versions use). */
  time: number;
}

/** Where the module's files are at one commit: its directory and its go.mod (undefined: none). */
export interface ModuleDirectory {
  dir: string;
  goMod: Buffer | undefined;
}

/**
 * Reads module versions out of a git mirror the way the `go` command reads them from a repository
 * (cmd/go/internal/modfetch/coderepo.go): tags `<tagPrefix>vX.Y.Z` of the module's major version,
 * pseudo-versions for other commits, and the `/vN` rule that a v2+ module's go.mod is either at
 * the module directory claiming `/vN` or in a `vN/` subdirectory of it.
 */
export class GitModuleSource {
  constructor(
    readonly mirror: GitMirror,
    readonly layout: ModuleLayout,
    private readonly signal: AbortSignal,
  ) {}

  private git(args: string[], maxBytes = 16 << 20): Promise<string> {
    return runChild('git', ['-C', this.mirror.gitDir, ...args], { env: this.mirror.env, timeoutMs: GIT_TIMEOUT_MS, signal: this.signal, maxBytes });
  }

  private majorMatches(version: string): boolean {
    const major = majorOf(version);
    return this.layout.major === undefined ? major <= 1 : major === this.layout.major;
  }

  /** Tags naming versions of this module, with the commit each points to (peeled). */
  private async tags(extra: string[] = []): Promise<Array<{ version: string; commit: string }>> {
    const pattern = this.layout.tagPrefix ? `refs/tags/${this.layout.tagPrefix.slice(0, -1)}` : 'refs/tags';
    const out = await this.git(['for-each-ref', ...extra, '--format=%(refname)%00%(objectname)%00%(*objectname)', pattern]);
    const found: Array<{ version: string; commit: string }> = [];
    for (const line of out.split('\n')) {
      const [ref, object, peeled] = line.split('\0');
      if (!ref || !object) continue;
      const name = ref.slice('refs/tags/'.length);
      if (!name.startsWith(this.layout.tagPrefix)) continue;
      const version = name.slice(this.layout.tagPrefix.length);
      // x/mod: only canonical versions count, and a tag that looks like a pseudo-version never does.
      if (!parseCanonical(version) || isPseudoVersion(version) || !this.majorMatches(version)) continue;
      found.push({ version, commit: peeled || object });
    }
    return found;
  }

  /** `@v/list`: the module's tagged versions in semver order. */
  async list(): Promise<string[]> {
    return (await this.tags()).map((t) => t.version).sort(compareVersions);
  }

  private async commitTime(commit: string): Promise<number> {
    return Number((await this.git(['show', '-s', '--format=%ct', commit, '--'])).trim());
  }

  /** The full commit id of a revision that exists as a commit, or undefined. */
  private async commitOf(rev: string): Promise<string | undefined> {
    try {
      const out = (await this.git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`])).trim();
      return /^[0-9a-f]{40,64}$/.test(out) ? out : undefined;
    } catch {
      return undefined;
    }
  }

  private async resolved(version: string, commit: string): Promise<ResolvedVersion> {
    return { version, commit, time: await this.commitTime(commit) };
  }

  /**
   * The version Go gives a commit: its highest tag of this module when tagged, else a
   * pseudo-version based on the highest tag among its ancestors (x/mod module.PseudoVersion).
   */
  private async versionOfCommit(commit: string): Promise<ResolvedVersion> {
    const atCommit = (await this.tags(['--points-at', commit])).map((t) => t.version).sort(compareVersions);
    if (atCommit.length) return this.resolved(atCommit[atCommit.length - 1]!, commit);
    const ancestors = (await this.tags(['--merged', commit])).map((t) => t.version).sort(compareVersions);
    const time = await this.commitTime(commit);
    return { version: pseudoVersion(this.layout.major ?? 0, ancestors[ancestors.length - 1], time, commit), commit, time };
  }

  /** `@latest`: the highest release, else the highest pre-release, else the default branch's HEAD. */
  async latest(): Promise<ResolvedVersion> {
    const tags = (await this.tags()).sort((a, b) => compareVersions(a.version, b.version));
    const releases = tags.filter((t) => !parseCanonical(t.version)!.prerelease);
    const best = releases[releases.length - 1] ?? tags[tags.length - 1];
    if (best) return this.resolved(best.version, best.commit);
    const head = await this.commitOf('HEAD');
    if (!head) throw new ModuleNotFoundError('the repository has no default branch');
    return this.versionOfCommit(head);
  }

  /**
   * Resolves a version or query: a tag version, a pseudo-version (its commit must exist and its
   * timestamp match the commit time, as Go checks), `latest`, or a branch, tag or commit hash.
   */
  async resolve(query: string): Promise<ResolvedVersion> {
    if (query === 'latest') return this.latest();
    if (query.endsWith('+incompatible')) throw new ModuleNotFoundError(`${query}: +incompatible versions are not served for private modules`);
    const pseudo = pseudoVersionParts(query);
    if (pseudo) {
      if (!this.majorMatches(query)) throw new ModuleNotFoundError(`${query}: wrong major version for module ${this.layout.module}`);
      if (!HEX.test(pseudo.revision)) throw new ModuleNotFoundError(`${query}: malformed revision ${pseudo.revision}`);
      const commit = await this.commitOf(pseudo.revision);
      if (!commit) throw new ModuleNotFoundError(`${query}: unknown revision ${pseudo.revision}`);
      const time = await this.commitTime(commit);
      if (pseudoTimestamp(time) !== pseudo.time) throw new ModuleNotFoundError(`${query}: does not match the commit time ${pseudoTimestamp(time)} of ${commit.slice(0, 12)}`);
      return { version: query, commit, time };
    }
    if (parseCanonical(query)) {
      const tag = (await this.tags()).find((t) => t.version === query);
      if (!tag) throw new ModuleNotFoundError(`${this.layout.module}@${query}: unknown revision ${this.layout.tagPrefix}${query}`);
      return this.resolved(tag.version, tag.commit);
    }
    // A branch, another tag name, or a commit hash; names were checked as file names (no `/`).
    if (query.startsWith('-') || query.includes('..') || query.includes('@{')) throw new ModuleNotFoundError(`${query}: not a revision`);
    const commit = (await this.commitOf(`refs/heads/${query}`)) ?? (await this.commitOf(`refs/tags/${this.layout.tagPrefix}${query}`)) ?? (HEX.test(query) ? await this.commitOf(query) : undefined);
    if (!commit) throw new ModuleNotFoundError(`${this.layout.module}@${query}: unknown revision ${query}`);
    return this.versionOfCommit(commit);
  }

  /** One regular file of a commit, or undefined when there is none at `file`. */
  async readFile(commit: string, file: string, maxBytes: number): Promise<Buffer | undefined> {
    const entry = (await this.git(['ls-tree', '-z', '-l', commit, '--', file])).split('\0')[0];
    const m = entry ? /^(\d+) (\w+) ([0-9a-f]+) +(\d+|-)\t/.exec(entry) : null;
    if (!m || m[2] !== 'blob' || m[1] === '120000') return undefined;
    if (Number(m[4]) > maxBytes) throw new ModuleNotFoundError(`${file} at ${commit.slice(0, 12)} is larger than ${maxBytes} bytes`);
    return Buffer.from(await this.git(['cat-file', 'blob', m[3]!], maxBytes + 1), 'utf8');
  }

  /**
   * The module's directory at a commit (coderepo findDir): for `/vN`, a go.mod in `vN/` claiming
   * `/vN`, or one at the module directory claiming it (both is an error); a go.mod with the wrong
   * major is an error; no go.mod at all is fine only for a v0/v1 module at the repository root.
   */
  async moduleDirectory(commit: string, version: string): Promise<ModuleDirectory> {
    const { codeDir, major, module } = this.layout;
    const join = (...parts: string[]) => parts.filter(Boolean).join('/');
    const file1 = join(codeDir, 'go.mod');
    const goMod1 = await this.readFile(commit, file1, MAX_GO_MOD);
    const found1 = goMod1 !== undefined && claimsMajor(goMod1, major);
    if (major !== undefined && this.layout.majorSubdirectory) {
      const dir2 = join(codeDir, `v${major}`);
      const goMod2 = await this.readFile(commit, join(dir2, 'go.mod'), MAX_GO_MOD);
      const found2 = goMod2 !== undefined && claimsMajor(goMod2, major);
      if (found1 && found2) throw new ModuleNotFoundError(`${module}@${version}: both ${file1} and ${dir2}/go.mod claim /v${major}`);
      if (found2) return { dir: dir2, goMod: goMod2 };
      if (goMod2 !== undefined) throw new ModuleNotFoundError(`${module}@${version}: ${dir2}/go.mod does not declare a /v${major} module path`);
    }
    if (found1) return { dir: codeDir, goMod: goMod1 };
    if (goMod1 !== undefined) throw new ModuleNotFoundError(`${module}@${version}: ${file1} declares module ${JSON.stringify(declaredModule(goMod1) ?? '')}, not a ${major ? `/v${major}` : 'v0/v1'} module path`);
    if (codeDir === '' && major === undefined) return { dir: '', goMod: undefined };
    throw new ModuleNotFoundError(`${module}@${version}: missing ${file1} at revision ${commit.slice(0, 12)}`);
  }
}

/** The path of a go.mod's `module` directive (x/mod modfile.ModulePath), if any. */
export function declaredModule(goMod: Buffer): string | undefined {
  const m = /^[ \t]*module[ \t]+(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`|([^\s/]+(?:\/[^\s/]+)*))/m.exec(goMod.toString('utf8').replace(/\/\/[^\n]*/g, ''));
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

/** x/mod isMajor: the declared path's `/vN` suffix is exactly the one asked for (none for v0/v1). */
function claimsMajor(goMod: Buffer, major: number | undefined): boolean {
  const declared = declaredModule(goMod);
  if (!declared) return false;
  const suffix = /\/v([1-9]\d*)$/.exec(declared);
  const declaredMajor = suffix && Number(suffix[1]) >= 2 ? Number(suffix[1]) : undefined;
  return declaredMajor === major;
}

/** `.info`: `{"Version","Time"}` with the commit time in RFC 3339 (UTC, whole seconds). */
export function infoJson(resolved: ResolvedVersion): string {
  return `${JSON.stringify({ Version: resolved.version, Time: new Date(resolved.time * 1000).toISOString().replace('.000Z', 'Z') })}\n`;
}
