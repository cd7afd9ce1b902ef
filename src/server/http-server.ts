import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { TrustedRemote } from './authz.js';
import { defaultAuthorizer, type Authorizer } from './policy/authorizer.js';
import { normaliseRequestPath } from '../http/request-path.js';
import type { ServerMetrics } from './metrics.js';
import type { Router } from '../http/router.js';
import { LINGER_MS, refuseRequest } from '../http/answer-and-close.js';
import { statusFor } from '../http/error-answer.js';
import { failRequest, guardEmitter, runInRequestScope, type RequestScope } from './last-resort.js';
import { tracing, type ServerTrace } from '../util/tracing-hook.js';

/**
 * Server timeouts, chosen for multi-GB snapshot and archive transfers:
 * - headers must arrive within 30 s (cachew's header-read timeout): slowloris protection;
 * - no total request or response deadline: a 5 GB upload or download on a slow link may take
 *   hours, and cachew's fixed 30 min read/write limits cut such transfers off (its [bug?]);
 * - instead a connection idle for 10 min (no bytes either way) is closed. That ends stalled
 *   uploads (the handler then sees an abort and stores nothing) and dead readers, while any
 *   transfer that makes progress lives as long as it needs. 10 min leaves room for handlers
 *   that think before their first byte (a cold git mirror, an S3 restore);
 * - idle keep-alive connections are kept 65 s, longer than the 60 s idle timeout of common load
 *   balancers, so the balancer (not us) closes first and never reuses a socket we just closed.
 */
export const SERVER_TIMEOUTS = { headersMs: 30_000, idleMs: 600_000, keepAliveMs: 65_000 } as const;

/** The path part of a request target (no query string). */
function rawPathOf(url: string): string {
  const queryAt = url.indexOf('?');
  return queryAt === -1 ? url : url.slice(0, queryAt);
}

/** How many Host fields the request carried (node's `req.headers` keeps only the first). */
function hostHeaderCount(req: IncomingMessage): number {
  const raw = req.rawHeaders;
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') count++;
  }
  return count;
}

/** `X-Hoard-Cache: <result>` in a response head as sent. */
const CACHE_RESULT_IN_HEAD = /\r\nx-hoard-cache:[ \t]*([a-z]+)/i;

/**
 * The `X-Hoard-Cache` value a response was sent with, set by whichever strategy answered.
 * `getHeader` sees only headers set with `setHeader`; handlers that pass their headers to
 * `writeHead` (the fast path of cached answers) leave them only in the head already written.
 */
function cacheResultHeader(res: ServerResponse): string | number | string[] | undefined {
  const set = res.getHeader('x-hoard-cache');
  if (set !== undefined) return set;
  const head = (res as unknown as { _header?: unknown })._header;
  if (typeof head !== 'string' || head.length === 0) return undefined;
  return CACHE_RESULT_IN_HEAD.exec(head)?.[1]?.toLowerCase();
}

/** Methods some route of hoard answers; what a refused CONNECT is told to use instead. */
const SERVED_METHODS = 'GET, HEAD, POST, PUT, DELETE';

/**
 * Answers CONNECT with 405: hoard is a caching proxy for named protocols, not a tunnel. Node
 * hands the raw socket over without its own listeners, so this one must catch socket errors.
 */
