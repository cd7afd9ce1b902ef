/**
 * The narrow view of the git strategy's mirrors that other strategies get (gomod serves private
 * modules from them). It hands out a Ready bare mirror to read with git; cloning, fetching,
 * snapshot restores and the repository registry stay inside the git strategy, so a private Go
 * module and a `git clone` through hoard share one mirror and one clone.
 */
export interface GitMirrorManager {
  /**
   * A Ready mirror of `repository` (`host[:port]/org/repo`, validated like a `/git/` request path
   * and checked against the git strategy's allowed-hosts; plain-http-hosts picks the scheme).
   * Starts or joins the clone and waits for it. With `fresh`, a mirror whose refs are behind
   * upstream is fetched first (rate-limited by the ref check interval; an unreachable upstream
   * leaves the mirror as it is). Rejects with GitMirrorRefusedError for a name or host hoard will
   * not mirror, and with a plain Error when the clone failed.
   */
  mirror(repository: string, opts: { fresh: boolean; signal: AbortSignal }): Promise<GitMirror>;
}

/** A Ready bare mirror to read from (never to write to: fetches own it). */
export interface GitMirror {
  /** The upstream it mirrors (`https://host/org/repo`). */
  readonly upstreamURL: string;
  /** The bare repository directory, for `git -C`. */
  readonly gitDir: string;
  /** The environment server-side git runs with (hoard's own config, no prompts). */
  readonly env: NodeJS.ProcessEnv;
}

/** A repository name or host the git strategy refuses to mirror (the caller answers 4xx). */
export class GitMirrorRefusedError extends Error {}
