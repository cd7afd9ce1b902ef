import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { normaliseRequestPath } from '../../http/request-path.js';
import { literalRoutePath, sendText } from '../../http/router.js';
import type { StrategyContext } from '../../http/strategy.js';
import type { StrategyProvider } from '../registry.js';
import { cachingHandler, type CachingRoute } from '../shared/caching-handler.js';
import { cachingAttributes } from '../shared/caching-config.js';

const schema = z.strictObject({
  ...cachingAttributes,
  hosts: z
    .array(z.string())
    .default([])
    .describe('Host names (the Host header, port ignored) whose every GET is served from the target, path appended to the target path (host-based routing). The path-prefix route /<target host><target path>/ always works.'),
});

/** Caller credentials Artifactory accepts; forwarded to the target and never shared across callers. */
const CREDENTIAL_HEADERS = ['authorization', 'x-jfrog-art-api', 'cookie'] as const;

/**
 * `strategy artifactory "<target URL>" { hosts = [...] }` (reference §5.3): caches an Artifactory
 * (or any repository manager) behind hoard. The caller's credentials are forwarded, and the
 * cache key carries a digest of them, so content fetched with one caller's credentials is only
 * ever served to callers presenting the same credentials (cachew shares it with everyone: its
 * [bug?]). Credentials themselves are never stored: only the digest is, inside the key hash.
 */
export const artifactoryStrategyProvider: StrategyProvider = {
  spec: { kind: 'strategy', name: 'artifactory', description: 'Cache an Artifactory instance, by path prefix and optionally by Host header.', schema, label: 'required' },
  create(ctx: StrategyContext<z.output<typeof schema>>) {
    let target: URL;
    try {
      target = new URL(ctx.label ?? '');
    } catch {
      throw new Error(`strategy artifactory: the label must be the target URL with its scheme (https://example.jfrog.io/artifactory), got ${JSON.stringify(ctx.label)}`);
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') throw new Error(`strategy artifactory: target must be http(s), got ${target.protocol}`);
    const basePath = target.pathname.replace(/\/+$/, '');
    const prefix = `/${target.host}${basePath}`;
    const hosts = new Set(ctx.config.hosts.map((h) => h.toLowerCase()));

    // Each request's upstream path (what follows the target path), set by whichever route took it.
    const rests = new WeakMap<IncomingMessage, string>();
    const upstreamOf = (req: IncomingMessage) => new URL(`${target.protocol}//${target.host}${basePath}${rests.get(req) ?? '/'}`);
    const credentialDigest = (req: IncomingMessage) => {
      const present = CREDENTIAL_HEADERS.map((name) => req.headers[name]).filter((v): v is string => typeof v === 'string');
      return present.length ? createHash('sha256').update(CREDENTIAL_HEADERS.map((n) => `${n}:${req.headers[n] ?? ''}`).join('\n')).digest('hex') : '';
    };
    const caching = cachingHandler(ctx, 'artifactory');
    const route: CachingRoute = {
      key: (req) => {
        const digest = credentialDigest(req);
        return digest ? `${upstreamOf(req)}\nCredentials=${digest}` : upstreamOf(req).toString();
      },
      upstream: (req) => {
        // Artifactory answers a download with a redirect to a signed blob-store URL unless told not to.
        const headers: Record<string, string> = { 'x-jfrog-download-redirect-to': 'None' };
        for (const name of CREDENTIAL_HEADERS) {
          const value = req.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        return { url: upstreamOf(req), headers };
      },
    };
    const serve = (req: IncomingMessage, res: ServerResponse, rest: string) => {
      rests.set(req, rest || '/');
      return caching.serve(route, req, res);
    };

    let decoded: string;
    try {
      decoded = decodeURIComponent(prefix);
    } catch {
      throw new Error(`strategy artifactory: invalid percent-encoding in target URL ${JSON.stringify(ctx.label)}`);
    }
    ctx.routes.on('GET', `${literalRoutePath(decoded)}/*`, (req, res) => serve(req, res, (req.url ?? '').slice(prefix.length)), { rawPrefix: `${prefix}/` });

    if (hosts.size) {
      ctx.routes.intercept((req) => {
        if (req.method !== 'GET' && req.method !== 'HEAD') return undefined;
        const raw = req.url ?? '';
        const hostHeader = req.headers.host;
        if (!raw.startsWith('/') || typeof hostHeader !== 'string') return undefined;
        const name = hostHeader.replace(/:\d+$/, '').replace(/^\[|\]$/g, '').toLowerCase();
        if (!hosts.has(name)) return undefined;
        // Routing is skipped, so the path gets the same reading (and refusals) the router's would.
        const queryAt = raw.indexOf('?');
        const normalised = normaliseRequestPath(queryAt === -1 ? raw : raw.slice(0, queryAt));
        if (!normalised.ok) return { policyPath: '/', handle: (_request, res) => sendText(res, 400, normalised.message) };
        return { policyPath: normalised.path, handle: (request, res) => serve(request, res, raw) };
      });
    }
    return { name: 'artifactory' };
  },
};
