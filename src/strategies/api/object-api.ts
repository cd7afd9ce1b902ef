import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import { isValidNamespace, parseKey } from '../../cache/key.js';
import { unquoteStrongETag, type StoredHeaders } from '../../cache/headers.js';
import { parseDuration } from '../../config/duration.js';
import { sendJson, sendText } from '../../server/router.js';
import { sendCacheObject } from '../../server/send-cache-object.js';
import type { RouteParams, RouteRegistry } from '../../server/strategy.js';

/**
 * Request headers stored with an uploaded object. An allowlist rather than cachew's denylist:
 * credentials, cookies, tracing and proxy headers must never be stored and replayed to others.
 */
const STORED_HEADER_NAMES = new Set(['content-type', 'content-disposition', 'content-encoding', 'cache-control', 'last-modified']);
const NEVER_STORED_X = /^x-(forwarded-|amz-|real-ip$|request-id$)/;

/** Picks the headers of an upload that may be stored. */
export function storableHeaders(req: IncomingMessage): StoredHeaders {
  const out: StoredHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    const allowed = STORED_HEADER_NAMES.has(lower) || (lower.startsWith('x-') && !NEVER_STORED_X.test(lower));
    if (allowed) out[lower] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function namespaceOf(params: RouteParams): string | undefined {
  const ns = params['ns'] ?? '';
  return isValidNamespace(ns) ? ns : undefined;
}

/** Mounts `/api/v1/*` (reference §2.8) over `cache`. */
export function mountObjectApi(routes: RouteRegistry, cache: Cache, logger: Logger): void {
  const view = (params: RouteParams, res: ServerResponse): Cache | undefined => {
    const ns = namespaceOf(params);
    if (ns === undefined) {
      sendText(res, 400, 'Invalid namespace');
      return undefined;
    }
    return cache.namespace(ns);
  };

  routes.on(['GET', 'HEAD'], '/api/v1/object/:ns/:key', async (req, res, params) => {
    const c = view(params, res);
    if (!c) return;
    try {
      const sent = await sendCacheObject(c, parseKey(params['key'] ?? ''), req, res);
      if (!sent) sendText(res, 404, 'Cache object not found');
    } catch (err) {
      logger.error({ err }, 'open failed');
      sendText(res, 500, `Failed to open cache object: ${(err as Error).message}`);
    }
  });

  routes.on('POST', '/api/v1/object/:ns/:key', async (req, res, params) => {
    const c = view(params, res);
    if (!c) return;
    const ttlHeader = req.headers['time-to-live'];
    let ttlMs: number | undefined;
    if (ttlHeader !== undefined) {
      ttlMs = parseDuration(String(ttlHeader));
      if (ttlMs === undefined) {
        sendText(res, 400, `Invalid Time-To-Live header format: ${JSON.stringify(ttlHeader)} (use a Go duration such as "1h" or "30m")`);
        req.resume();
        return;
      }
    }
    let etag: string | undefined;
    const etagHeader = req.headers['etag'];
    if (etagHeader !== undefined) {
      etag = unquoteStrongETag(String(etagHeader));
      if (etag === undefined) {
        sendText(res, 400, `Invalid ETag header: ${JSON.stringify(etagHeader)} (must be a strong quoted ETag such as "v1")`);
        req.resume();
        return;
      }
    }
    const abort = new AbortController();
    // A client that disconnects mid-body must leave nothing behind.
    const onAborted = () => abort.abort();
    req.once('aborted', onAborted);
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    try {
      const writer = c.create(parseKey(params['key'] ?? ''), storableHeaders(req), { ...(ttlMs !== undefined ? { ttlMs } : {}), ...(etag !== undefined ? { etag } : {}), signal: abort.signal });
      await pipeline(req, writer);
      if (!req.complete) throw new Error('request body ended early');
      res.writeHead(200, { 'content-length': 0 }).end();
    } catch (err) {
      if (abort.signal.aborted || res.destroyed) return;
      if (isCacheError(err, 'insufficient-storage')) {
        logger.error({ err }, 'cache storage full');
        sendText(res, 507, `Insufficient storage: ${err.message}`);
      } else if (isCacheError(err, 'invalid-argument')) {
        sendText(res, 400, err.message);
      } else {
        logger.error({ err }, 'create failed');
        sendText(res, 500, `Failed to create cache object: ${(err as Error).message}`);
      }
    } finally {
      req.off('aborted', onAborted);
    }
  });

  routes.on('DELETE', '/api/v1/object/:ns/:key', async (_req, res, params) => {
    const c = view(params, res);
    if (!c) return;
    try {
      await c.delete(parseKey(params['key'] ?? ''));
      res.writeHead(200, { 'content-length': 0 }).end();
    } catch (err) {
      if (isCacheError(err, 'not-found')) sendText(res, 404, 'Cache object not found');
      else {
        logger.error({ err }, 'delete failed');
        sendText(res, 500, `Failed to delete cache object: ${(err as Error).message}`);
      }
    }
  });

  routes.on('POST', '/api/v1/object/:ns/:key/invalidate', async (_req, res, params) => {
    const c = view(params, res);
    if (!c) return;
    try {
      await c.invalidate(parseKey(params['key'] ?? ''));
      res.writeHead(200, { 'content-length': 0 }).end();
    } catch (err) {
      logger.error({ err }, 'invalidate failed');
      sendText(res, 500, `Failed to invalidate cache object: ${(err as Error).message}`);
    }
  });

  routes.on('GET', '/api/v1/stats', async (_req, res) => {
    try {
      sendJson(res, 200, await cache.stats());
    } catch (err) {
      if (isCacheError(err, 'stats-unavailable')) sendText(res, 501, 'Stats not available for this cache');
      else sendText(res, 500, 'Failed to read stats');
    }
  });

  routes.on('GET', '/api/v1/namespaces', async (_req, res) => {
    try {
      sendJson(res, 200, await cache.listNamespaces());
    } catch (err) {
      logger.error({ err }, 'listing namespaces failed');
      sendText(res, 500, 'Failed to list namespaces');
    }
  });
}
