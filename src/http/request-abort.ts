import type { IncomingMessage, ServerResponse } from 'node:http';

/** The abort signal of one response, and the way to stop watching the response for it. */
export interface ClientAbort {
  /** Aborted once the client went away before the response finished. */
  readonly signal: AbortSignal;
  /**
   * Stops watching: removes the listeners this added (the signal keeps its state). Call it when
   * the work the signal guards is over, so nothing lingers on a response that lives on.
   */
  release(): void;
}

/** Options of {@link watchClientAbort}. */
export interface ClientAbortOptions {
  /**
   * Also abort on the request's 'aborted' event (an upload cut off mid-body), which may come
   * before the response closes. Without it only the response closing unfinished counts.
   */
  req?: IncomingMessage;
}

/**
 * Watches `res` for the client going away: the signal aborts when the response closes without
 * having finished (`'close'` with `writableFinished` false), or at once if that already happened
 * before the call. A response that finished normally never aborts it, so work that outlives the
 * answer (a cache fill's tail) is not cancelled by the ordinary end of a request.
 */
export function watchClientAbort(res: ServerResponse, opts: ClientAbortOptions = {}): ClientAbort {
  // Aborted with the default reason (a DOMException named 'AbortError') on purpose: code below
  // (the S3 tier, fetch-style clients) recognises a cancellation by that name, and a custom reason
  // would turn a client leaving into a tier failure.
  const controller = new AbortController();
  const { req } = opts;
  const release = () => {
    res.off('close', onClose);
    req?.off('aborted', onGone);
  };
  const onGone = () => {
    release();
    controller.abort();
  };
  const onClose = () => {
    if (res.writableFinished) release();
    else onGone();
  };
  if (res.closed) {
    // 'close' was already emitted: a listener added now would never run.
    if (!res.writableFinished) controller.abort();
    return { signal: controller.signal, release: () => undefined };
  }
  res.once('close', onClose);
  req?.once('aborted', onGone);
  return { signal: controller.signal, release };
}

/**
 * Runs `fn` with the signal of {@link watchClientAbort}, releasing the watch when `fn` settles
 * (resolved or thrown).
 */
export async function withClientAbort<T>(res: ServerResponse, fn: (signal: AbortSignal) => Promise<T>, opts: ClientAbortOptions = {}): Promise<T> {
  const watch = watchClientAbort(res, opts);
  try {
    return await fn(watch.signal);
  } finally {
    watch.release();
  }
}
