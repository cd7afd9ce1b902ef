/**
 * Keyed values in flight: the first caller for a key starts the value, and every caller until
 * the value's lifetime settles gets that same value. Unlike a finished result, the value is
 * usable at once, while the work behind it still runs (a spool that followers read as it fills).
 * The slot is freed when the lifetime settles, fulfilled or rejected, and only if it still
 * holds that value.
 */
export class InFlight<V> {
  private readonly live = new Map<string, V>();

  /**
   * The value in flight for `key`, or a new one from `start`, held until `lifetime(value)` settles.
   * `released` runs once the slot is free, so clean-up (removing a spool file) never races a
   * newcomer that could still find the value.
   */
  join(key: string, start: () => V, lifetime: (value: V) => PromiseLike<unknown>, released?: (value: V) => void): V {
    if (this.live.has(key)) return this.live.get(key) as V;
    const value = start();
    this.live.set(key, value);
    const free = () => {
      if (this.live.get(key) === value) this.live.delete(key);
      released?.(value);
    };
    let ends: PromiseLike<unknown>;
    try {
      ends = lifetime(value);
    } catch (err) {
      ends = Promise.reject(err);
    }
    // Attached before any caller sees the value, so the slot is free by the time they resume.
    ends.then(free, free);
    return value;
  }

  /** True while a value for `key` is in flight. */
  has(key: string): boolean {
    return this.live.has(key);
  }

  /** The value in flight for `key`, if any, without starting one. */
  get(key: string): V | undefined {
    return this.live.get(key);
  }

  /** The values in flight now. */
  values(): V[] {
    return [...this.live.values()];
  }

  /** Number of keys in flight. */
  get size(): number {
    return this.live.size;
  }
}

/**
 * Keyed single-flight: while a call for `key` is running, later callers for the same key share
 * its promise instead of starting their own. The shared work is not tied to any one caller's
 * AbortSignal (one caller giving up must not fail the others); each caller may stop waiting
 * through its own `signal`.
 */
export class SingleFlight<T> {
  private readonly running = new InFlight<Promise<T>>();

  /** Runs `work` for `key`, or joins the run already in flight. */
  run(key: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const shared = this.running.join(key, work, (run) => run);
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
