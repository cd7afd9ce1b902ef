// Just over 400 lines: the generic caching handler is one request path (lookup, conditional
// revalidation, stale serving, negative caching, the herd's one fill) whose branches hand the
// same answer object to each other; the herd and the spool it uses already live beside it.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { Readable, pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { Cache, CacheWriter, OpenResult, StatResult } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import { unquoteStrongETag } from '../../cache/headers.js';
import type { CacheKey } from '../../cache/key.js';
import { failureAnswer } from '../../http/error-answer.js';
import { sendText } from '../../http/router.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import type { StrategyContext } from '../../http/strategy.js';
import { discardInBackground } from '../../util/discard.js';
import { teeInto } from '../../util/tee.js';
import { relayableHeaders, requestUpstream } from '../../http/upstream.js';
import type { CachingConfig } from './caching-config.js';
import { FillHerd, type FillAnswer, type HerdLimits } from './herd.js';
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
  /**
   * True for names whose content never changes once published (canonical module versions,
   * release assets): served stale without limit when the upstream fails, and a 404/410 for them
   * is remembered for `negative-ttl`. Default false.
   */
  immutable?(req: IncomingMessage): boolean;
  /** Hosts the fetch may reach, first request and every redirect (default: the upstream URL's host only). */
  allowedHosts?: HostAllowList;
  /** Headers set on every 200 answer, cached or fetched, over stored ones (gomod's Cache-Control). */
  responseHeaders?: Record<string, string>;
}

/** Client headers worth forwarding to a third-party upstream. Credentials and cookies are not. */
const FORWARDED = ['accept', 'accept-encoding', 'accept-language', 'user-agent'];
/**
 * Upstream response headers never stored or replayed from cache. The upstream's ETag is not
 * hoard's (hoard serves its own), so its validators are kept under separate names instead.
 */
const NOT_STORED = ['set-cookie', 'etag', 'age', 'date', 'expires', 'vary', 'content-length', 'accept-ranges', 'alt-svc', 'strict-transport-security', 'warning', 'x-hoard-cache'];
/** Stored copies of the upstream's validators, for revalidation by conditional GET. */
const UPSTREAM_ETAG = 'x-hoard-upstream-etag';
const UPSTREAM_LAST_MODIFIED = 'x-hoard-upstream-last-modified';
/** Stored with a remembered 404/410: the status to answer with. */
const NEGATIVE_STATUS = 'x-hoard-negative-status';
/** How a cached answer came about (DESIGN §3): hit, miss, stale or revalidated. */
const CACHE_STATUS = 'x-hoard-cache';
/** A remembered 404/410 body is a message, never an artifact: kept only up to this size. */
const MAX_NEGATIVE_BODY = 64 * 1024;
const MAX_REDIRECTS = 5;

/** Cache key of the remembered 404/410 for `id`: never the object's own key. */
function negativeKey(id: string, req: IncomingMessage): CacheKey {
  return variantKey(`${id}\nNegative`, req);
}

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
export async function fetchFollowingRedirects(url: URL, headers: Record<string, string>, signal: AbortSignal, allowed: HostAllowList, method = 'GET', timeoutMs = 120_000): Promise<IncomingMessage> {
  if (!hostAllowed(allowed, url)) throw new HttpError(502, `refusing to fetch from ${url.host}, which is not in ${allowed.setting}`);
  let current = url;
  let sendHeaders = { ...headers };
  for (let hop = 0; ; hop++) {
    let res: IncomingMessage;
    try {
      res = await requestUpstream({ url: current, method, headers: { ...sendHeaders, host: current.host }, signal, timeoutMs });
    } catch (err) {
      // A timeout is the upstream's fault and worth retrying: 504, never a 404 or 502.
      const reason = signal.reason as { name?: string } | undefined;
      if ((signal.aborted && reason?.name === 'TimeoutError') || /did not answer within/.test((err as Error).message)) {
        throw new HttpError(504, `upstream ${current.host} timed out: ${(err as Error).message}`);
      }
      throw err;
    }
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

/** An answer made of a short text (errors, refusals). */
function textAnswer(status: number, text: string, extra: Record<string, string> = {}): FillAnswer {
  const body = Buffer.from(text.endsWith('\n') ? text : `${text}\n`);
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(body.length), ...extra }, body: Readable.from([body]), length: body.length };
}

/** A whole cached object as an answer (no range: a herd shares one body). */
function cachedAnswer(got: OpenResult, extra: Record<string, string>): FillAnswer {
  return { status: 200, headers: { ...got.headers, 'accept-ranges': 'bytes', ...extra }, body: got.body, length: got.size };
}

