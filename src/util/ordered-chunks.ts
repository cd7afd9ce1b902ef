import { Readable } from 'node:stream';

/** Options of `orderedChunks`. */
export interface OrderedChunksOptions {
  /** Number of chunks making up the whole body. */
  count: number;
  /** Chunks fetched or buffered at once; memory stays at `concurrency × chunk size`. */
  concurrency: number;
  /** Fetches chunk `i` completely. The signal aborts when the consumer goes away. */
  fetch(i: number, signal: AbortSignal): Promise<Buffer>;
  signal?: AbortSignal | undefined;
  /** Called once when the stream closes (release anything prefetched outside `fetch`). */
  onClose?: () => void;
}

/**
 * A byte stream assembled from independently fetched chunks, emitted strictly in order. Chunks are
 * fetched ahead only while the reorder window has room, so a slow consumer stops the fetching
 * (backpressure) instead of letting buffered chunks pile up. Destroying the stream aborts the
 * chunks still in flight.
 */
export function orderedChunks(opts: OrderedChunksOptions): Readable {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort();
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const window = new Map<number, Promise<Buffer>>();
  let next = 0;
  let emitted = 0;
  const fill = () => {
    while (next < opts.count && window.size < opts.concurrency) {
      const pending = opts.fetch(next, controller.signal);
      pending.catch(() => undefined);
      window.set(next, pending);
      next++;
    }
  };
  return new Readable({
    highWaterMark: 0,
    read() {
      if (emitted >= opts.count) {
        this.push(null);
        return;
      }
      fill();
      const pending = window.get(emitted) as Promise<Buffer>;
      pending.then(
        (buf) => {
          window.delete(emitted);
          emitted++;
          this.push(buf);
        },
        (err: Error) => this.destroy(err),
      );
    },
    destroy(err, cb) {
      controller.abort();
      opts.signal?.removeEventListener('abort', onOuterAbort);
      opts.onClose?.();
      cb(err);
    },
  });
}
