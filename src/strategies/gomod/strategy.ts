import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { RouteParams, StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { cachingHandler, variantKey, type CachingRoute } from '../shared/caching-handler.js';
import { cachingAttributes } from '../shared/caching-config.js';
import { duration } from '../../config/duration.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import { forwardToUpstream } from '../../http/upstream.js';
import { hostAllowList, hostEntry } from '../shared/host-allow-list.js';
import { sendText } from '../../http/router.js';
import { checkEscapedModulePath, checkEscapedVersion, isCanonicalVersion } from './module-path.js';
import { CACHE_CONTROL } from './cache-control.js';
import { PrivateModuleServer } from './private-module-server.js';
import { serveSumdb } from './sumdb-proxy.js';

const schema = z.strictObject({
  ...cachingAttributes,
  'mutable-ttl': duration()
    .default(60_000)
    .describe('TTL of the answers that change under one name (@v/list, @latest); past it they are revalidated with the upstream\'s ETag/Last-Modified, and served stale within stale-if-error when the upstream fails. 0 = never cached, always forwarded.'),
  proxy: z.string().default('https://proxy.golang.org').describe('Upstream GOPROXY.'),
  'private-paths': z
    .array(z.string())
    .default([])
    .describe('Module path patterns (GOPRIVATE syntax: * and ? within one path element, a pattern matches the leading elements) served from git mirrors of their repositories instead of the proxy; needs a strategy git block, whose allowed-hosts and plain-http-hosts apply. The repository of host/org/repo/sub/vN is host/org/repo (or the path up to an element ending in .git).'),
  'private-repo-hosts': z
    .record(z.string(), hostEntry)
    .default({})
    .describe('Git host (host[:port]) holding the repositories of private modules, by module host: { "go.example.com" = "git.example.com" }. Default: the module\'s own host.'),
  sumdb: z.string().default('https://sum.golang.org').describe('Upstream of the proxied checksum database sum.golang.org; when it fails, the cached copy of a lookup, tile or latest is served.'),
  'redirect-hosts': z
    .array(hostEntry)
    .default(['storage.googleapis.com'])
    .describe('Hosts (host[:port]) besides the proxy\'s own that module downloads may be redirected to (default: where proxy.golang.org serves .zip files from). A redirect anywhere else answers 502.'),
});

/** The one checksum database hoard proxies (as cachew does); its upstream is the `sumdb` attribute. */
const SUMDB_NAME = 'sum.golang.org';
/** sumdb endpoints: `lookup/<escaped module>@<escaped version>` and `tile/<height>/<level>/<n>[.p/<w>]`. */
const SUMDB_PATH = /^(latest|lookup\/[A-Za-z0-9!._~/+-]+@[A-Za-z0-9!._~+-]+|tile\/[0-9a-z./]+)$/;

/** A module-proxy request, reduced to its canonical escaped parts. */
type ModuleRequest =
  | { kind: 'file'; module: string; realModule: string; version: string; realVersion: string; ext: 'info' | 'mod' | 'zip'; cacheable: boolean }
  | { kind: 'list' | 'latest'; module: string; realModule: string };

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
  if (rest === '@v/list') return { kind: 'list', module: module.escaped, realModule: module.unescaped };
  if (rest === '@latest') return { kind: 'latest', module: module.escaped, realModule: module.unescaped };
  const file = /^@v\/([^/]+)\.(info|mod|zip)$/.exec(rest);
  if (!file) return { refused: 'not found' };
  const version = checkEscapedVersion(file[1]!);
  if (!version.ok) return { refused: `not found: ${version.reason}` };
  return { kind: 'file', module: module.escaped, realModule: module.unescaped, version: version.escaped, realVersion: version.unescaped, ext: file[2] as 'info' | 'mod' | 'zip', cacheable: isCanonicalVersion(version.unescaped) };
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

/** Whether a request asks to be served from the cache alone (the go command's `Disable-Module-Fetch: true`). */
function cacheOnly(req: IncomingMessage): boolean {
  return String(req.headers['disable-module-fetch'] ?? '').trim().toLowerCase() === 'true';
}

/**
 * `strategy gomod {}`: a GOPROXY (`GOPROXY=http://hoard/gomod,direct`). Immutable module
 * files (`@v/<canonical version>.info|.mod|.zip`) are cached and served stale without limit;
 * version lists and `@latest` are cached for `mutable-ttl` and then revalidated; version queries
 * always go upstream; the checksum database is proxied with its cached copy as the fallback.
 * Modules matching `private-paths` come from git mirrors instead. `Disable-Module-Fetch: true`
 * serves from the cache alone. Pass-through requests never carry the caller's credentials: those
 * are meant for hoard, not for the public proxy or sumdb.
 */
export const gomodStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'gomod', description: 'Go module proxy (GOPROXY) with caching of immutable module files; private modules served from git mirrors.', schema },
  create(ctx: StrategyContext<z.output<typeof schema>>) {
    const parseUrl = (attribute: string, value: string) => {
      try {
        const url = new URL(value.replace(/\/+$/, ''));
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
        return url;
      } catch {
        throw new Error(`strategy gomod: ${attribute} is not an http(s) URL: ${JSON.stringify(value)}`);
      }
    };
    const proxy = parseUrl('proxy', ctx.config.proxy).href.replace(/\/+$/, '');
    const sumdb = parseUrl('sumdb', ctx.config.sumdb).href.replace(/\/+$/, '');
    const proxyHost = new URL(proxy).host;
    let privateModules: PrivateModuleServer | undefined;
    if (ctx.config['private-paths'].length) {
      const mirrors = ctx.services?.gitMirrors;
      // Private modules share the git strategy's mirrors (one clone per repository, its host
      // rules and credentials); a second, hidden mirror manager would be configuration nobody wrote.
      if (!mirrors) throw new Error('strategy gomod: private-paths needs a strategy git {} block: private modules are served from its mirrors (its allowed-hosts and plain-http-hosts apply)');
      privateModules = new PrivateModuleServer(ctx.config['private-paths'], ctx.config['private-repo-hosts'], mirrors, ctx.cache, ctx.logger);
    } else if (Object.keys(ctx.config['private-repo-hosts']).length) {
      throw new Error('strategy gomod: private-repo-hosts has no effect without private-paths');
    }
    // proxy.golang.org answers .zip downloads with a redirect to signed storage URLs; every hop is checked.
    const allowedHosts = hostAllowList([proxyHost, ...ctx.config['redirect-hosts']], 'redirect-hosts of strategy gomod');
    const caching = cachingHandler(ctx, 'gomod');
    const mutableHeaders = (status: number): Record<string, string> => ({ 'cache-control': status === 200 ? CACHE_CONTROL.mutable : status >= 500 ? CACHE_CONTROL.upstreamFailed : CACHE_CONTROL.notFoundQuery });
    const forwardWithoutCredentials = (req: IncomingMessage, res: ServerResponse, url: URL) => forwardToUpstream(req, res, url, undefined, { callerCredentials: false, responseHeaders: mutableHeaders });
    const notProtocol = (res: ServerResponse, message: string) => sendText(res, 404, message, { 'cache-control': CACHE_CONTROL.notProtocol });
    ctx.routes.on('GET', '/gomod/*', (req: IncomingMessage, res: ServerResponse, params: RouteParams) => {
      const path = params['*'] ?? '';
      if (path.startsWith('sumdb/')) {
        const rest = path.slice('sumdb/'.length);
        if (!rest.startsWith(`${SUMDB_NAME}/`)) return notProtocol(res, 'not found: only sum.golang.org is proxied');
        const endpoint = rest.slice(SUMDB_NAME.length + 1);
        if (endpoint === 'supported') return sendText(res, 200, '', { 'cache-control': CACHE_CONTROL.sumdbSupported });
        if (!SUMDB_PATH.test(endpoint)) return notProtocol(res, 'not found');
        return serveSumdb(req, res, new URL(`${sumdb}/${endpoint}`), `${SUMDB_NAME}/${endpoint}`, ctx.cache, ctx.logger);
      }
      const request = parseModuleRequest(path);
      if ('refused' in request) return notProtocol(res, request.refused);
      if (privateModules?.matches(request.realModule)) {
        const named =
          request.kind === 'file'
            ? { kind: 'file' as const, module: request.realModule, escapedModule: request.module, version: request.realVersion, escapedVersion: request.version, ext: request.ext, cacheable: request.cacheable }
            : { kind: request.kind, module: request.realModule, escapedModule: request.module };
        return privateModules.serve(req, res, named, cacheOnly(req));
      }
      const url = new URL(`${proxy}/${upstreamPath(request)}`);
      if (request.kind === 'file' && request.cacheable) {
        // Keyed by the escaped spelling, so `%21x` and `!x` requests share one cached object.
        const route: CachingRoute = { key: () => url.href, upstream: () => ({ url }), allowedHosts, immutable: () => true, responseHeaders: { 'cache-control': CACHE_CONTROL.immutable } };
        if (cacheOnly(req)) return serveFromCacheOnly(route, req, res);
        return caching.serve(route, req, res);
      }
      if ((request.kind === 'list' || request.kind === 'latest') && ctx.config['mutable-ttl'] > 0 && !cacheOnly(req)) {
        // They change: a short TTL, then a conditional GET (X-Hoard-Cache: revalidated on 304).
        const route: CachingRoute = { key: () => url.href, upstream: () => ({ url }), allowedHosts, ttlMs: () => ctx.config['mutable-ttl'], responseHeaders: { 'cache-control': CACHE_CONTROL.mutable } };
        return caching.serve(route, req, res);
      }
      if (cacheOnly(req)) return sendText(res, 404, 'not found: version lists and queries are never served from the cache alone (Disable-Module-Fetch)', { 'cache-control': CACHE_CONTROL.notFoundQuery });
      return forwardWithoutCredentials(req, res, url);
    });
    const serveFromCacheOnly = async (route: CachingRoute, req: IncomingMessage, res: ServerResponse) => {
      if (await sendCacheObject(ctx.cache, variantKey(route.key(req), req), req, res, route.responseHeaders)) return;
      sendText(res, 404, 'not found: not cached, and Disable-Module-Fetch forbids fetching it', { 'cache-control': CACHE_CONTROL.notFoundDownload });
    };
    return { name: 'gomod' };
  },
};
