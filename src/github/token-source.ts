/**
 * What consumers of GitHub App credentials (git upstream commands, github-releases) depend on:
 * an installation token for one organisation on one GitHub. Strategies receive this interface
 * through their context and never the implementation, so they know nothing of JWTs or keys.
 */
export interface GitHubTokenSource {
  /** True when some configured app serves the git host `host` (host[:port], lowercase). No network. */
  covers(host: string): boolean;
  /**
   * An installation token for `org` on `host`: a cached one with more than the refresh margin
   * left, else a freshly minted one (one request however many callers wait). Undefined when no
   * app serves `host`, or no app has an installation for `org` and no fallback org applies.
   * Rejects when the GitHub API fails; callers then go on without the token.
   */
  tokenFor(host: string, org: string, signal?: AbortSignal): Promise<string | undefined>;
}

/** The `Authorization` value git hosts on GitHub accept for an installation token over HTTP. */
export function installationBasicAuth(token: string): string {
  return `Basic ${Buffer.from(`x-access-token:${token}`).toString('base64')}`;
}
