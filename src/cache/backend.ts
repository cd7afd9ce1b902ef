import { Readable, Writable } from 'node:stream';
import type { Cache, CacheStats, CacheWriter, CreateOptions, OpenResult, StaleRead, StatResult } from './cache.js';
import type { Conditions, ReadConditions } from './conditional.js';
import { CacheError } from './errors.js';
import { assertNamespace, type CacheKey } from './key.js';
import type { StoredHeaders } from './headers.js';

/**
 * What a storage backend implements: every operation takes the namespace explicitly, so the
 * `Cache` views (one per namespace) come for free from `BackendCache`.
 */
export interface Backend {
  stat(ns: string, key: CacheKey, cond: Conditions & StaleRead): Promise<StatResult>;
  open(ns: string, key: CacheKey, cond: ReadConditions & { signal?: AbortSignal } & StaleRead): Promise<OpenResult>;
  create(ns: string, key: CacheKey, headers: StoredHeaders, opts: CreateOptions): CacheWriter;
  delete(ns: string, key: CacheKey): Promise<void>;
  stats(): Promise<CacheStats>;
  listNamespaces(): Promise<string[]>;
  close(): Promise<void>;
  describe(): string;
}

/**
 * A body that is already in memory (a memory-tier object, a small disk object read in one go).
 * It is an ordinary Readable that pushes its bytes once, but an HTTP responder that recognises it
 * may answer with one `res.end(bytes)` instead of a stream pipeline, which for small objects costs
 * more than the rest of the request. It holds no file or socket, so leaving it unread is safe.
 */
export class BufferBody extends Readable {
  constructor(readonly bytes: Buffer) {
    super();
  }

  override _read(): void {
    this.push(this.bytes);
    this.push(null);
  }
}

/** A namespace view over a backend. `namespace()` replaces the namespace, never nests. */
export class BackendCache implements Cache {
  constructor(
    private readonly backend: Backend,
    readonly ns: string = '',
  ) {}

  namespace(ns: string): Cache {
    assertNamespace(ns);
    return new BackendCache(this.backend, ns);
  }

  stat(key: CacheKey, cond: Conditions & StaleRead = {}): Promise<StatResult> {
    return this.backend.stat(this.ns, key, cond);
  }

  statAuthoritative(key: CacheKey): Promise<StatResult> {
    return this.backend.stat(this.ns, key, {});
  }

  open(key: CacheKey, cond: ReadConditions & { signal?: AbortSignal } & StaleRead = {}): Promise<OpenResult> {
    return this.backend.open(this.ns, key, cond);
  }

  create(key: CacheKey, headers: StoredHeaders, opts: CreateOptions = {}): CacheWriter {
    return this.backend.create(this.ns, key, headers, opts);
  }

  delete(key: CacheKey): Promise<void> {
    return this.backend.delete(this.ns, key);
  }

  async invalidate(key: CacheKey): Promise<void> {
    try {
      await this.backend.delete(this.ns, key);
    } catch (err) {
      if (!(err instanceof CacheError && err.code === 'not-found')) throw err;
    }
  }

  stats(): Promise<CacheStats> {
    return this.backend.stats();
  }

  listNamespaces(): Promise<string[]> {
    return this.backend.listNamespaces();
  }

  close(): Promise<void> {
    return this.backend.close();
  }

  toString(): string {
    return this.backend.describe();
  }
}

/** Hooks a staged writer implements; `ObjectWriter` turns them into a commit-on-finish Writable. */
export interface WriteStage {
  write(chunk: Buffer): Promise<void>;
  /** Publishes the object; only then does 'finish' fire. */
  commit(): Promise<void>;
  /** Drops everything written so far. Must not throw. */
  discard(): Promise<void>;
}

/**
 * A Writable that forwards chunks to a stage, commits in `_final` and discards on destroy or
 * when the create signal aborts, so an interrupted write never becomes visible.
 */
export class ObjectWriter extends Writable {
  private committed = false;

  constructor(
    private readonly stage: WriteStage,
    signal?: AbortSignal,
  ) {
    super({ highWaterMark: 1 << 20 });
    if (signal) {
      const onAbort = () => this.destroy(new Error('write cancelled: the create signal was aborted'));
      if (signal.aborted) queueMicrotask(onAbort);
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.stage.write(chunk).then(() => cb(), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.stage.write(Buffer.concat(chunks.map((c) => c.chunk))).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.stage.commit().then(
      () => {
        this.committed = true;
        cb();
      },
      (err: Error) => cb(err),
    );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.committed) return cb(err);
    this.stage.discard().then(
      () => cb(err),
      () => cb(err),
    );
  }
}

/** The freshness fields of a read answer: `stale` only when past `expiresAt`. */
export function freshness(storedAt: number | undefined, expiresAt: number, now = Date.now()): { stale?: true; storedAt?: number; expiresAt: number } {
  return { ...(expiresAt <= now ? { stale: true as const } : {}), ...(storedAt !== undefined ? { storedAt } : {}), expiresAt };
}

/** Clamps a requested TTL to (0, max]: 0 or absent means the maximum. */
export function clampTtl(ttlMs: number | undefined, maxMs: number): number {
  if (!ttlMs || ttlMs <= 0 || ttlMs > maxMs) return maxMs;
  return ttlMs;
}
