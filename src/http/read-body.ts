import type { IncomingMessage } from 'node:http';

/** The request body is larger than the handler accepts (answer 413). */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** The client went away before its body was complete; nobody is left to answer. */
export class BodyIncompleteError extends Error {
  constructor() {
    super('the client closed the connection before the request body was complete');
    this.name = 'BodyIncompleteError';
  }
}

/**
 * Reads a whole request body of at most `limit` bytes into memory.
 *
 * A declared `Content-Length` over the limit is refused before a byte is read. Unlike a
 * `for await` loop, giving up never destroys the request: an early `return` from such a loop
 * destroys the socket, so the client sees a reset instead of our 413, and everything that later
 * reads the request's socket finds it gone. Here the request is only paused; the caller answers
 * with `answerAndClose`, which decides what happens to the unread rest.
 */
export function readBoundedBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        chunks.length = 0;
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onGone = () => {
      cleanup();
      reject(new BodyIncompleteError());
    };
    const onClose = () => {
      if (!req.complete) onGone();
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('close', onClose);
  });
}
