import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { duration } from '../../config/duration.js';
import type { StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { HttpError, cachingHandler } from '../shared/caching-handler.js';
import { cachingAttributes } from '../shared/caching-config.js';
import { forwardToUpstream } from '../../http/upstream.js';
import { ANY_HOST } from '../shared/host-allow-list.js';

const schema = z.strictObject({
  ...cachingAttributes,
  'github-base-url': z.string().default('${HOARD_URL}/github.com').describe('Where GitHub release downloads are fetched (default: this server\'s github-releases strategy).'),
  'binary-ttl': duration().default(3_600_000).describe('TTL of hermit\'s self-update binaries (hermit-<os>-<arch>.gz).'),
});

const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$/;

/** `strategy hermit {}`: caches Hermit package downloads under `/hermit/{host}/{path}`. */
export const hermitStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'hermit', description: 'Cache Hermit package downloads.', schema },
  create(ctx: StrategyContext<z.output<typeof schema>>) {
    const cfg = ctx.config;
    const upstreamOf = (req: IncomingMessage) => {
      const raw = req.url ?? '';
      const m = /^\/hermit\/([^/]+)\/(.+)$/.exec(raw);
      if (!m || !HOST.test(m[1] ?? '') || (m[2] ?? '').split('/').includes('..')) throw new HttpError(400, 'expected /hermit/{host}/{path}');
      return new URL(`https://${m[1]}/${m[2]}`);
    };
    // Hermit fetches from whatever host the client names (its packages live everywhere), so a
    // redirect can reach no host a request could not name directly: no list to check against.
    const caching = cachingHandler(ctx, 'hermit');
    const isSelfUpdate = (req: IncomingMessage) => /\/hermit-[^/]+-[^/]+\.gz$/.test((req.url ?? '').split('?')[0] ?? '');
    const direct = {
      allowedHosts: ANY_HOST,
      key: (req: IncomingMessage) => upstreamOf(req).toString(),
      upstream: (req: IncomingMessage) => ({ url: upstreamOf(req) }),
      ttlMs: (req: IncomingMessage) => (isSelfUpdate(req) ? cfg['binary-ttl'] : 0),
      // Package archives are versioned; only hermit's self-update binaries change under one name.
      immutable: (req: IncomingMessage) => !isSelfUpdate(req),
    };
    ctx.routes.on('GET', '/hermit/*', (req, res) => caching.serve(direct, req, res));
    if (cfg['github-base-url']) {
      const base = cfg['github-base-url'].replace(/\/+$/, '');
      const loopsBack = base === `${ctx.global.url}/github.com`;
      const githubRoute = {
        allowedHosts: ANY_HOST,
        key: (req: IncomingMessage) => `https://github.com/${(req.url ?? '').slice('/hermit/github.com/'.length)}`,
        upstream: (req: IncomingMessage) => ({ url: new URL(`${base}/${(req.url ?? '').slice('/hermit/github.com/'.length)}`) }),
        immutable: () => true,
      };
      ctx.routes.on('GET', '/hermit/github.com/:org/:repo/releases/download/*', (req, res) => {
        const rest = (req.url ?? '').slice('/hermit/github.com/'.length);
        // The default points at this server's own github-releases strategy, which caches it already.
        if (loopsBack) return forwardToUpstream(req, res, new URL(`${base}/${rest}`));
        return caching.serve(githubRoute, req, res);
      });
    }
    return { name: 'hermit' };
  },
};
