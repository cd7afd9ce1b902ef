import type { Logger } from 'pino';
import { installationBasicAuth, type GitHubTokenSource } from '../../github/token-source.js';

/**
 * hoard's own credential for reading `url` upstream: the GitHub App installation token of the
 * URL's org (first path segment) when an app serves the host, as HTTP Basic `x-access-token`.
 * Undefined otherwise, and when the token cannot be had (logged; the request goes on without).
 */
export async function upstreamAuthorization(tokens: GitHubTokenSource | undefined, url: URL, logger: Logger, signal?: AbortSignal): Promise<string | undefined> {
  if (!tokens?.covers(url.host)) return undefined;
  const org = url.pathname.split('/')[1] ?? '';
  try {
    const token = await tokens.tokenFor(url.host, org, signal);
    return token ? installationBasicAuth(token) : undefined;
  } catch (err) {
    logger.warn({ err: (err as Error).message, host: url.host, org }, 'github-app token unavailable; going upstream without it');
    return undefined;
  }
}
