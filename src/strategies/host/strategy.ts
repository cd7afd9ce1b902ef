import { z } from 'zod';
import { literalRoutePath } from '../../http/router.js';
import type { StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { cachingHandler } from '../shared/caching-handler.js';
import { cachingAttributes } from '../shared/caching-config.js';
import { hostAllowList, hostEntry } from '../shared/host-allow-list.js';

const hostSchema = z.strictObject({
  ...cachingAttributes,
  headers: z.record(z.string(), z.string()).default({}).describe('Static headers sent on every upstream request (e.g. Authorization for a registry).'),
  'redirect-hosts': z
    .array(hostEntry)
    .default([])
    .describe('Hosts (host[:port]) besides the target host that upstream redirects may lead to, e.g. pkg-containers.githubusercontent.com for ghcr.io blobs. A redirect to any other host answers 502; Authorization and cookies never follow a redirect to another host.'),
});

/** `strategy host "<target URL>" {}`: caches any GET under `/<target host>/...`. */
export const hostStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'host', description: 'Cache every GET to one upstream host under /<host>/...', schema: hostSchema, label: 'required' },
  create(ctx: StrategyContext<z.output<typeof hostSchema>>) {
    let target: URL;
    try {
      target = new URL(ctx.label ?? '');
    } catch {
      throw new Error(`strategy host: invalid target URL ${JSON.stringify(ctx.label)}`);
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new Error(`strategy host: target must be http(s), got ${target.protocol}`);
    const basePath = target.pathname.replace(/\/+$/, '');
    const prefix = `/${target.host}${basePath}`;
    const upstreamOf = (url: string) => {
      const rest = url.slice(prefix.length) || '/';
      return new URL(`${target.protocol}//${target.host}${basePath}${rest}`);
    };
    const caching = cachingHandler(ctx, 'host');
    const route = {
      // Every hop is checked, so an allowed target cannot bounce hoard to a host nobody configured.
      allowedHosts: hostAllowList([target.host, ...ctx.config['redirect-hosts']], `redirect-hosts of strategy host "${ctx.label ?? ''}"`),
      key: (req: { url?: string }) => upstreamOf(req.url ?? '').toString(),
      upstream: (req: { url?: string }) => ({ url: upstreamOf(req.url ?? ''), headers: ctx.config.headers }),
    };
    // The router matches decoded paths, so the route is registered decoded; the raw prefix (as
    // configured, possibly with %2F in the base path) is what `upstreamOf` slices off.
    let decoded = prefix;
    try {
      decoded = decodeURIComponent(prefix);
    } catch {
      throw new Error(`strategy host: invalid percent-encoding in target URL ${JSON.stringify(ctx.label)}`);
    }
    ctx.routes.on('GET', `${literalRoutePath(decoded)}/*`, (req, res) => caching.serve(route, req, res), { rawPrefix: `${prefix}/` });
    return { name: 'host' };
  },
};