/** Reads at most `max` bytes of `body` (the rest is drained, not kept). */
async function readBounded(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size < max) chunks.push(buf.subarray(0, max - size));
    size += buf.length;
  }
  return Buffer.concat(chunks);
}

/**
 * The generic caching handler of one strategy: GET/HEAD served from the cache, misses fetched
 * upstream once per herd (FillHerd) while filling the cache, expired copies revalidated with the
 * upstream's validators and served stale when the upstream fails, and 404/410 for immutable
 * names remembered briefly. Every answer it makes from the cache carries `X-Hoard-Cache`.
 */
export class CachingHandler {
  private readonly herd: FillHerd;

  constructor(
    private readonly cache: Cache,
    private readonly logger: Logger,
    private readonly config: CachingConfig,
    spoolDir: () => Promise<string>,
    limits?: HerdLimits,
  ) {
    this.herd = new FillHerd(spoolDir, limits);
  }

  /** Serves one GET or HEAD through the cache. */
  async serve(route: CachingRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
    let id: string;
    let key: CacheKey;
    let immutable: boolean;
    try {
      id = route.key(req);
      key = variantKey(id, req);
      // A cache that cannot be read (a tier down, an I/O error) is a miss: the client is served
      // from upstream rather than refused; the fill then fails on its own and is abandoned.
      if (await sendCacheObject(this.cache, key, req, res, { ...route.responseHeaders, [CACHE_STATUS]: 'hit' }).catch((err: unknown) => readFailedAsMiss(err, res, this.logger))) return;
      immutable = route.immutable?.(req) ?? false;
      if (immutable && this.config['negative-ttl'] > 0 && (await this.sendNegative(negativeKey(id, req), res).catch((err: unknown) => readFailedAsMiss(err, res, this.logger)))) return;
    } catch (err) {
      if (err instanceof HttpError) return sendText(res, err.status, err.message);
      this.logger.error({ err }, 'cache lookup failed');
      const answer = failureAnswer(err, 'cache lookup');
      return sendText(res, answer.status, answer.message);
    }
    await this.herd.serve(key, res, (signal) =>
      this.produce(route, req, { id, key, immutable }, signal).catch((err: unknown) => {
        this.logger.error({ err }, 'caching handler failed');
        return textAnswer(500, `cache error: ${(err as Error).message}`);
      }),
    );
  }

  /** Answers from a remembered 404/410; false when none is remembered. */
  private async sendNegative(key: CacheKey, res: ServerResponse): Promise<boolean> {
    let got: OpenResult;
    try {
      got = await this.cache.open(key);
    } catch (err) {
      if (isCacheError(err, 'not-found')) return false;
      throw err;
    }
    const status = Number(got.headers[NEGATIVE_STATUS]);
    const body = await readBounded(got.body, MAX_NEGATIVE_BODY);
    if (status !== 404 && status !== 410) return false;
    res.writeHead(status, { 'content-type': got.headers['content-type'] ?? 'text/plain; charset=utf-8', 'content-length': body.length, [CACHE_STATUS]: 'hit' });
    res.end(res.req?.method === 'HEAD' ? undefined : body);
    return true;
  }

  /** The one answer of a fill: what the upstream said, or what hoard has when it failed. */
  private async produce(route: CachingRoute, req: IncomingMessage, name: { id: string; key: CacheKey; immutable: boolean }, signal: AbortSignal): Promise<FillAnswer> {
    const { key } = name;
    // What is there past its TTL: its validators make the fetch conditional, and it is the
    // fallback when the upstream fails.
    let kept: StatResult | undefined;
    try {
      kept = await this.cache.stat(key, { allowStale: true });
    } catch (err) {
      // Unreadable counts as absent: the upstream is asked unconditionally.
      if (!isCacheError(err, 'not-found')) this.logger.warn({ err }, 'cache read failed; fetching from upstream');
    }
    if (kept && !kept.stale) {
      // Committed by a fill that ended between our lookup and now.
      const got = await this.cache.open(key).catch(() => undefined);
      if (got) return cachedAnswer(got, { ...route.responseHeaders, [CACHE_STATUS]: 'hit' });
    }
    let upstream: UpstreamRequest;
    try {
      upstream = await route.upstream(req);
    } catch (err) {
      if (err instanceof HttpError && err.status < 500) return textAnswer(err.status, err.message);
      return this.upstreamFailed(err, kept, name, undefined, route.responseHeaders);
    }
    const headers: Record<string, string> = {};
    for (const forwarded of FORWARDED) {
      const value = req.headers[forwarded];
      if (typeof value === 'string') headers[forwarded] = value;
    }
    Object.assign(headers, upstream.headers);
    const conditional: Record<string, string> = {};
    if (kept?.headers[UPSTREAM_ETAG]) conditional['if-none-match'] = kept.headers[UPSTREAM_ETAG];
    if (kept?.headers[UPSTREAM_LAST_MODIFIED]) conditional['if-modified-since'] = kept.headers[UPSTREAM_LAST_MODIFIED];
    Object.assign(headers, conditional);
    const allowed = route.allowedHosts ?? hostAllowList([upstream.url.host], `the allowed hosts (only ${upstream.url.host} itself)`);
    let response: IncomingMessage;
    try {
      response = await fetchFollowingRedirects(upstream.url, headers, signal, allowed, 'GET', this.config['upstream-timeout']);
    } catch (err) {
      return this.upstreamFailed(err, kept, name, undefined, route.responseHeaders);
    }
    const status = response.statusCode ?? 502;
    // Without the query: a signed URL's query is a credential.
    const safeUrl = `${upstream.url.origin}${upstream.url.pathname}`;
    if (status === 304 && kept && Object.keys(conditional).length) {
      response.resume();
      return this.revalidated(route, req, key, response, safeUrl);
    }
    if (status >= 500) return this.upstreamFailed(new HttpError(status, `upstream ${upstream.url.host} answered ${status}`), kept, name, response, route.responseHeaders);
    if (status === 200) return this.fill(route, req, key, response, safeUrl);
    if ((status === 404 || status === 410) && name.immutable && this.config['negative-ttl'] > 0) return this.rememberMissing(negativeKey(name.id, req), status, response, safeUrl);
    return this.relay(response, status);
  }

