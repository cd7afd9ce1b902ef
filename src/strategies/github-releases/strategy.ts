import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import type { StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { HttpError, cachingHandler, fetchFollowingRedirects } from '../shared/caching-handler.js';
import { cachingAttributes } from '../shared/caching-config.js';
import { hostAllowList, hostEntry } from '../shared/host-allow-list.js';

/** Where GitHub serves release downloads from (github.com and the API answer with a redirect to one of these). */
const GITHUB_RELEASE_STORAGE_HOSTS = ['release-assets.githubusercontent.com', 'objects.githubusercontent.com', 'github-releases.githubusercontent.com'];

const schema = z.strictObject({
  ...cachingAttributes,
  token: z.string().optional().describe('GitHub token used for private release assets when no github-app block has an installation for the org.'),
  'private-orgs': z.array(z.string()).describe('Organisations whose releases are private (required; may be []).'),
  'api-url': z.string().default('https://api.github.com').describe('GitHub API base URL (hoard addition, for GitHub Enterprise and tests).'),
  'download-url': z.string().default('https://github.com').describe('Base URL of public release downloads (hoard addition).'),
  'redirect-hosts': z
    .array(hostEntry)
    .default(GITHUB_RELEASE_STORAGE_HOSTS)
    .describe('Hosts (host[:port]) release downloads may be redirected to, besides the api-url and download-url hosts (default: GitHub\'s release storage hosts). A redirect anywhere else answers 502; the token is never sent to a redirect target on another host.'),
});

const SEGMENT = /^[A-Za-z0-9_.-]+$/;

/** `strategy github-releases {}`: caches `/github.com/{org}/{repo}/releases/download/{tag}/{asset}`. */
export const githubReleasesStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'github-releases', description: 'Cache GitHub release assets (public and private).', schema },
  create(ctx: StrategyContext<z.output<typeof schema>>) {
    const cfg = ctx.config;
    const baseHost = (name: 'api-url' | 'download-url') => {
      try {
        return new URL(cfg[name]).host;
      } catch {
        throw new Error(`strategy github-releases: ${name} is not a URL: ${JSON.stringify(cfg[name])}`);
      }
    };
    // Apps are chosen by the GitHub they belong to: the host of download-url (github.com, or an Enterprise host).
    const githubHost = baseHost('download-url').toLowerCase();
    const appTokens = ctx.global.githubTokens?.covers(githubHost) ? ctx.global.githubTokens : undefined;
    if (cfg['private-orgs'].length && !cfg.token && !appTokens) ctx.logger.warn(`github-releases: private-orgs set but neither a token nor a github-app block for ${githubHost}; private assets will fail`);
    /**
     * The credential for a private org, as cachew chooses it: the GitHub App installation token
     * of the org when an app has one (a failure is logged and falls back), else the static token.
     */
    const authorization = async (org: string): Promise<Record<string, string>> => {
      if (appTokens) {
        try {
          const token = await appTokens.tokenFor(githubHost, org);
          if (token) return { authorization: `Bearer ${token}` };
        } catch (err) {
          ctx.logger.warn({ err: (err as Error).message, org }, 'github-releases: GitHub App token unavailable; falling back to the static token');
        }
      }
      return cfg.token ? { authorization: `Bearer ${cfg.token}` } : {};
    };
    // Checked on every hop, the first too: the asset URL comes from the API's answer.
    const allowedHosts = hostAllowList([baseHost('api-url'), baseHost('download-url'), ...cfg['redirect-hosts']], 'redirect-hosts of strategy github-releases');
    const parse = (req: IncomingMessage) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      const m = /^\/github\.com\/([^/]+)\/([^/]+)\/releases\/download\/(.+)$/.exec(path);
      if (!m) throw new HttpError(404, 'not found');
      const [, org = '', repo = '', rest = ''] = m;
      const cut = rest.lastIndexOf('/');
      if (!SEGMENT.test(org) || !SEGMENT.test(repo) || cut <= 0) throw new HttpError(400, 'expected /github.com/{org}/{repo}/releases/download/{tag}/{asset}');
      return { org, repo, tag: decodeURIComponent(rest.slice(0, cut)), asset: decodeURIComponent(rest.slice(cut + 1)), rest };
    };
    const caching = cachingHandler(ctx, 'github-releases');
    const route = {
      allowedHosts,
      // A published release asset never changes (a re-upload is a new asset name or tag).
      immutable: () => true,
      key: (req: IncomingMessage) => {
        const p = parse(req);
        return `https://github.com/${p.org}/${p.repo}/releases/download/${p.rest}`;
      },
      upstream: async (req: IncomingMessage) => {
        const p = parse(req);
        if (!cfg['private-orgs'].includes(p.org)) return { url: new URL(`${cfg['download-url']}/${p.org}/${p.repo}/releases/download/${p.rest}`) };
        const auth = await authorization(p.org);
        const api = new URL(`${cfg['api-url']}/repos/${p.org}/${p.repo}/releases/tags/${encodeURIComponent(p.tag)}`);
        const res = await fetchFollowingRedirects(api, { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'hoard', ...auth }, AbortSignal.timeout(cfg['upstream-timeout']), allowedHosts);
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of res) {
          size += (c as Buffer).length;
          if (size > 8 << 20) throw new HttpError(502, 'release metadata too large');
          chunks.push(c as Buffer);
        }
        if (res.statusCode !== 200) throw new HttpError(res.statusCode ?? 502, `GitHub API answered ${res.statusCode} for release ${p.tag}`);
        let release: { assets?: Array<{ name: string; url: string }> };
        try {
          release = JSON.parse(Buffer.concat(chunks).toString()) as typeof release;
        } catch {
          throw new HttpError(502, 'GitHub API returned invalid JSON');
        }
        const asset = release.assets?.find((a) => a.name === p.asset);
        if (!asset) throw new HttpError(404, `asset ${p.asset} not found in release ${p.tag}`);
        return { url: new URL(asset.url), headers: { accept: 'application/octet-stream', 'user-agent': 'hoard', ...auth } };
      },
    };
    ctx.routes.on('GET', '/github.com/:org/:repo/releases/download/*', (req, res) => caching.serve(route, req, res));
    return { name: 'github-releases' };
  },
};