function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => undefined);
  // Whatever the client sends after its CONNECT is discarded; the socket goes once the client
  // closes its side, or after LINGER_MS (an RST before then could wipe the answer, see answerAndClose).
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  const body = 'method not allowed: CONNECT is not supported (hoard is not a tunnelling proxy)\n';
  socket.end(
    `HTTP/1.1 405 Method Not Allowed\r\nAllow: ${SERVED_METHODS}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** Options of `createHttpServer`. */
export interface HttpServerOptions {
  router: Router;
  logger: Logger;
  metrics: ServerMetrics;
  /**
   * Which remote addresses the default policy trusts (default: loopback). Tests on loopback pass
   * `() => false` to exercise the real policy path as a remote caller would.
   */
  trustedRemote?: TrustedRemote;
  /**
   * Request headers logged as attributes, header name → attribute name (`log { headers }`).
   * Credentials are refused at start-up (see `checkLogHeaders`), so they never reach a log.
   */
  logHeaders?: Record<string, string>;
  /** The request policy (an OPA policy from the `opa` block); default: the built-in loopback policy. */
  authorizer?: Authorizer;
  /** Overrides the idle-connection timeout (tests). */
  idleTimeoutMs?: number;
}

/**
 * Builds the node:http server: path normalisation, authorization, routing, request logs and
 * metrics around the strategies' handlers. Timeouts: see `SERVER_TIMEOUTS`.
 */
export function createHttpServer(opts: HttpServerOptions): http.Server {
  const { router, logger, metrics } = opts;
  const authorizer = opts.authorizer ?? defaultAuthorizer(opts.trustedRemote);
  const logHeaders = Object.entries(opts.logHeaders ?? {}).map(([header, attribute]) => [header.toLowerCase(), attribute] as const);
  /** `log { headers }`: inbound header values as request-log attributes (cachew #256). */
  const headerAttributes = (req: IncomingMessage): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [header, attribute] of logHeaders) {
      const value = req.headers[header];
      if (value !== undefined) out[attribute] = Array.isArray(value) ? value.join(', ') : value;
    }
    return out;
  };
  const server = http.createServer(
    { headersTimeout: SERVER_TIMEOUTS.headersMs, requestTimeout: 0, keepAliveTimeout: SERVER_TIMEOUTS.keepAliveMs },
    (req, res) => {
      // The address is read once, now: once the connection is gone `req.socket` is null, and a
      // log line or policy check reading it then would throw out of an event listener.
      const scope: RequestScope = { req, res, method: req.method ?? 'GET', uri: rawPathOf(req.url ?? '/'), client: req.socket?.remoteAddress, logger, failed: false };
      guardEmitter(req, scope);
      guardEmitter(res, scope);
      // Tracing off: one check, nothing else. On: the request runs inside its server span.
      const span = tracing ? tracing.serverSpan(req, res) : undefined;
      runInRequestScope(scope, () => (span ? span.run(() => handle(scope, span)) : handle(scope, undefined))).catch((err: unknown) => failRequest(scope, err, 'handler'));
    },
  );
  // Without a 'timeout' listener node destroys the idle socket, which is what we want.
  server.setTimeout(opts.idleTimeoutMs ?? SERVER_TIMEOUTS.idleMs);
  // Without a 'connect' listener node closes a CONNECT request's socket without a word.
  server.on('connect', refuseConnect);

  async function handle(scope: RequestScope, span: ServerTrace | undefined): Promise<void> {
    const { req, res, method, client } = scope;
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const rawPath = scope.uri;
    const query = new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1));
    // A child logger per request is measurably expensive on the hot path; build fields only when logged.
    const fields = () => ({ client, method, uri: rawPath, ...headerAttributes(req) });
    const log = {
      warn: (obj: object, msg: string) => logger.warn({ ...fields(), ...obj }, msg),
      error: (obj: object, msg: string) => logger.error({ ...fields(), ...obj }, msg),
    };
    /** The strategy whose route or interceptor took the request (set once found). */
    let strategy: string | undefined;
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observe(method, rawPath, res.statusCode, seconds);
      span?.end(res.statusCode, res.writableFinished);
      if (strategy !== undefined) metrics.observeResult(strategy, res.statusCode, cacheResultHeader(res));
      const level = rawPath.startsWith('/_') ? 'debug' : 'info';
      if (logger.isLevelEnabled(level)) {
        logger[level]({ ...fields(), status: res.statusCode, ms: Math.round(seconds * 1000), complete: res.writableFinished }, 'request');
      }
    });

    if (hostHeaderCount(req) > 1) {
      // RFC 9112 §3.2: a server must answer 400 to a request with more than one Host field
      // (Host-based routing below must never have to pick one).
      refuseRequest(req, res, 400, 'bad request: more than one Host header');
      return;
    }
    const claim = router.intercepted(req);
    if (claim) {
      strategy = claim.strategy;
      if (!authorized(claim.policyPath)) return;
      await runHandler(() => claim.handle(req, res));
      return;
    }
    if (!rawPath.startsWith('/')) {
      refuseRequest(req, res, 400, 'bad request: absolute-form URLs are not supported');
      return;
    }
    // Decode once; the policy and the router both see exactly this path.
    const normalised = normaliseRequestPath(rawPath);
    if (!normalised.ok) {
      refuseRequest(req, res, 400, normalised.message);
      return;
    }
    const path = normalised.path;
    if (!authorized(path)) return;
    const match = router.find(method, normalised.routable);
    if (!match) {
      refuseRequest(req, res, 404, 'not found');
      return;
    }
    if ('allowed' in match) {
      refuseRequest(req, res, 405, 'method not allowed', { allow: match.allowed.join(', ') });
      return;
    }
    span?.route(match.route);
    strategy = match.strategy;
    // The route's own trusted-only requests (the default policy's second half; an OPA policy
    // already judged method and path above).
    if (match.trustedOnly && authorizer.decideRoute?.(req, path, match.trustedOnly) === 'deny') {
      log.warn({ path }, 'denied by the default policy (trusted callers only)');
      refuseRequest(req, res, 403, 'forbidden');
      return;
    }
    await runHandler(() => match.handler(req, res, match.params, query));

    /** Applies the policy to `policyPath`; answers 403 (deny) or 500 (evaluation error) itself. */
    function authorized(policyPath: string): boolean {
      const decision = authorizer.decide(req, policyPath);
      if (decision === 'allow') return true;
      if (decision === 'error') {
        log.error({ path: policyPath }, 'policy evaluation failed');
        refuseRequest(req, res, 500, 'policy evaluation error');
      } else {
        log.warn({ path: policyPath, policy: authorizer.kind }, authorizer.kind === 'default' ? 'denied by the default policy (loopback only)' : 'denied by the opa policy');
        refuseRequest(req, res, 403, 'forbidden');
      }
      return false;
    }

    async function runHandler(run: () => void | Promise<void>): Promise<void> {
      try {
        await run();
      } catch (err) {
        const { status, message } = statusFor(err);
        if (status >= 500) log.error({ err }, 'handler failed');
        if (res.headersSent) res.destroy(err as Error);
        else refuseRequest(req, res, status, message);
      }
    }
  }

  return server;
}
