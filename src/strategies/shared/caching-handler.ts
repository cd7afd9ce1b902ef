import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache, CacheWriter } from '../../cache/cache.js';
import type { CacheKey } from '../../cache/key.js';
import { failureAnswer } from '../../http/error-answer.js';
import { sendText } from '../../server/router.js';
import { sendCacheObject } from '../../server/send-cache-object.js';
import { teeInto } from '../../util/tee.js';
import { relayableHeaders, requestUpstream } from '../git/upstream.js';
import { hostAllowed, hostAllowList, type HostAllowList } from './host-allow-list.js';

/** An error that carries the HTTP status to answer with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What an upstream fetch needs. */
export interface UpstreamRequest {
  url: URL;
  headers?: Record<string, string>;
}

/** How one strategy uses the generic handler. */
export interface CachingRoute {
  /** The string identifying the object (usually the upstream URL). */
  key(req: IncomingMessage): string;
  /** Builds the upstream request; throw HttpError for a precise status. */
  upstream(req: IncomingMessage): Promise<UpstreamRequest> | UpstreamRequest;
  /** TTL in ms for this object (0 = backend maximum). */
  ttlMs?(req: IncomingMessage): number;
  /** Hosts the fetch may reach, first request and every redirect (default: the upstream URL's host only). */
  allowedHosts?: HostAllowList;
  /** Headers set on every 200 answer, cached or fetched, over stored ones (gomod's Cache-Control). */
  responseHeaders?: Record<string, string>;
}

/** Client headers worth forwarding to a third-party upstream. Credentials and cookies are not. */
const FORWARDED = ['accept', 'accept-encoding', 'accept-language', 'user-agent'];
/** Upstream response headers never stored or replayed from cache. */
const NOT_STORED = ['set-cookie', 'etag', 'age', 'date', 'expires', 'vary', 'content-length', 'accept-ranges', 'alt-svc', 'strict-transport-security'];
const MAX_REDIRECTS = 5;

/** Cache key: the identifying string plus the Accept-Encoding variant (#310). */
export function variantKey(id: string, req: IncomingMessage): CacheKey {
  // Normalised so "identity", no header and duplicated tokens all name the same variant.
  const tokens = [...new Set(String(req.headers['accept-encoding'] ?? '').split(',').map((t) => t.trim().toLowerCase()))].filter((t) => t && t !== 'identity').sort();
  const text = tokens.length ? `${id}\nAccept-Encoding=${tokens.join(',')}` : id;
  return createHash('sha256').update(text).digest('hex') as CacheKey;
}

/**
 * Fetches with redirects followed by hand, so every hop (the first one too) must pass `allowed`
 * — an allowed upstream cannot send hoard to a host nobody configured — and an `Authorization`
 * or cookie meant for one host is never sent to the host it redirects to (GitHub release assets
 * redirect to signed storage URLs). A refused hop is an HttpError 502 naming the refused host,
 * and the refused host is never contacted.
 */
export async function fetchFollowingRedirects(url: URL, headers: Record<string, string>, signal: AbortSignal, allowed: HostAllowList, method = 'GET'): Promise<IncomingMessage> {
  if (!hostAllowed(allowed, url)) throw new HttpError(502, `refusing to fetch from ${url.host}, which is not in ${allowed.setting}`);
  let current = url;
  let sendHeaders = { ...headers };
  for (let hop = 0; ; hop++) {
    const res = await requestUpstream({ url: current, method, headers: { ...sendHeaders, host: current.host }, signal, timeoutMs: 120_000 });
    const location = res.headers.location;
    if (!location || ![301, 302, 303, 307, 308].includes(res.statusCode ?? 0)) return res;
    res.resume();
    if (hop >= MAX_REDIRECTS) throw new HttpError(502, `too many redirects from ${url.host}`);
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw new HttpError(502, `upstream ${current.host} redirected to an invalid URL`);
    }
    if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new HttpError(502, `upstream ${current.host} redirected to a ${next.protocol} URL; refused`);
    // A downgrade would expose the rest of the exchange (and any signed URL) on the wire.
    if (current.protocol === 'https:' && next.protocol === 'http:') throw new HttpError(502, `upstream ${current.host} redirected from https to plain http (${next.host}); refused`);
    if (!hostAllowed(allowed, next)) throw new HttpError(502, `upstream ${current.host} redirected to ${next.host}, which is not in ${allowed.setting}`);
    if (next.host !== current.host) {
      sendHeaders = Object.fromEntries(Object.entries(sendHeaders).filter(([k]) => k.toLowerCase() !== 'authorization' && k.toLowerCase() !== 'cookie'));
    }
    current = next;
  }
}

