import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { StrategyContext } from '../../server/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { serveCached } from '../shared/caching-handler.js';
import { forwardToUpstream } from '../git/upstream.js';
import { sendText } from '../../server/router.js';

const schema = z.strictObject({
  proxy: z.string().default('https://proxy.golang.org').describe('Upstream GOPROXY.'),
  'private-paths': z.array(z.string()).default([]).describe('Module path patterns fetched from git (not supported yet: must be empty).'),
});

/** Module paths and versions in GOPROXY's escaped form (`!`-lowercase), no dot-segments. */
const MODULE_PATH = /^[a-z0-9!._~-]+(\/[a-z0-9!._~+-]+)*$/;
const CANONICAL_VERSION = /^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+incompatible)?$/;

/**
 * `strategy gomod {}`: a GOPROXY (`GOPROXY=http://hoard/gomod,direct`). Immutable module
 * files (`@v/<canonical version>.info|.mod|.zip`) are cached; version lists and `@latest` always
 * go upstream (they change); the checksum database is passed through.
 */
export const gomodStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'gomod', description: 'Go module proxy (GOPROXY) with caching of immutable module files.', schema },
  create(ctx: StrategyContext<z.output<typeof schema>>) {
    if (ctx.config['private-paths'].length) throw new Error('strategy gomod: private-paths is not supported by hoard yet; remove it or use GOPRIVATE with direct');
    const proxy = ctx.config.proxy.replace(/\/+$/, '');
    const route = {
      key: (req: IncomingMessage) => `${proxy}${(req.url ?? '').slice('/gomod'.length)}`,
      upstream: (req: IncomingMessage) => ({ url: new URL(`${proxy}${(req.url ?? '').slice('/gomod'.length)}`) }),
    };
    ctx.routes.on('GET', '/gomod/*', (req: IncomingMessage, res: ServerResponse) => {
      const path = ((req.url ?? '').split('?')[0] ?? '').slice('/gomod/'.length);
      if (path.startsWith('sumdb/')) {
        if (!/^sumdb\/sum\.golang\.org\/(supported|latest|lookup\/.+|tile\/.+)$/.test(path)) return sendText(res, 404, 'not found');
        if (path.endsWith('/supported')) return sendText(res, 200, '');
        return forwardToUpstream(req, res, new URL(`https://sum.golang.org/${path.slice('sumdb/sum.golang.org/'.length)}`));
      }
      const at = path.indexOf('/@');
      const module = at === -1 ? '' : path.slice(0, at);
      const rest = at === -1 ? '' : path.slice(at + 1);
      if (!MODULE_PATH.test(module) || module.split('/').some((s) => s === '.' || s === '..')) return sendText(res, 404, 'not found: invalid module path');
      const file = /^@v\/(.+)\.(info|mod|zip)$/.exec(rest);
      if (file && CANONICAL_VERSION.test(file[1] ?? '')) return serveCached(route, ctx.cache, ctx.logger, req, res);
      if (rest === '@v/list' || rest === '@latest' || file) return forwardToUpstream(req, res, route.upstream(req).url);
      return sendText(res, 404, 'not found');
    });
    return { name: 'gomod' };
  },
};
