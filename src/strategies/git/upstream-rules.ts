import type { GitConfig } from './config.js';
import type { GitRequestPath } from './paths.js';

/**
 * Which upstreams the git strategy may contact (`allowed-hosts`, checked for every request,
 * discovered mirror and redirect hop) and over which scheme (`plain-http-hosts`), and so the
 * upstream URL, the identity of a repository record, a request path names.
 */
export class UpstreamRules {
  /** Lowercased: request hosts are lowercased too. */
  private readonly allowedHosts: ReadonlySet<string>;
  private readonly plainHttpHosts: ReadonlySet<string>;

  constructor(config: Pick<GitConfig, 'allowed-hosts' | 'plain-http-hosts'>) {
    this.allowedHosts = new Set(config['allowed-hosts'].map((h) => h.toLowerCase()));
    this.plainHttpHosts = new Set(config['plain-http-hosts'].map((h) => h.toLowerCase()));
  }

  /** True when `allowed-hosts` lets hoard contact `host` (lowercase); an empty list allows any. */
  hostAllowed(host: string): boolean {
    return this.allowedHosts.size === 0 || this.allowedHosts.has(host);
  }

  /** `allowed-hosts`, for messages. */
  allowedHostList(): string {
    return [...this.allowedHosts].join(', ');
  }

  /** `http` for the `plain-http-hosts`, else `https`. */
  scheme(host: string): 'http' | 'https' {
    return this.plainHttpHosts.has(host) ? 'http' : 'https';
  }

  /** The upstream URL a request path names (the identity of its repository record). */
  upstreamURL(parsed: GitRequestPath): string {
    return `${this.scheme(parsed.host)}://${parsed.host}/${parsed.urlPath}`;
  }
}