  /** An upstream answer hoard passes on without caching (redirects it may not follow, 4xx). */
  private relay(response: IncomingMessage, status: number): FillAnswer {
    const relayed = relayableHeaders(response.headers);
    const keep: Record<string, string | string[]> = { [CACHE_STATUS]: 'miss' };
    for (const header of ['content-type', 'content-length', 'location', 'retry-after']) if (relayed[header]) keep[header] = relayed[header] as string;
    const length = Number(relayed['content-length']);
    return { status, headers: keep, body: response, ...(Number.isSafeInteger(length) && length >= 0 ? { length } : {}) };
  }

  /**
   * The upstream failed (connect error, timeout, 5xx). A copy past its TTL is served instead
   * when it is within `stale-if-error` (immutable content: always), marked as RFC 9111 asks;
   * otherwise the failure is answered: a 5xx relayed as it came (never cached), a timeout as
   * 504, anything else as 502.
   */
  private async upstreamFailed(err: unknown, kept: StatResult | undefined, name: { key: CacheKey; immutable: boolean }, response?: IncomingMessage, responseHeaders: Record<string, string> = {}): Promise<FillAnswer> {
    const now = Date.now();
    const usable = kept?.stale && (name.immutable || (kept.expiresAt !== undefined && now - kept.expiresAt <= this.config['stale-if-error']));
    if (usable) {
      try {
        const got = await this.cache.open(name.key, { allowStale: true });
        response?.resume();
        const since = got.storedAt ?? got.expiresAt ?? now;
        this.logger.warn({ err: (err as Error).message }, 'upstream failed; serving a stale copy');
        return cachedAnswer(got, { ...responseHeaders, age: String(Math.max(0, Math.floor((now - since) / 1000))), warning: '110 - "Response is Stale"', [CACHE_STATUS]: 'stale' });
      } catch (openErr) {
        if (!isCacheError(openErr, 'not-found')) throw openErr;
        // Evicted meanwhile: answer the failure.
      }
    }
    if (response) return this.relay(response, response.statusCode ?? 502);
    if (err instanceof HttpError) return textAnswer(err.status, err.message);
    return textAnswer(502, `failed to fetch: ${(err as Error).message}`);
  }

  /**
   * The upstream answered 200: the body streams to the herd while it fills the cache. The fill
   * belongs to the upstream body, not to a client (no client signal reaches `create`); the herd
   * aborts the upstream request only when every client left, which tears the tee down and
   * discards the copy. A whole body is committed before the herd sees its end.
   */
  private fill(route: CachingRoute, req: IncomingMessage, key: CacheKey, response: IncomingMessage, safeUrl: string): FillAnswer {
    const relayed = relayableHeaders(response.headers);
    const stored: Record<string, string> = {};
    for (const [header, value] of Object.entries(relayed)) if (!NOT_STORED.includes(header)) stored[header] = Array.isArray(value) ? value.join(', ') : value;
    if (typeof relayed['etag'] === 'string') stored[UPSTREAM_ETAG] = relayed['etag'];
    if (typeof relayed['last-modified'] === 'string') stored[UPSTREAM_LAST_MODIFIED] = relayed['last-modified'];
    let writer: CacheWriter | undefined;
    try {
      writer = this.cache.create(key, stored, { ttlMs: route.ttlMs?.(req) ?? 0 });
    } catch (err) {
      this.logger.warn({ err, url: safeUrl }, 'cache fill could not start; serving without caching');
    }
    const tee = teeInto(writer, { onAbandon: (err) => this.logger.warn({ err, url: safeUrl }, 'cache fill failed; serving without caching') });
    const headers: Record<string, string | string[]> = { ...relayed, ...route.responseHeaders, [CACHE_STATUS]: 'miss' };
    delete headers['set-cookie'];
    const length = Number(relayed['content-length']);
    const body = pipeline(response, tee, () => {
      // Errors reach the readers through the tee, which pipeline destroys with them.
    });
    return { status: 200, headers, body, ...(Number.isSafeInteger(length) && length >= 0 ? { length } : {}) };
  }

