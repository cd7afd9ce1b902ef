import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import { isValidNamespace, parseKey, type CacheKey } from '../../cache/key.js';
import { unquoteStrongETag, type StoredHeaders } from '../../cache/headers.js';
import { parseDuration } from '../../config/duration.js';
import { answerAndClose, refuseRequest } from '../../http/answer-and-close.js';
import { cacheErrorAnswer } from '../../http/error-answer.js';
import { watchClientAbort } from '../../http/request-abort.js';
import { sendJson, sendText } from '../../http/router.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import type { RouteParams, RouteRegistry } from '../../http/strategy.js';

/**
 * Request headers stored with an uploaded object. An allowlist rather than cachew's denylist:
 * credentials, cookies, tracing and proxy headers must never be stored and replayed to others.
 */
const STORED_HEADER_NAMES = new Set(['content-type', 'content-disposition', 'content-encoding', 'cache-control', 'last-modified']);
const NEVER_STORED_X = /^x-(forwarded-|amz-|real-ip$|request-id$)/;
/**
 * `X-` names that look like they carry credentials (`X-Api-Key`, `X-Auth-Token`,
 * `X-Session-Id`, …). User metadata has no business holding secrets, and a stored header is
 * replayed to every reader, so these are dropped whatever the rest of the name says.
 */
const SECRET_LOOKING = /token|key|secret|auth|session|cookie|password/i;

