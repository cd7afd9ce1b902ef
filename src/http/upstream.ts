import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tracing, type ClientTrace } from '../util/tracing-hook.js';
import { watchClientAbort } from './request-abort.js';
import { telemetry } from '../util/telemetry.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) never forwarded in either direction. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);

/** Copies request headers for the upstream: hop-by-hop removed, caller credentials kept. */
export function forwardableHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionListed = new Set(String(headers.connection ?? '').toLowerCase().split(',').map((s) => s.trim()));
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionListed.has(name) || name.startsWith('x-forwarded-')) continue;
    out[name] = value;
  }
  return out;
}

/** Response headers safe to relay to the client. */
export function relayableHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

/**
 * Sends one request upstream with a streamed (or buffered) body and resolves with the response
 * head; the caller consumes the body. Transport errors reject. With tracing on, the request gets
 * a client span (ended with the response body) and that span's `traceparent`.
 */
export function requestUpstream(opts: {
  url: URL;
  method: string;
  headers: Record<string, string | string[]>;
  body?: Readable | Buffer | undefined;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}): Promise<IncomingMessage> {
  const lib = opts.url.protocol === 'https:' ? https : http;
  let headers = opts.headers;
  let span: ClientTrace | undefined;
  if (tracing) {
    headers = { ...headers };
    span = tracing.clientSpan(opts.method, opts.url, headers);
  }
  const observed = telemetry().upstream(opts.url.host);
  return new Promise<IncomingMessage>((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      observed.answered(res.statusCode ?? 0);
      if (span) {
        const traced = span;
        traced.response(res.statusCode ?? 0);
        res.once('end', () => traced.end());
        res.once('close', () => traced.end(res.complete ? undefined : new Error('upstream response ended early')));
      }
      resolve(res);
    };
    const req = lib.request(opts.url, { method: opts.method, headers, ...(opts.signal ? { signal: opts.signal } : {}) }, onResponse);
    req.setTimeout(opts.timeoutMs ?? 120_000, () => req.destroy(new Error(`upstream ${opts.url.host} did not answer within ${opts.timeoutMs ?? 120_000} ms`)));
    req.once('error', (err: Error) => {
      observed.failed();
      span?.end(err);
      reject(err);
    });
    if (Buffer.isBuffer(opts.body)) req.end(opts.body);
    else if (opts.body) opts.body.pipe(req);
    else req.end();
  });
}

/** Observers of a forwarded request. */
export interface ForwardHooks {
  /**
   * Called with upstream's status before anything of the response is relayed; `relayed` settles
   * when the whole response reached the client (rejects when the relay broke off).
   */
  onResponse?: (status: number, relayed: Promise<void>) => void;
  /** Response headers that replace upstream's, by upstream status (gomod's own Cache-Control). */
  responseHeaders?: (status: number) => Record<string, string>;
}

/**
 * Judges an upstream redirect before it is relayed: one within the host the request named is
 * relayed with its Location made absolute (a relative one would otherwise resolve against
 * hoard's own URL), one to any other host is refused — node:http follows nothing itself, but a
 * relayed cross-host Location would send the client there, out of `allowed-hosts` and out of
 * reach of every check hoard makes. `undefined` when the response is no redirect.
 */
function relayableRedirect(url: URL, upstream: IncomingMessage): { location: string } | { refused: string } | undefined {
  const status = upstream.statusCode ?? 0;
  const location = upstream.headers.location;
  if (status < 300 || status > 399 || location === undefined) return undefined;
  let target: URL;
  try {
    target = new URL(location, url);
  } catch {
    return { refused: `upstream ${url.host} redirected to an invalid URL` };
  }
  if ((target.protocol !== 'http:' && target.protocol !== 'https:') || target.host !== url.host) {
    return { refused: `upstream ${url.host} redirected to ${target.host || target.protocol}, which is not ${url.host}: hoard relays no redirect to another host` };
  }
  return { location: target.href };
}

/**
 * Reverse-proxies the client's request to `url`, streaming both ways. The caller's own
 * Authorization passes through (it is theirs, for a git host) unless `callerCredentials` is
 * false: a third-party upstream (a public module proxy) then gets no Authorization or Cookie and
 * sets no cookies. hoard adds its own credential only when given `serverAuthorization` (a GitHub
 * App token for a read) and the caller sent none. Upstream failures answer 502 when nothing was
 * sent yet, and so does a redirect to another host.
 */
export async function forwardToUpstream(req: IncomingMessage, res: ServerResponse, url: URL, body?: Buffer, opts: { callerCredentials?: boolean; serverAuthorization?: string } & ForwardHooks = {}): Promise<void> {
  const abort = watchClientAbort(res);
  const headers = forwardableHeaders(req.headers);
  const thirdParty = opts.callerCredentials === false;
  if (thirdParty) {
    delete headers['authorization'];
    delete headers['cookie'];
  }
  if (opts.serverAuthorization && headers['authorization'] === undefined) headers['authorization'] = opts.serverAuthorization;
  headers['host'] = url.host;
  if (body) {
    headers['content-length'] = String(body.length);
    delete headers['transfer-encoding'];
  }
  try {
    const upstream = await requestUpstream({ url, method: req.method ?? 'GET', headers, body: body ?? (req.method === 'GET' || req.method === 'HEAD' ? undefined : req), signal: abort.signal, timeoutMs: 10 * 60_000 });
    const relayed = relayableHeaders(upstream.headers);
    if (thirdParty) delete relayed['set-cookie'];
    const redirect = relayableRedirect(url, upstream);
    if (redirect && 'refused' in redirect) {
      upstream.resume();
      const message = `bad gateway: ${redirect.refused}\n`;
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(message) }).end(message);
      return;
    }
    if (redirect) relayed['location'] = redirect.location;
    let settle!: (err?: Error) => void;
    const done = new Promise<void>((resolve, reject) => (settle = (err) => (err ? reject(err) : resolve())));
    done.catch(() => undefined);
    opts.onResponse?.(upstream.statusCode ?? 502, done);
    if (opts.responseHeaders) Object.assign(relayed, opts.responseHeaders(upstream.statusCode ?? 502));
    res.writeHead(upstream.statusCode ?? 502, relayed);
    await pipeline(upstream, res).then(
      () => settle(),
      (err: Error) => {
        settle(err);
        throw err;
      },
    );
  } catch (err) {
    if (!res.headersSent) {
      const message = `bad gateway: upstream ${url.host} failed: ${(err as Error).message}\n`;
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(message) }).end(message);
    } else {
      res.destroy();
    }
  } finally {
    abort.release();
  }
}
