import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { TrustedRemote } from './authz.js';
import { defaultAuthorizer, type Authorizer } from './policy/authorizer.js';
import { normaliseRequestPath } from './request-path.js';
import type { ServerMetrics } from './metrics.js';
import { Router, sendText } from './router.js';
import { isCacheError } from '../cache/errors.js';

/** Maps a handler failure to a status; cache outcomes that escaped a handler keep their meaning. */
function statusFor(err: unknown): { status: number; message: string } {
  if (isCacheError(err)) {
    switch (err.code) {
      case 'not-found':
        return { status: 404, message: err.message };
      case 'insufficient-storage':
        return { status: 507, message: err.message };
      case 'too-large':
        return { status: 413, message: err.message };
      case 'invalid-argument':
        return { status: 400, message: err.message };
      default:
        break;
    }
  }
  return { status: 500, message: 'internal server error' };
}

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
  const server = http.createServer(
    { headersTimeout: SERVER_TIMEOUTS.headersMs, requestTimeout: 0, keepAliveTimeout: SERVER_TIMEOUTS.keepAliveMs },
    (req, res) => {
      void handle(req, res);
    },
  );
  // Without a 'timeout' listener node destroys the idle socket, which is what we want.
  server.setTimeout(opts.idleTimeoutMs ?? SERVER_TIMEOUTS.idleMs);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const rawPath = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const query = new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1));
    const method = req.method ?? 'GET';
    // A child logger per request is measurably expensive on the hot path; build fields only when logged.
    const fields = () => ({ client: req.socket.remoteAddress, method, uri: rawPath });
    const log = {
      warn: (obj: object, msg: string) => logger.warn({ ...fields(), ...obj }, msg),
      error: (obj: object, msg: string) => logger.error({ ...fields(), ...obj }, msg),
    };
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observe(method, rawPath, res.statusCode, seconds);
      const level = rawPath.startsWith('/_') ? 'debug' : 'info';
      if (logger.isLevelEnabled(level)) {
        logger[level]({ ...fields(), status: res.statusCode, ms: Math.round(seconds * 1000), complete: res.writableFinished }, 'request');
      }
    });

    const claim = router.intercepted(req);
    if (claim) {
      if (!authorized(claim.policyPath)) return;
      await runHandler(() => claim.handle(req, res));
      return;
    }
    if (!rawPath.startsWith('/')) {
      sendText(res, 400, 'bad request: absolute-form URLs are not supported');
      return;
    }
    // Decode once; the policy and the router both see exactly this path.
    const normalised = normaliseRequestPath(rawPath);
    if (!normalised.ok) {
      sendText(res, 400, normalised.message);
      return;
    }
    const path = normalised.path;
    if (!authorized(path)) return;
    const match = router.find(method, normalised.routable);
    if (!match) {
      sendText(res, 404, 'not found');
      return;
    }
    if ('allowed' in match) {
      sendText(res, 405, 'method not allowed', { allow: match.allowed.join(', ') });
      return;
    }
    await runHandler(() => match.handler(req, res, match.params, query));

    /** Applies the policy to `policyPath`; answers 403 (deny) or 500 (evaluation error) itself. */
    function authorized(policyPath: string): boolean {
      const decision = authorizer.decide(req, policyPath);
      if (decision === 'allow') return true;
      if (decision === 'error') {
        log.error({ path: policyPath }, 'policy evaluation failed');
        sendText(res, 500, 'policy evaluation error');
      } else {
        log.warn({ path: policyPath, policy: authorizer.kind }, authorizer.kind === 'default' ? 'denied by the default policy (loopback only)' : 'denied by the opa policy');
        sendText(res, 403, 'forbidden');
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
        else sendText(res, status, message);
      }
    }
  }

  return server;
}
