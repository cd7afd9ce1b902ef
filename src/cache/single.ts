import type { Cache } from './cache.js';
import type { CacheKey } from './key.js';
import { bodyBytes, type TierObserver } from './tiered.js';

/**
 * Wraps the only cache so `invalidate` is a no-op: with one tier it is the authority. A plain
 * delegating class rather than a Proxy: the Proxy's trap ran and bound a fresh function on every
 * method call of every request.
 */
class AuthoritativeCache implements Cache {
  constructor(
    private readonly inner: Cache,
    private readonly observer?: TierObserver,
  ) {}

  get ns(): string {
    return this.inner.ns;
  }

  namespace(ns: string): Cache {
    return new AuthoritativeCache(this.inner.namespace(ns), this.observer);
  }

  stat(...args: Parameters<Cache['stat']>): ReturnType<Cache['stat']> {
    return this.inner.stat(...args);
  }

  statAuthoritative(key: CacheKey): ReturnType<Cache['statAuthoritative']> {
    return this.inner.statAuthoritative(key);
  }

  async open(...args: Parameters<Cache['open']>): ReturnType<Cache['open']> {
    const result = await this.inner.open(...args);
    // The only tier answered (bytes served by tier, like the tiered cache reports).
    this.observer?.served(0, bodyBytes(result));
    return result;
  }

  create(...args: Parameters<Cache['create']>): ReturnType<Cache['create']> {
    return this.inner.create(...args);
  }

  delete(key: CacheKey): Promise<void> {
    return this.inner.delete(key);
  }

  async invalidate(_key: CacheKey): Promise<void> {
    return undefined;
  }

  stats(): ReturnType<Cache['stats']> {
    return this.inner.stats();
  }

  listNamespaces(): Promise<string[]> {
    return this.inner.listNamespaces();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  toString(): string {
    return String(this.inner);
  }
}

/** The one configured cache as the server uses it: the authority, with bytes served reported to `observer`. */
export function singleTierCache(cache: Cache, observer?: TierObserver): Cache {
  return new AuthoritativeCache(cache, observer);
}
