import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { BufferBody } from '../cache/backend.js';
import type { Cache } from '../cache/cache.js';
import type { ReadConditions } from '../cache/conditional.js';
import { isCacheError } from '../cache/errors.js';
import type { CacheKey } from '../cache/key.js';

/** Headers a 304 must not carry: they would describe a body (Go's net/http drops the same). */
const NOT_ON_304 = new Set(['content-type', 'content-length', 'content-range', 'transfer-encoding']);

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
    if (got.body instanceof BufferBody && got.body.readableDidRead === false) {
      // Bytes already in memory: one write of headers plus body. A stream pipeline (listeners,
      // an AbortController, end-of-stream bookkeeping) costs more than a small object itself.
      // A client that went away just makes the write a no-op; the buffer holds no resources.
      res.end(got.body.bytes);
      return true;
    }
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
      // §2.6/§2.8: a 304 replays the stored headers. Like Go's net/http under cachew, minus the
      // ones that describe a body this answer does not have.
      const keep: Record<string, string> = {};
      for (const [name, value] of Object.entries({ ...err.headers, ...extraHeaders })) {
        if (!NOT_ON_304.has(name.toLowerCase())) keep[name] = value;
      }
      res.writeHead(304, keep).end();
      return true;
    }
    if (isCacheError(err, 'precondition-failed')) {
      // §2.8: 412 has no body and no stored headers. (Content-Length: 0 is framing, as Go sends.)
      res.writeHead(412, { 'content-length': 0 }).end();
      return true;
    }
    if (isCacheError(err, 'range-not-satisfiable')) {
      // §2.7/§2.8: Content-Range with the size, Accept-Ranges, no body. The only Content-Length
      // is the framing 0 (Go adds the same to a bodiless answer); never the object's size.
      res.writeHead(416, { 'content-range': `bytes */${err.size ?? 0}`, 'accept-ranges': 'bytes', 'content-length': 0 }).end();
      return true;
    }
    throw err;
  }
}
