import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { sendText } from '../../http/router.js';
import type { StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { cachingHandler, type CachingRoute } from '../shared/caching-handler.js';
import { cachingAttributes } from '../shared/caching-config.js';
import { ANY_HOST, hostAllowList } from '../shared/host-allow-list.js';

const schema = z.strictObject({
  ...cachingAttributes,
  'allowed-hosts': z.array(z.string()).default([]).describe('Target hosts (host or host:port) the proxy may fetch from; empty = any host (hoard addition).'),
  'plain-http-hosts': z
    .array(z.string())
    .default([])
    .describe('Target hosts (with port) fetched over http:// as requested instead of being upgraded to https:// (hoard addition; internal servers and tests).'),
});

const lower = (hosts: string[]) => new Set(hosts.map((h) => h.toLowerCase()));

/**
 * `strategy proxy {}`: an absolute-form HTTP proxy (`http_proxy=http://hoard:8080`, Android's
 * `sdkmanager --proxy_host`). It intercepts GET and HEAD requests whose target is `http://...`
 * before routing, so a proxied `http://host/api/v1/...` never reaches hoard's own routes, fetches
 * the same URL over https (unless the host is in `plain-http-hosts`) and caches it by that URL.
 * Everything else (relative targets, other methods, CONNECT) is left to the router.
 */
export const proxyStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'proxy', description: 'Absolute-form HTTP proxy: caches GETs of http:// URLs sent through hoard as a proxy (fetched over https).', schema },
  create(ctx: StrategyContext<z.output<typeof schema>>) {
    const allowed = lower(ctx.config['allowed-hosts']);
    const plain = lower(ctx.config['plain-http-hosts']);
    const targets = new WeakMap<IncomingMessage, URL>();
    const target = (req: IncomingMessage) => targets.get(req) as URL;
    const caching = cachingHandler(ctx, 'proxy');
    const route: CachingRoute = {
      // Redirects answer to the same list as the targets themselves.
      allowedHosts: allowed.size ? hostAllowList(allowed, 'allowed-hosts of strategy proxy') : ANY_HOST,
      key: (req) => target(req).toString(),
      upstream: (req) => ({ url: target(req) }),
    };
    ctx.routes.intercept((req) => {
      const raw = req.url ?? '';
      if ((req.method !== 'GET' && req.method !== 'HEAD') || !raw.toLowerCase().startsWith('http://')) return undefined;
      let url: URL;
      let policyPath: string;
      try {
        url = new URL(raw);
        policyPath = decodeURIComponent(url.pathname);
      } catch {
        return { policyPath: '/', handle: (_req, res) => sendText(res, 404, 'proxy error: unparsable request target') };
      }
      const host = url.host.toLowerCase();
      if (url.username || url.password) return { policyPath, handle: (_req, res) => sendText(res, 400, 'proxy error: credentials in the request target are not accepted') };
      if (allowed.size && !allowed.has(host) && !allowed.has(url.hostname.toLowerCase())) {
        return { policyPath, handle: (_req, res) => sendText(res, 403, `proxy error: host ${host} is not in allowed-hosts`) };
      }
      if (!plain.has(host)) url.protocol = 'https:';
      url.hash = '';
      return {
        policyPath,
        handle: (request, res) => {
          targets.set(request, url);
          return caching.serve(route, request, res);
        },
      };
    });
    return { name: 'proxy' };
  },
};
