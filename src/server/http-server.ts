import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isAllowed } from './authz.js';
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
      case 'invalid-argument':
        return { status: 400, message: err.message };
      default:
        break;
    }
  }
  return { status: 500, message: 'internal server error' };
}

/**
 * Builds the node:http server: authorization, routing, request logs and metrics around the
 * strategies' handlers. There is deliberately no total request timeout: snapshot and pack
 * downloads may legitimately take many minutes.
 */
export function createHttpServer(opts: { router: Router; logger: Logger; metrics: ServerMetrics }): http.Server {
  const { router, logger, metrics } = opts;
  const server = http.createServer({ headersTimeout: 30_000, requestTimeout: 0, keepAliveTimeout: 65_000 }, (req, res) => {
    void handle(req, res);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt);
    const query = new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1));
    const method = req.method ?? 'GET';
    // A child logger per request is measurably expensive on the hot path; build fields only when logged.
    const fields = () => ({ client: req.socket.remoteAddress, method, uri: path });
    const log = {
      warn: (obj: object, msg: string) => logger.warn({ ...fields(), ...obj }, msg),
      error: (obj: object, msg: string) => logger.error({ ...fields(), ...obj }, msg),
    };
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.observe(method, path, res.statusCode, seconds);
      const level = path.startsWith('/_') ? 'debug' : 'info';
      if (logger.isLevelEnabled(level)) {
        logger[level]({ ...fields(), status: res.statusCode, ms: Math.round(seconds * 1000), complete: res.writableFinished }, 'request');
      }
    });

    if (!path.startsWith('/')) {
      sendText(res, 400, 'bad request: absolute-form URLs are not supported');
      return;
    }
    if (!isAllowed(path, req.socket.remoteAddress)) {
      log.warn({ path }, 'denied by the default policy (loopback only)');
      sendText(res, 403, 'forbidden');
      return;
    }
    const match = router.find(method, path);
    if (!match) {
      sendText(res, 404, 'not found');
      return;
    }
    if ('allowed' in match) {
      sendText(res, 405, 'method not allowed', { allow: match.allowed.join(', ') });
      return;
    }
    try {
      await match.handler(req, res, match.params, query);
    } catch (err) {
      const { status, message } = statusFor(err);
      if (status >= 500) log.error({ err }, 'handler failed');
      if (res.headersSent) res.destroy(err as Error);
      else sendText(res, status, message);
    }
  }

  return server;
}
