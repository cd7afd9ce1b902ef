import type { Writable } from 'node:stream';

/**
 * Resolves when `stream` can take more data ('drain') or will never take any ('close' or
 * 'error'). Both listeners are removed on the first event, so a long response that waits
 * thousands of times does not pile up one 'close' listener per wait.
 */
export function waitForDrain(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}
