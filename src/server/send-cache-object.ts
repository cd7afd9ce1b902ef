import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Cache } from '../cache/cache.js';
import type { ReadConditions } from '../cache/conditional.js';
import { isCacheError } from '../cache/errors.js';
import type { CacheKey } from '../cache/key.js';
import { sendText } from './router.js';

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The conditional and range request headers, as the cache understands them. */
export function readConditions(req: IncomingMessage): ReadConditions {
  return {
    ifMatch: header(req, 'if-match'),
    ifNoneMatch: header(req, 'if-none-match'),
    range: header(req, 'range'),
    ifRange: header(req, 'if-range'),
  };
}

/**
 * Answers a GET or HEAD for a cached object: stored headers, ETag, Content-Length,
 * Accept-Ranges, 206/304/412/416 per the request's validators, and a streamed body that is
 * destroyed if the client goes away. Returns false (sending nothing) on a miss so callers can
 * fall back to generating or fetching the object.
 */
export async function sendCacheObject(cache: Cache, key: CacheKey, req: IncomingMessage, res: ServerResponse, extraHeaders: Record<string, string> = {}): Promise<boolean> {
  const cond = readConditions(req);
  try {
    if (req.method === 'HEAD') {
      const st = await cache.stat(key, cond);
      res.writeHead(200, { ...st.headers, ...extraHeaders, 'accept-ranges': 'bytes' });
      res.end();
      return true;
    }
    const got = await cache.open(key, cond);
    res.writeHead(got.status, { ...got.headers, ...extraHeaders, 'accept-ranges': 'bytes' });
    try {
      // pipeline destroys the body (closing files, cancelling remote reads) if the client goes away.
      await pipeline(got.body, res);
    } catch {
      res.destroy();
    }
    return true;
  } catch (err) {
    if (isCacheError(err, 'not-found')) return false;
    if (isCacheError(err, 'not-modified')) {
      const h = err.headers ?? {};
      const keep: Record<string, string> = {};
      for (const name of ['etag', 'last-modified', 'cache-control', 'content-location', 'expires', 'vary']) {
        if (h[name]) keep[name] = h[name];
      }
      res.writeHead(304, keep).end();
      return true;
    }
    if (isCacheError(err, 'precondition-failed')) {
      sendText(res, 412, 'precondition failed');
      return true;
    }
    if (isCacheError(err, 'range-not-satisfiable')) {
      sendText(res, 416, 'range not satisfiable', { 'content-range': `bytes */${err.size ?? 0}` });
      return true;
    }
    throw err;
  }
}
