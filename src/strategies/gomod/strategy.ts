import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { RouteParams, StrategyContext } from '../../server/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { serveCached, type CachingRoute } from '../shared/caching-handler.js';
import { forwardToUpstream } from '../git/upstream.js';
import { hostAllowList, hostEntry } from '../shared/host-allow-list.js';
import { sendText } from '../../server/router.js';
import { checkEscapedModulePath, checkEscapedVersion, isCanonicalVersion } from './module-path.js';

const schema = z.strictObject({
  proxy: z.string().default('https://proxy.golang.org').describe('Upstream GOPROXY.'),
  'private-paths': z.array(z.string()).default([]).describe('Module path patterns fetched from git (not supported yet: must be empty).'),
  'redirect-hosts': z
    .array(hostEntry)
    .default(['storage.googleapis.com'])
    .describe('Hosts (host[:port]) besides the proxy\'s own that module downloads may be redirected to (default: where proxy.golang.org serves .zip files from). A redirect anywhere else answers 502.'),
});

/** The one checksum database hoard proxies (as cachew does), and the upstream serving it. */
const SUMDB_NAME = 'sum.golang.org';
const SUMDB_UPSTREAM = 'https://sum.golang.org';
/** sumdb endpoints: `lookup/<escaped module>@<escaped version>` and `tile/<height>/<level>/<n>[.p/<w>]`. */
const SUMDB_PATH = /^(latest|lookup\/[A-Za-z0-9!._~/+-]+@[A-Za-z0-9!._~+-]+|tile\/[0-9a-z./]+)$/;

/** A module-proxy request, reduced to its canonical escaped parts. */
type ModuleRequest =
  | { kind: 'file'; module: string; version: string; ext: 'info' | 'mod' | 'zip'; cacheable: boolean }
  | { kind: 'list' | 'latest'; module: string };

/**
 * Reads `<escaped module>/@v/list`, `/@latest` or `/@v/<escaped version>.<info|mod|zip>` from the
 * decoded path (the router's `*`, so `%21` already reads `!`). Returns why it is refused instead.
 */
function parseModuleRequest(path: string): ModuleRequest | { refused: string } {
  const at = path.indexOf('/@');
  if (at === -1) return { refused: 'not found: not a module proxy path' };
  const module = checkEscapedModulePath(path.slice(0, at));
  if (!module.ok) return { refused: `not found: ${module.reason}` };
  const rest = path.slice(at + 1);
  if (rest === '@v/list') return { kind: 'list', module: module.escaped };
  if (rest === '@latest') return { kind: 'latest', module: module.escaped };
  const file = /^@v\/([^/]+)\.(info|mod|zip)$/.exec(rest);
  if (!file) return { refused: 'not found' };
  const version = checkEscapedVersion(file[1]!);
  if (!version.ok) return { refused: `not found: ${version.reason}` };
  return { kind: 'file', module: module.escaped, version: version.escaped, ext: file[2] as 'info' | 'mod' | 'zip', cacheable: isCanonicalVersion(version.unescaped) };
}

/** The upstream path of a request, in the escaped form (the only spelling with no upper case). */
function upstreamPath(request: ModuleRequest): string {
  switch (request.kind) {
    case 'list':
      return `${request.module}/@v/list`;
    case 'latest':
      return `${request.module}/@latest`;
    case 'file':
      // A version query may hold characters that mean something in a URL (`#`, `%`, space).
      return `${request.module}/@v/${encodeURIComponent(request.version)}.${request.ext}`;
  }
}

/**
 * `strategy gomod {}`: a GOPROXY (`GOPROXY=http://hoard/gomod,direct`). Immutable module
 * files (`@v/<canonical version>.info|.mod|.zip`) are cached; version lists, `@latest` and
 * version queries always go upstream (they change); the checksum database is passed through.
 * Pass-through requests never carry the caller's credentials: those are meant for hoard, not for
 * the public proxy or checksum database.
 */
export const gomodStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'gomod', description: 'Go module proxy (GOPROXY) with caching of immutable module files.', schema },
  create(ctx: StrategyContext<z.output<typeof schema>>) {
    if (ctx.config['private-paths'].length) throw new Error('strategy gomod: private-paths is not supported by hoard yet; remove it or use GOPRIVATE with direct');
    const proxy = ctx.config.proxy.replace(/\/+$/, '');
    let proxyHost: string;
    try {
      proxyHost = new URL(proxy).host;
    } catch {
      throw new Error(`strategy gomod: proxy is not a URL: ${JSON.stringify(ctx.config.proxy)}`);
    }
    // proxy.golang.org answers .zip downloads with a redirect to signed storage URLs; every hop is checked.
    const allowedHosts = hostAllowList([proxyHost, ...ctx.config['redirect-hosts']], 'redirect-hosts of strategy gomod');
    const forwardWithoutCredentials = (req: IncomingMessage, res: ServerResponse, url: URL) => forwardToUpstream(req, res, url, undefined, { callerCredentials: false });
    ctx.routes.on('GET', '/gomod/*', (req: IncomingMessage, res: ServerResponse, params: RouteParams) => {
      const path = params['*'] ?? '';
      if (path.startsWith('sumdb/')) {
        const rest = path.slice('sumdb/'.length);
        if (!rest.startsWith(`${SUMDB_NAME}/`)) return sendText(res, 404, 'not found: only sum.golang.org is proxied');
        const endpoint = rest.slice(SUMDB_NAME.length + 1);
        if (endpoint === 'supported') return sendText(res, 200, '');
        if (!SUMDB_PATH.test(endpoint)) return sendText(res, 404, 'not found');
        return forwardWithoutCredentials(req, res, new URL(`${SUMDB_UPSTREAM}/${endpoint}`));
      }
      const request = parseModuleRequest(path);
      if ('refused' in request) return sendText(res, 404, request.refused);
      const url = new URL(`${proxy}/${upstreamPath(request)}`);
      if (request.kind === 'file' && request.cacheable) {
        // Keyed by the escaped spelling, so `%21x` and `!x` requests share one cached object.
        const route: CachingRoute = { key: () => url.href, upstream: () => ({ url }), allowedHosts };
        return serveCached(route, ctx.cache, ctx.logger, req, res);
      }
      return forwardWithoutCredentials(req, res, url);
    });
    return { name: 'gomod' };
  },
};
