import { createHash, randomUUID } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { isMissing, isPreconditionFailed } from '../s3/client.js';
import type { MetadataStore, VersionedValue } from './store.js';

/** Options of `metadata s3 {}`. */
export interface S3MetadataOptions {
  client: S3Client;
  bucket: string;
  /** How long a `get` answer may be reused before S3 is asked again (the staleness window). */
  syncIntervalMs: number;
  now?: () => number;
}

interface Claim {
  owner: string;
  expiresAt: number;
}

const REQUEST_TIMEOUT_MS = 15_000;
/** Keys whose last answer is kept locally (oldest dropped first). */
const RECENT_LIMIT = 10_000;

/**
 * Metadata shared by replicas through one S3 object per key under `.metadata/` (namespaces of
 * the cache cannot start with a dot, so they never collide). Compare-and-set and claims use S3
 * conditional writes (If-None-Match: * to create, If-Match on the object's ETag to replace), so
 * two replicas can never both win. Plain `get`s are served from a short local cache to keep the
 * tiered cache's per-read ETag lookups off the network; see docs/decisions.md for the
 * consistency this gives.
 */
export class S3MetadataStore implements MetadataStore {
  /**
   * Last answer per object key, reused for the sync interval. `error` marks a failed read: it is
   * remembered for the interval too, so while S3 is unreachable each key costs one failed
   * request per interval instead of one (with SDK retries) per cache read.
   */
  private readonly recent = new Map<string, { at: number; value: VersionedValue | undefined; error?: Error }>();
  private readonly now: () => number;

  constructor(private readonly opts: S3MetadataOptions) {
    this.now = opts.now ?? Date.now;
  }

  private objectKey(namespace: string, kind: 'values' | 'claims', key: string): string {
    const digest = createHash('sha256').update(key).digest('hex');
    return `.metadata/${namespace || '.root'}/${kind}/${digest}.json`;
  }

