import type { MetadataStore, VersionedValue } from './store.js';

interface Claim {
  owner: string;
  expiresAt: number;
}

/**
 * Process-local metadata store. Good for a single replica; with several replicas each keeps its
 * own view (use `metadata s3 {}` to share).
 */
export class MemoryMetadataStore implements MetadataStore {
  private readonly values = new Map<string, VersionedValue>();
  private readonly claims = new Map<string, Claim>();
  private version = 0;

  constructor(private readonly now: () => number = Date.now) {}

  async get(namespace: string, key: string): Promise<VersionedValue | undefined> {
    const found = this.values.get(`${namespace}\0${key}`);
    return found ? { ...found } : undefined;
  }

  async set(namespace: string, key: string, value: string): Promise<void> {
    this.values.set(`${namespace}\0${key}`, { value, version: String(++this.version) });
  }

  async compareAndSet(namespace: string, key: string, value: string, expectedVersion: string | null): Promise<boolean> {
    const id = `${namespace}\0${key}`;
    const current = this.values.get(id);
    if ((current?.version ?? null) !== expectedVersion) return false;
    this.values.set(id, { value, version: String(++this.version) });
    return true;
  }

  async delete(namespace: string, key: string): Promise<void> {
    this.values.delete(`${namespace}\0${key}`);
  }

  async claim(namespace: string, name: string, owner: string, ttlMs: number): Promise<boolean> {
    const id = `${namespace}\0${name}`;
    const current = this.claims.get(id);
    const now = this.now();
    if (current && current.owner !== owner && current.expiresAt > now) return false;
    this.claims.set(id, { owner, expiresAt: now + ttlMs });
    return true;
  }

  async release(namespace: string, name: string, owner: string): Promise<void> {
    const id = `${namespace}\0${name}`;
    if (this.claims.get(id)?.owner === owner) this.claims.delete(id);
  }

  async close(): Promise<void> {
    this.values.clear();
    this.claims.clear();
  }

  toString(): string {
    return 'memory';
  }
}
