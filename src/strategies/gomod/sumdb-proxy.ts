import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache, CacheWriter } from '../../cache/cache.js';
import { parseKey } from '../../cache/key.js';
import { sendText } from '../../http/router.js';
import { watchClientAbort } from '../../http/request-abort.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import { teeInto } from '../../util/tee.js';
import { fetchFollowingRedirects } from '../shared/caching-handler.js';
import { hostAllowList } from '../shared/host-allow-list.js';
import { CACHE_CONTROL } from './cache-control.js';

/** How long one sumdb request may take upstream before the cached copy is served instead. */
const SUMDB_TIMEOUT_MS = 30_000;

/**
 * Proxies one checksum-database endpoint (`latest`, `lookup/…`, `tile/…`): upstream answers
 * whenever it can, and each 200 is stored; when upstream is unreachable, times out or answers
 * 5xx, the stored copy is served instead (lookups and tiles never change; `latest` is only ever
 * a signed tree head, which clients accept while older ones remain consistent). Upstream's 4xx
 * (an unknown module) is relayed and never stored. The caller's credentials never go upstream.
 */
export async function serveSumdb(req: IncomingMessage, res: ServerResponse, url: URL, cacheName: string, cache: Cache, logger: Logger): Promise<void> {
  const cacheControl = cacheName.endsWith('/latest') ? CACHE_CONTROL.sumdbLatest : CACHE_CONTROL.sumdbImmutable;
  const key = parseKey(`sumdb/${cacheName}`);
  const abort = watchClientAbort(res);
  let failure: string;
  try {
    const response = await fetchFollowingRedirects(url, {}, AbortSignal.any([abort.signal, AbortSignal.timeout(SUMDB_TIMEOUT_MS)]), hostAllowList([url.host], `the sumdb host ${url.host}`), 'GET');
    const status = response.statusCode ?? 502;
    if (status === 200) {
      const type = String(response.headers['content-type'] ?? 'text/plain; charset=utf-8');
      let writer: CacheWriter | undefined;
      try {
        writer = cache.create(key, { 'content-type': type });
      } catch (err) {
        logger.warn({ err, url: url.href }, 'sumdb cache fill could not start; serving without caching');
      }
      const tee = teeInto(writer, { onAbandon: (err) => logger.warn({ err, url: url.href }, 'sumdb cache fill failed') });
      res.writeHead(200, { 'content-type': type, 'cache-control': cacheControl });
      await pipeline(response, tee, res).catch(() => res.destroy());
      return;
    }
    if (status < 500) {
      res.writeHead(status, { 'content-type': String(response.headers['content-type'] ?? 'text/plain; charset=utf-8'), 'cache-control': CACHE_CONTROL.notFoundQuery });
      await pipeline(response, res).catch(() => res.destroy());
      return;
    }
    response.resume();
    failure = `upstream answered ${status}`;
  } catch (err) {
    if (abort.signal.aborted) return;
    failure = (err as Error).message;
  } finally {
    abort.release();
  }
  if (await sendCacheObject(cache, key, req, res, { 'cache-control': cacheControl })) {
    logger.info({ url: url.href, failure }, 'sumdb upstream failed; served the cached copy');
    return;
  }
  sendText(res, 502, `sumdb upstream failed and nothing is cached: ${failure}`, { 'cache-control': CACHE_CONTROL.upstreamFailed });
}
