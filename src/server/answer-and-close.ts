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
export function answerAndClose(req: IncomingMessage, res: ServerResponse, status: number, message: string, lingerMs = LINGER_MS): void {
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
  sendText(res, status, message, { connection: 'close' });
}