  private async read(objectKey: string): Promise<{ body: string; etag: string } | undefined> {
    try {
      const res = await this.opts.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: objectKey }), { abortSignal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      return { body: await res.Body!.transformToString(), etag: res.ETag ?? '' };
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw metadataError('read', objectKey, err);
    }
  }

  /** PUT; resolves to the new version, or undefined when the condition did not hold. */
  private async write(objectKey: string, body: string, condition: { ifMatch?: string; ifNoneMatch?: '*' } = {}): Promise<string | undefined> {
    try {
      const res = await this.opts.client.send(
        new PutObjectCommand({
          Bucket: this.opts.bucket,
          Key: objectKey,
          Body: body,
          ContentType: 'application/json',
          ...(condition.ifMatch ? { IfMatch: condition.ifMatch } : {}),
          ...(condition.ifNoneMatch ? { IfNoneMatch: condition.ifNoneMatch } : {}),
        }),
        { abortSignal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) },
      );
      return res.ETag ?? '';
    } catch (err) {
      if ((condition.ifMatch || condition.ifNoneMatch) && (isPreconditionFailed(err) || (condition.ifMatch && isMissing(err)))) return undefined;
      throw metadataError('write', objectKey, err);
    }
  }

  private async fresh(namespace: string, key: string): Promise<VersionedValue | undefined> {
    const objectKey = this.objectKey(namespace, 'values', key);
    const found = await this.read(objectKey);
    const value = found ? { value: (JSON.parse(found.body) as { value: string }).value, version: found.etag } : undefined;
    this.keep(objectKey, value);
    return value;
  }

  /**
   * The value as of at most `syncIntervalMs` ago. When S3 cannot be read, the last value seen
   * keeps being served (it is the best knowledge this replica has, and the tiered cache would
   * otherwise treat every near copy as unverified); with nothing seen yet the read fails.
   */
  async get(namespace: string, key: string): Promise<VersionedValue | undefined> {
    const objectKey = this.objectKey(namespace, 'values', key);
    const cached = this.recent.get(objectKey);
    if (cached && this.now() - cached.at < this.opts.syncIntervalMs) {
      if (cached.error) throw cached.error;
      return cached.value;
    }
    try {
      return await this.fresh(namespace, key);
    } catch (err) {
      if (cached && !cached.error) {
        this.keep(objectKey, cached.value);
        return cached.value;
      }
      this.keep(objectKey, undefined, err as Error);
      throw err;
    }
  }

  async set(namespace: string, key: string, value: string): Promise<void> {
    const objectKey = this.objectKey(namespace, 'values', key);
    const version = await this.write(objectKey, JSON.stringify({ key, value }));
    this.remember(objectKey, value, version);
  }

  async compareAndSet(namespace: string, key: string, value: string, expectedVersion: string | null): Promise<boolean> {
    const objectKey = this.objectKey(namespace, 'values', key);
    const version = await this.write(objectKey, JSON.stringify({ key, value }), expectedVersion === null ? { ifNoneMatch: '*' } : { ifMatch: expectedVersion });
    if (version === undefined) {
      // Someone else wrote: forget our possibly stale view so the caller's retry reads theirs.
      this.recent.delete(objectKey);
      return false;
    }
    this.remember(objectKey, value, version);
    return true;
  }

  private remember(objectKey: string, value: string, version: string | undefined): void {
    if (version === undefined) this.recent.delete(objectKey);
    else this.keep(objectKey, { value, version });
  }

  private keep(objectKey: string, value: VersionedValue | undefined, error?: Error): void {
    this.recent.delete(objectKey);
    this.recent.set(objectKey, error ? { at: this.now(), value, error } : { at: this.now(), value });
    if (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.keys().next().value as string);
  }

  async delete(namespace: string, key: string): Promise<void> {
    const objectKey = this.objectKey(namespace, 'values', key);
    try {
      await this.opts.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: objectKey }), { abortSignal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (err) {
      if (!isMissing(err)) throw metadataError('delete', objectKey, err);
    }
    this.keep(objectKey, undefined);
  }

  async claim(namespace: string, name: string, owner: string, ttlMs: number): Promise<boolean> {
    const objectKey = this.objectKey(namespace, 'claims', name);
    const current = await this.read(objectKey);
    const held = current ? (JSON.parse(current.body) as Claim) : undefined;
    if (held && held.owner !== owner && held.expiresAt > this.now()) return false;
    const body = JSON.stringify({ name, owner, expiresAt: this.now() + ttlMs });
    const version = await this.write(objectKey, body, current ? { ifMatch: current.etag } : { ifNoneMatch: '*' });
    return version !== undefined;
  }

  async release(namespace: string, name: string, owner: string): Promise<void> {
    const objectKey = this.objectKey(namespace, 'claims', name);
    const current = await this.read(objectKey);
    if (!current || (JSON.parse(current.body) as Claim).owner !== owner) return;
    // Expire rather than delete: a conditional PUT cannot remove a claim someone else took meanwhile.
    await this.write(objectKey, JSON.stringify({ name, owner, expiresAt: 0 }), { ifMatch: current.etag });
  }

  /**
   * Checks that the endpoint enforces conditional writes (some S3-compatible servers ignore them,
   * which would let two replicas win one claim). Resolves false when it does not.
   */
  async enforcesConditionalWrites(): Promise<boolean> {
    const probe = `.metadata/.probe/${randomUUID()}.json`;
    try {
      await this.write(probe, '{}', { ifNoneMatch: '*' });
      return (await this.write(probe, '{}', { ifNoneMatch: '*' })) === undefined;
    } finally {
      await this.opts.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: probe })).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.recent.clear();
  }

  toString(): string {
    return `s3:${this.opts.bucket}`;
  }
}

function metadataError(action: string, objectKey: string, err: unknown): Error {
  const e = err as { name?: string; message?: string };
  return new Error(`metadata s3: ${action} ${objectKey} failed: ${e?.name ?? 'error'}: ${e?.message ?? String(err)}`);
}
