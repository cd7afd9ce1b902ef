/**
 * Keyed single-flight: while a call for `key` is running, later callers for the same key share
 * its promise instead of starting their own. The shared work is not tied to any one caller's
 * AbortSignal (one caller giving up must not fail the others); each caller may stop waiting
 * through its own `signal`.
 */
export class SingleFlight<T> {
  private readonly running = new Map<string, Promise<T>>();

  /** Runs `work` for `key`, or joins the run already in flight. */
  run(key: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    let shared = this.running.get(key);
    if (!shared) {
      shared = work().finally(() => {
        if (this.running.get(key) === shared) this.running.delete(key);
      });
      this.running.set(key, shared);
    }
    return signal ? abandonable(shared, signal) : shared;
  }

  /** True while a run for `key` is in flight. */
  has(key: string): boolean {
    return this.running.has(key);
  }

  /** The run in flight for `key`, if any, without starting one. */
  current(key: string): Promise<T> | undefined {
    return this.running.get(key);
  }

  /** Resolves once nothing is in flight, including runs started while waiting; never rejects. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled(this.running.values());
  }

  /** Number of keys in flight (bounded by the callers waiting). */
  get size(): number {
    return this.running.size;
  }
}

/** `promise`, or a rejection as soon as `signal` aborts (the promise itself runs on). */
export function abandonable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