/** Logs a failed cache read and reports a miss, unless the answer already started. */
function readFailedAsMiss(err: unknown, res: ServerResponse, logger: Logger): false {
  if (res.headersSent) throw err;
  logger.warn({ err }, 'cache read failed; fetching from upstream');
  return false;
}

/**
 * Serves GET/HEAD from the cache; on a miss fetches upstream and streams the body to the client
 * while filling the cache, committing only when the whole upstream body arrived. Non-200
 * upstream answers are relayed and never cached.
 */
export async function serveCached(route: CachingRoute, cache: Cache, logger: Logger, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let key: CacheKey;
  let upstream: UpstreamRequest;
  try {
    key = variantKey(route.key(req), req);
    // A cache that cannot be read (a tier down, an I/O error) is a miss: the client is served
    // from upstream rather than refused; the fill then fails on its own and is abandoned.
    if (await sendCacheObject(cache, key, req, res, route.responseHeaders).catch((err: unknown) => readFailedAsMiss(err, res, logger))) return;
    upstream = await route.upstream(req);
  } catch (err) {
    if (err instanceof HttpError) return sendText(res, err.status, err.message);
    logger.error({ err }, 'cache lookup failed');
    const answer = failureAnswer(err, 'cache lookup');
    return sendText(res, answer.status, answer.message);
  }
  const abort = new AbortController();
  const onClose = () => {
    if (!res.writableFinished) abort.abort();
  };
  res.once('close', onClose);
  const headers: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = req.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  Object.assign(headers, upstream.headers);
  let response: IncomingMessage;
  try {
    response = await fetchFollowingRedirects(upstream.url, headers, abort.signal, route.allowedHosts ?? hostAllowList([upstream.url.host], `the allowed hosts (only ${upstream.url.host} itself)`));
  } catch (err) {
    res.off('close', onClose);
    if (err instanceof HttpError) return sendText(res, err.status, err.message);
    return sendText(res, 502, `failed to fetch: ${(err as Error).message}`);
  }
  const status = response.statusCode ?? 502;
  const relayed = relayableHeaders(response.headers);
  if (status !== 200) {
    const keep: Record<string, string | string[]> = {};
    for (const name of ['content-type', 'content-length', 'location', 'retry-after']) if (relayed[name]) keep[name] = relayed[name] as string;
    res.writeHead(status, keep);
    await pipeline(response, res).catch(() => res.destroy());
    res.off('close', onClose);
    return;
  }
  const stored: Record<string, string> = {};
  for (const [name, value] of Object.entries(relayed)) if (!NOT_STORED.includes(name)) stored[name] = Array.isArray(value) ? value.join(', ') : value;
  // The fill belongs to the upstream body, not to the client: no client signal is given to
  // `create`. The tee discards the copy if the pipeline is torn down before the upstream body
  // ended (the client left early: we stop reading upstream, and nobody else follows this fill),
  // and commits it once the body is whole, even if the client closes right after the last byte.
  // Without the query: a signed URL's query is a credential.
  const safeUrl = `${upstream.url.origin}${upstream.url.pathname}`;
  let writer: CacheWriter | undefined;
  try {
    writer = cache.create(key, stored, { ttlMs: route.ttlMs?.(req) ?? 0 });
  } catch (err) {
    logger.warn({ err, url: safeUrl }, 'cache fill could not start; serving without caching');
  }
  const tee = teeInto(writer, { onAbandon: (err) => logger.warn({ err, url: safeUrl }, 'cache fill failed; serving without caching') });
  const outHeaders: Record<string, string | string[]> = { ...relayed, ...route.responseHeaders };
  delete outHeaders['set-cookie'];
  res.writeHead(200, outHeaders);
  try {
    await pipeline(response, tee, req.method === 'HEAD' ? new Transform({ transform: (_c, _e, cb) => cb() }) : res);
    if (req.method === 'HEAD') res.end();
  } catch {
    res.destroy();
  } finally {
    res.off('close', onClose);
  }
}
