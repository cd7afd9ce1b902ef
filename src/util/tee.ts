import { Transform, finished, type Writable } from 'node:stream';
import { telemetry } from './telemetry.js';

/**
 * Resolves when `stream` can take more data ('drain') or never will ('close' or 'error').
 * Waiting for 'drain' alone hangs for ever on a stream that failed or was destroyed: it never
 * drains. Every listener is removed on the first event, so a long copy that waits thousands of
 * times does not pile up one 'close' listener per wait.
 */
export function waitForDrain(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded || stream.writableNeedDrain === false) return Promise.resolve();
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

/** Options of `teeInto`. */
export interface TeeOptions {
  /**
   * Called once when the copy is given up because the writer failed (an error, a destroy, or a
   * failed commit): the pass-through carries on without it. Not called when the tee itself is
   * torn down before the end (that discards the copy on purpose).
   */
  onAbandon?: (err: Error) => void;
  /**
   * Awaited once the source has ended, before the writer is ended (committed). A rejection
   * discards the copy and fails the tee with that error: the bytes were whole but not good
   * (an archiver that exited non-zero).
   */
  beforeCommit?: () => Promise<void>;
  /** Readable and writable buffer of the tee, in bytes (Node's default when absent). */
  highWaterMark?: number;
}

/**
 * A pass-through that copies every chunk into `writer`, a best-effort side copy such as a cache
 * fill (`undefined`: no copy, a plain pass-through).
 *
 * - The pass-through waits while the writer is backpressured, so memory stays bounded by the two
 *   streams' buffers; it waits for 'drain' *or* 'close'/'error', so a writer that fails (disk
 *   full, I/O error, destroyed) is dropped and never stalls the output.
 * - At the source's end the writer is ended (committed, after `beforeCommit`), and the output
 *   ends only once the commit settled, so whoever read to EOF finds the object cached. From that
 *   moment the commit belongs to the copy, not to the output: tearing the tee down (a client that
 *   closes right after the last byte) no longer discards it.
 * - Torn down before the source ended (source error, output closed early): the copy is discarded.
 */
export function teeInto(writer: Writable | undefined, opts: TeeOptions = {}): Transform {
  /** copying → (abandoned | discarded | committing); only 'copying' writes to the writer. */
  let state: 'copying' | 'abandoned' | 'discarded' | 'committing' = writer ? 'copying' : 'abandoned';
  const fill = writer ? telemetry().fill() : undefined;
  const abandon = (err: Error) => {
    if (state !== 'copying') return;
    state = 'abandoned';
    fill?.abandoned();
    // Destroyed already in every path that reaches here but one (a failed write still pending
    // its destroy); destroying again is harmless and guarantees the partial copy is discarded.
    writer?.destroy();
    opts.onAbandon?.(err);
  };
  if (writer) {
    // Kept for the writer's whole life: an 'error' with no listener would crash the process.
    writer.on('error', (err: Error) => abandon(err));
    writer.once('close', () => abandon(writer.errored ?? new Error('cache writer closed before the body ended')));
  }

  const commit = async (w: Writable): Promise<void> => {
    if (opts.beforeCommit) {
      try {
        await opts.beforeCommit();
      } catch (err) {
        fill?.abandoned();
        w.destroy();
        throw err;
      }
    }
    try {
      await new Promise<void>((resolve, reject) => {
        w.end();
        finished(w, (err) => (err ? reject(err) : resolve()));
      });
      fill?.committed();
    } catch (err) {
      // The output is whole; only the copy is lost.
      fill?.abandoned();
      opts.onAbandon?.(err as Error);
    }
  };

  return new Transform({
    ...(opts.highWaterMark !== undefined ? { highWaterMark: opts.highWaterMark } : {}),
    transform(chunk: Buffer, _enc, cb) {
      const w = writer;
      if (state !== 'copying' || !w) return cb(null, chunk);
      if (w.destroyed) {
        abandon(w.errored ?? new Error('cache writer destroyed'));
        return cb(null, chunk);
      }
      if (w.write(chunk)) return cb(null, chunk);
      void waitForDrain(w).then(() => cb(null, chunk));
    },
    flush(cb) {
      const w = writer;
      if (state !== 'copying' || !w) return cb();
      state = 'committing';
      commit(w).then(
        () => cb(),
        (err: Error) => cb(err),
      );
    },
    destroy(err, cb) {
      if (state === 'copying') {
        state = 'discarded';
        fill?.abandoned();
        writer?.destroy();
      }
      cb(err);
    },
  });
}