/** Picks the headers of an upload that may be stored. */
export function storableHeaders(req: IncomingMessage): StoredHeaders {
  const out: StoredHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    const allowed = STORED_HEADER_NAMES.has(lower) || (lower.startsWith('x-') && !NEVER_STORED_X.test(lower) && !SECRET_LOOKING.test(lower));
    if (allowed) out[lower] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

const HIT = { 'x-hoard-cache': 'hit' };
const MISS = { 'x-hoard-cache': 'miss' };

/** Bound of the per-process memo tables below (cleared when full). */
const MAX_CACHED = 1024;
/**
 * parseKey hashes every key that is not already 64 hex characters (SHA-256 per request); hot
 * keys are few, so the parsed form of short ones is remembered.
 */
const parsedKeys = new Map<string, CacheKey>();

function keyOf(params: RouteParams): CacheKey {
  const text = params['key'] ?? '';
  if (text.length > 256) return parseKey(text);
  let key = parsedKeys.get(text);
  if (key === undefined) {
    if (parsedKeys.size >= MAX_CACHED) parsedKeys.clear();
    key = parseKey(text);
    parsedKeys.set(text, key);
  }
  return key;
}

function namespaceOf(params: RouteParams): string | undefined {
  const ns = params['ns'] ?? '';
  return isValidNamespace(ns) ? ns : undefined;
}

/** Mounts `/api/v1/*` (reference §2.8) over `cache`. */
export function mountObjectApi(routes: RouteRegistry, cache: Cache, logger: Logger): void {
  // Namespace views are stateless, so they are built once per namespace rather than per request
  // (each build validates the name and allocates wrappers). Bounded: cleared when full.
  const views = new Map<string, Cache>();
  const view = (params: RouteParams, req: IncomingMessage, res: ServerResponse): Cache | undefined => {
    const ns = namespaceOf(params);
    if (ns === undefined) {
      refuseRequest(req, res, 400, 'Invalid namespace');
      return undefined;
    }
    if (!params['key']) {
      // An empty key would be hashed like any other and name one shared object for every
      // caller that forgot its key; refusing it makes the client's bug visible.
      refuseRequest(req, res, 400, 'Invalid key: the object key must not be empty');
      return undefined;
    }
    let v = views.get(ns);
    if (!v) {
      if (views.size >= MAX_CACHED) views.clear();
      v = cache.namespace(ns);
      views.set(ns, v);
    }
    return v;
  };

  routes.on(['GET', 'HEAD'], '/api/v1/object/:ns/:key', async (req, res, params) => {
    const c = view(params, req, res);
    if (!c) return;
    try {
      // The object API is a cache like any other strategy: its answers say hit or miss.
      const sent = await sendCacheObject(c, keyOf(params), req, res, HIT);
      if (!sent) sendText(res, 404, 'Cache object not found', MISS);
    } catch (err) {
      // Internal detail goes to the log, not to the caller (reference §7.4: no internal error
      // text); cache outcomes with a meaning (a tier unavailable, 503) keep it.
      const known = cacheErrorAnswer(err);
      if (!known || known.status >= 500) logger.error({ err }, 'open failed');
      if (known) sendText(res, known.status, known.message);
      else sendText(res, 500, 'Failed to open cache object');
    }
  });

  routes.on('POST', '/api/v1/object/:ns/:key', async (req, res, params) => {
    const c = view(params, req, res);
    if (!c) return;
    const ttlHeader = req.headers['time-to-live'];
    let ttlMs: number | undefined;
    if (ttlHeader !== undefined) {
      ttlMs = parseDuration(String(ttlHeader));
      if (ttlMs === undefined) {
        answerAndClose(req, res, 400, `Invalid Time-To-Live header format: ${JSON.stringify(ttlHeader)} (use a Go duration such as "1h" or "30m")`);
        return;
      }
    }
    let etag: string | undefined;
    const etagHeader = req.headers['etag'];
    if (etagHeader !== undefined) {
      etag = unquoteStrongETag(String(etagHeader));
      if (etag === undefined) {
        answerAndClose(req, res, 400, `Invalid ETag header: ${JSON.stringify(etagHeader)} (must be a strong quoted ETag such as "v1")`);
        return;
      }
    }
    // Only the client going away counts as an abort (the upload cut off, or the response closed
    // unfinished). A failing write must never be mistaken for one: that is the case where the
    // client is still there, waiting for an answer.
    const clientGone = watchClientAbort(res, { req });
    const writer = c.create(keyOf(params), storableHeaders(req), { ...(ttlMs !== undefined ? { ttlMs } : {}), ...(etag !== undefined ? { etag } : {}), signal: clientGone.signal });
    // Failures are reported through receiveBody() and finished(); this keeps a late one (the
    // abort signal destroying the writer after the client left) from being an uncaught 'error'.
    writer.on('error', () => undefined);
    try {
      await receiveBody(req, writer);
      // Checked before the commit: a body that ended early must never become visible.
      if (!req.complete) throw new ClientGoneError();
      writer.end();
      await finished(writer);
      res.writeHead(200, { 'content-length': 0 }).end();
    } catch (err) {
      writer.destroy();
      if (clientGone.signal.aborted || err instanceof ClientGoneError) return;
      const { status, message } = uploadFailure(err);
      if (status >= 500) logger.error({ err }, 'create failed');
      answerAndClose(req, res, status, message);
    } finally {
      clientGone.release();
    }
  });

  routes.on('DELETE', '/api/v1/object/:ns/:key', async (req, res, params) => {
    const c = view(params, req, res);
    if (!c) return;
    try {
      await c.delete(keyOf(params));
      res.writeHead(200, { 'content-length': 0 }).end();
    } catch (err) {
      const known = cacheErrorAnswer(err);
      if (isCacheError(err, 'not-found')) sendText(res, 404, 'Cache object not found');
      else {
        logger.error({ err }, 'delete failed');
        if (known) sendText(res, known.status, known.message);
        else sendText(res, 500, 'Failed to delete cache object');
      }
    }
  });

  routes.on('POST', '/api/v1/object/:ns/:key/invalidate', async (req, res, params) => {
    const c = view(params, req, res);
    if (!c) return;
    try {
      await c.invalidate(keyOf(params));
      res.writeHead(200, { 'content-length': 0 }).end();
    } catch (err) {
      logger.error({ err }, 'invalidate failed');
      const known = cacheErrorAnswer(err);
      if (known) sendText(res, known.status, known.message);
      else sendText(res, 500, 'Failed to invalidate cache object');
    }
  });

  routes.on('GET', '/api/v1/stats', async (_req, res) => {
    try {
      // Exactly cachew's fields: backends' eviction counts go to /metrics, not to this contract.
      const { objects, size, capacity } = await cache.stats();
      sendJson(res, 200, { objects, size, capacity });
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

/** The request body stopped because the client disconnected; there is nobody left to answer. */
class ClientGoneError extends Error {
  constructor() {
    super('client went away before the body was complete');
    this.name = 'ClientGoneError';
  }
}

/**
 * Copies the request body into `writer` without ending it (the caller commits only after
 * checking the body was complete). Unlike pipeline(), a failing writer does not destroy the
 * request: the socket must stay usable to tell the client why its upload failed. Rejects with
 * the writer's error, or ClientGoneError when the request is aborted.
 */
function receiveBody(req: IncomingMessage, writer: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      writer.off('error', onWriterError);
      req.off('end', onEnd);
      req.off('aborted', onGone);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    const onWriterError = (err: Error) => {
      req.unpipe(writer);
      // Stop pulling bytes; answerAndClose decides what happens to the rest of the body.
      req.pause();
      cleanup();
      reject(err);
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onGone = () => {
      req.unpipe(writer);
      cleanup();
      reject(new ClientGoneError());
    };
    const onClose = () => {
      if (!req.complete) onGone();
    };
    writer.once('error', onWriterError);
    req.once('end', onEnd);
    req.once('aborted', onGone);
    req.once('error', onGone);
    req.once('close', onClose);
    req.pipe(writer, { end: false });
  });
}

/**
 * Status and caller-facing message for a failed upload: the cache outcome's own mapping (507
 * storage full, 413 can never fit, 400 invalid argument, 503 tier unavailable), else 500 without
 * internal detail.
 */
function uploadFailure(err: unknown): { status: number; message: string } {
  return cacheErrorAnswer(err) ?? { status: 500, message: 'Failed to create cache object (the server log has the cause)' };
}