  /**
   * The upstream confirmed the kept copy (304): it is served and stored again with a fresh TTL,
   * under the same ETag, so clients' validators keep matching.
   */
  private async revalidated(route: CachingRoute, req: IncomingMessage, key: CacheKey, response: IncomingMessage, safeUrl: string): Promise<FillAnswer> {
    let got: OpenResult;
    try {
      got = await this.cache.open(key, { allowStale: true });
    } catch (err) {
      if (!isCacheError(err, 'not-found')) throw err;
      return textAnswer(502, `the copy of ${safeUrl} was evicted while the upstream revalidated it; retry`);
    }
    const stored: Record<string, string> = { ...got.headers };
    delete stored['etag'];
    const fresh = relayableHeaders(response.headers);
    if (typeof fresh['etag'] === 'string') stored[UPSTREAM_ETAG] = fresh['etag'];
    if (typeof fresh['last-modified'] === 'string') stored[UPSTREAM_LAST_MODIFIED] = fresh['last-modified'];
    const raw = unquoteStrongETag(got.headers['etag'] ?? '');
    let writer: CacheWriter | undefined;
    try {
      writer = this.cache.create(key, stored, { ttlMs: route.ttlMs?.(req) ?? 0, ...(raw ? { etag: raw } : {}) });
    } catch (err) {
      this.logger.warn({ err, url: safeUrl }, 'revalidated copy could not be stored again');
    }
    const tee = teeInto(writer, { onAbandon: (err) => this.logger.warn({ err, url: safeUrl }, 'revalidated copy could not be stored again') });
    const body = pipeline(got.body, tee, () => undefined);
    return { ...cachedAnswer(got, { ...route.responseHeaders, [CACHE_STATUS]: 'revalidated' }), body };
  }

  /** A 404/410 for an immutable name: answered, and remembered for `negative-ttl`. */
  private async rememberMissing(key: CacheKey, status: number, response: IncomingMessage, safeUrl: string): Promise<FillAnswer> {
    const body = await readBounded(response, MAX_NEGATIVE_BODY);
    const contentType = typeof response.headers['content-type'] === 'string' ? response.headers['content-type'] : 'text/plain; charset=utf-8';
    try {
      const writer = this.cache.create(key, { 'content-type': contentType, [NEGATIVE_STATUS]: String(status) }, { ttlMs: this.config['negative-ttl'] });
      await new Promise<void>((resolve, reject) => pipeline(Readable.from([body]), writer, (err) => (err ? reject(err) : resolve())));
    } catch (err) {
      this.logger.warn({ err, url: safeUrl }, 'could not remember a missing object');
    }
    return { status, headers: { 'content-type': contentType, 'content-length': String(body.length), [CACHE_STATUS]: 'miss' }, body: Readable.from([body]), length: body.length };
  }
}

/**
 * Spool roots already cleared of a previous run's leftovers, by directory. A memo, not a
 * single-flight: the settled result is kept for the process's life (each root is cleared once).
 */
const clearedSpoolDirs = new Map<string, Promise<string>>();

/**
 * The caching handler of a strategy, with its spool directory `<state>/fill-spool/<name>` (a
 * previous run's leftovers there are discarded first). `name` must be unique per strategy
 * instance: the kind, plus a digest of the label for labelled strategies.
 */
export function cachingHandler(ctx: StrategyContext<CachingConfig>, kind: string, limits?: HerdLimits): CachingHandler {
  const name = ctx.label ? `${kind}-${createHash('sha256').update(ctx.label).digest('hex').slice(0, 16)}` : kind;
  const dir = path.join(ctx.global.state, 'fill-spool', name);
  const spoolDir = () => {
    let ready = clearedSpoolDirs.get(dir);
    if (!ready) {
      ready = discardInBackground(dir, ctx.logger).then(() => dir);
      clearedSpoolDirs.set(dir, ready);
    }
    return ready;
  };
  return new CachingHandler(ctx.cache, ctx.logger, ctx.config, spoolDir, limits);
}
