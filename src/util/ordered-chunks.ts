import { Readable } from 'node:stream';

/** Options of `orderedChunks`. */
export interface OrderedChunksOptions {
  /** Number of chunks making up the whole body. */
  count: number;
  /** Chunks fetched or buffered at once; memory stays at `concurrency × chunk size`. */
  concurrency: number;
  /**
   * Fetches chunk `i`: a complete buffer, or a stream that is passed through as it arrives (the
   * chunk being emitted can stream while the ones after it are fetched in parallel). The signal
   * aborts when the consumer goes away.
   */
  fetch(i: number, signal: AbortSignal): Promise<Buffer | Readable>;
  signal?: AbortSignal | undefined;
  /** Called once when the stream ends or is destroyed (release anything prefetched outside `fetch`). */
  onClose?: () => void;
}

/**
 * A byte stream assembled from independently fetched chunks, emitted strictly in order. Chunks are
 * fetched ahead only while the reorder window has room, and the stream is pulled, so a slow
 * consumer stops the fetching (backpressure) instead of letting buffered chunks pile up.
 * Destroying the stream aborts the chunks still in flight.
 */
export function orderedChunks(opts: OrderedChunksOptions): Readable {
  const controller = new AbortController();
  const onOuterAbort = () => controller.abort();
  opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const window = new Map<number, Promise<Buffer | Readable>>();
  let next = 0;
  const fill = () => {
    while (next < opts.count && window.size < opts.concurrency) {
      const pending = opts.fetch(next, controller.signal);
      pending.catch(() => undefined);
      window.set(next, pending);
      next++;
    }
  };
  // Cleanup runs once, whether the stream ended, failed, or was destroyed before its first read
  // (a generator that never started has no `finally` to run).
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    controller.abort();
    opts.signal?.removeEventListener('abort', onOuterAbort);
    for (const pending of window.values()) void pending.then((p) => (Buffer.isBuffer(p) ? undefined : p.destroy()), () => undefined);
    window.clear();
    opts.onClose?.();
  };
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for (let i = 0; i < opts.count; i++) {
        fill();
        const part = await (window.get(i) as Promise<Buffer | Readable>);
        if (Buffer.isBuffer(part)) {
          window.delete(i);
          yield part;
        } else {
          for await (const piece of part) yield piece as Buffer;
          window.delete(i);
        }
      }
    } finally {
      release();
    }
  }
  const out = Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
  // Readable.from's destroy waits for the generator to return, and a generator parked on a chunk
  // that never arrives returns only once that chunk is aborted: so abort first, then destroy.
  const destroyGenerator = out._destroy.bind(out);
  out._destroy = (err, cb) => {
    release();
    destroyGenerator(err, cb);
  };
  return out;
}
