import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { sendText } from './router.js';

/** How long a refused upload's remaining bytes are read and discarded before the socket is cut. */
export const LINGER_MS = 5_000;

/**
 * Answers `status` + `message` to a request whose body we stopped reading (a failed or refused
 * upload), with `Connection: close`, then closes the connection.
 *
 * Node ends and destroys a `Connection: close` socket as soon as the response is flushed. With
 * request bytes still unread, closing makes the kernel send RST, and an RST can wipe our answer
 * from the client's receive buffer before the client reads it, so the client would see
 * "connection reset" instead of the reason. So we half-close instead: send the answer and FIN,
 * keep reading and discarding what the client still sends for up to `lingerMs` (nginx's
 * "lingering close"), and destroy the socket once the client stops or time is up.
 */
export function answerAndClose(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  message: string,
  opts: { lingerMs?: number; headers?: Record<string, string> } = {},
): void {
  const lingerMs = opts.lingerMs ?? LINGER_MS;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const socket = req.socket as Socket | null;
  if (socket && !req.complete && !socket.destroyed) {
    // node calls destroySoon() on this socket once the `Connection: close` response is flushed.
    socket.destroySoon = function lingeringClose(this: Socket) {
      this.end();
      const timer = setTimeout(() => this.destroy(), lingerMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        this.destroy();
      };
      this.once('close', () => clearTimeout(timer));
      if (req.readableEnded) return done();
      // The client finished sending (or half-closed): nothing unread is left to provoke an RST.
      req.once('end', done);
      this.once('end', done);
      req.resume();
    };
  }
  sendText(res, status, message, { ...opts.headers, connection: 'close' });
}

/** True when the request declares a body (a non-zero Content-Length, or Transfer-Encoding). */
export function declaresBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * Answers a request refused before its body was read (400, 403, 404, 405, 413, …). With a body
 * outstanding the answer is `answerAndClose`'s: reading megabytes only to keep the connection
 * would serve nobody. A request without a body keeps its connection (clients probing many
 * paths reuse it).
 */
export function refuseRequest(req: IncomingMessage, res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  if (declaresBody(req) && !req.complete) answerAndClose(req, res, status, message, { headers });
  else sendText(res, status, message, headers);
}
