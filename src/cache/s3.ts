import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type GetObjectCommandOutput, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { CacheStats, CacheWriter, CreateOptions, OpenResult, StaleRead, StatResult } from './cache.js';
import { BackendCache, ObjectWriter, clampTtl, freshness, type Backend } from './backend.js';
import { checkConditions, resolveRange, type Conditions, type ReadConditions } from './conditional.js';
import { CacheError, notFound, tierUnavailable } from './errors.js';
import { headersForRead, prepareStoredHeaders, type StoredHeaders } from './headers.js';
import type { CacheKey } from './key.js';
import { isMissing } from '../s3/client.js';
import { exactLength } from '../util/exact-length.js';
import { orderedChunks } from '../util/ordered-chunks.js';
import { waitForDrain } from '../util/tee.js';

const MiB = 1024 * 1024;
/** Ranges shorter than this are one GET even when parallel reads are enabled. */
const PARALLEL_RANGE_MIN = 8 * MiB;
/** Smallest sub-range of a parallel read. */
const MIN_SUBRANGE = 4 * MiB;

/** Options of `cache s3 {}` (bytes and milliseconds). */
export interface S3CacheOptions {
  client: S3Client;
  bucket: string;
  maxTtlMs: number;
  uploadConcurrency: number;
  uploadPartBytes: number;
  downloadConcurrency: number;
  downloadPartBytes: number;
}

/**
 * The index object at `<ns>/<xx>/<key>`: names the immutable body object of the committed write.
 * Writing it is the commit: a body whose upload was cut off, or whose writer lost a race to a
 * concurrent one, is never named, so readers always see one complete write.
 */
interface IndexRecord {
  tag: string;
  size: number;
  expiresAt: number;
  /** Commit time (absent in records written before stale reads existed). */
  storedAt?: number;
  headers: StoredHeaders;
}

/** What reading the index established about a live object. */
interface Live {
  indexKey: string;
  /** S3 ETag of the index object, for conditional rewrites (sliding TTL). */
  indexETag: string;
  bodyKey: string;
  record: IndexRecord;
}

/** Superseded bodies stay this long so reads that started before a replacement can finish. */
const SUPERSEDED_GRACE_MS = 10 * 60_000;

async function readSmall(body: unknown): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

/** Reads exactly `expected` bytes of a ranged GET body. */
async function readRange(body: unknown, expected: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(expected);
  let filled = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (filled + chunk.length > expected) throw new Error('S3 returned more bytes than the range asked for');
    chunk.copy(buf, filled);
    filled += chunk.length;
  }
  if (filled !== expected) throw new Error(`S3 range ended early: ${filled} of ${expected} bytes`);
  return buf;
}

/**
 * What a failed S3 call means to the cache: a cancelled call stays a plain error (the caller
 * went away; nothing is wrong with the tier), every other failure makes the tier `unavailable`
 * (HTTP 503) with a short reason a caller may see: the S3 call and the network error code or S3
 * status, never the endpoint or credentials. The SDK's error is kept as the cause for the log.
 */
function s3Error(bucket: string, action: string, err: unknown): CacheError | Error {
  if (err instanceof CacheError) return err;
  const e = err as { name?: string; message?: string; code?: unknown; syscall?: unknown; $metadata?: { httpStatusCode?: number } } | undefined;
  if (e?.name === 'AbortError') return new Error(`S3 ${action} cancelled`, { cause: err });
  const status = e?.$metadata?.httpStatusCode;
  let reason: string;
  if (typeof e?.code === 'string' && /^E[A-Z0-9_]+$/.test(e.code)) reason = `${typeof e.syscall === 'string' ? `${e.syscall} ` : ''}${e.code}`;
  else if (status !== undefined) reason = `HTTP ${status} ${e?.name ?? 'error'}`;
  else reason = `${e?.name ?? 'error'}: ${String(e?.message ?? err).slice(0, 200)}`;
  return tierUnavailable(`s3 (bucket ${bucket})`, `${action}: ${reason}`, err);
}

/**
 * Shared authoritative tier on S3 (reference §3.3, with one deliberate layout change): every
 * write uploads an immutable body object under a fresh tag with a streaming multipart upload,
 * then commits by writing the small index object that names it. Readers read the index and then
 * the named body, so bytes and headers always come from the same write and body reads need no
 * version pinning. Conditionals are evaluated against hoard's ETag from the index.
 */
class S3Backend implements Backend {
  private readonly sweeps = new Set<NodeJS.Timeout>();

  constructor(private readonly opts: S3CacheOptions) {}

  private indexKey(ns: string, key: CacheKey): string {
    return `${ns ? `${ns}/` : ''}${key.slice(0, 2)}/${key}`;
  }

  private send<T>(command: object, signal?: AbortSignal): Promise<T> {
    return this.opts.client.send(command as never, signal ? { abortSignal: signal } : {}) as Promise<T>;
  }

  /**
   * Reads the index. An expired object is not-found unless `allowStale`, and it is not deleted:
   * it stays (for stale-if-error) until the bucket's lifecycle rule collects it, the same rule a
   * deployment needs anyway for the bodies of crashed writers.
   */
  private async live(ns: string, key: CacheKey, signal?: AbortSignal, allowStale = false): Promise<Live> {
    const indexKey = this.indexKey(ns, key);
    let text: string;
    let indexETag: string;
    try {
      const res = await this.send<GetObjectCommandOutput>(new GetObjectCommand({ Bucket: this.opts.bucket, Key: indexKey }), signal);
      text = await readSmall(res.Body);
      indexETag = res.ETag ?? '';
    } catch (err) {
      if (isMissing(err)) throw notFound();
      throw s3Error(this.opts.bucket, 'GET index', err);
    }
    let record: IndexRecord;
    try {
      record = JSON.parse(text) as IndexRecord;
      if (typeof record.tag !== 'string' || !/^[0-9a-f]{32}$/.test(record.tag) || typeof record.size !== 'number') throw new Error('bad index');
    } catch {
      throw notFound();
    }
    const live = { indexKey, indexETag, bodyKey: `${indexKey}.${record.tag}.data`, record };
    if (!allowStale && record.expiresAt <= Date.now()) throw notFound();
    return live;
  }

  async stat(ns: string, key: CacheKey, cond: Conditions & StaleRead): Promise<StatResult> {
    const live = await this.live(ns, key, undefined, cond.allowStale);
    checkConditions(cond, live.record.headers);
    return { headers: headersForRead(live.record.headers, live.record.size), size: live.record.size, ...freshness(live.record.storedAt, live.record.expiresAt) };
  }

  async open(ns: string, key: CacheKey, cond: ReadConditions & { signal?: AbortSignal } & StaleRead): Promise<OpenResult> {
    const live = await this.live(ns, key, cond.signal, cond.allowStale);
    const { headers: stored, size } = live.record;
    checkConditions(cond, stored);
    const range = resolveRange(cond, stored['etag'], size);
    const fresh = freshness(live.record.storedAt, live.record.expiresAt);
    // A stale object is served as it is; renewing it would make it look fresh again.
    if (!fresh.stale) this.slideExpiry(live);
    if (!range) {
      const body = await this.body(live, 0, size - 1, size > this.opts.downloadPartBytes, cond.signal);
      return { status: 200, headers: headersForRead(stored, size), size, body, ...fresh };
    }
    const length = range.end - range.start + 1;
    const headers = headersForRead(stored, length);
    headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
    const body = await this.body(live, range.start, range.end, length >= PARALLEL_RANGE_MIN, cond.signal);
    return { status: 206, headers, size, body, ...fresh };
  }

  /** Bytes `start..end` of the committed body; parallel sub-range GETs when `parallel` and allowed. */
  private async body(live: Live, start: number, end: number, parallel: boolean, signal?: AbortSignal): Promise<Readable> {
    if (live.record.size === 0) return new PassThrough().end();
    const length = end - start + 1;
    const concurrency = this.opts.downloadConcurrency;
    if (!parallel || concurrency <= 1) return (await this.get(live, start, end, signal)).Body as Readable;
    const part = Math.min(this.opts.downloadPartBytes, Math.max(MIN_SUBRANGE, Math.ceil(length / concurrency)));
    const count = Math.ceil(length / part);
    // The first sub-range's answer is awaited before returning so a vanished body fails the
    // open, not the stream; its bytes are read once the consumer asks for them.
    const firstEnd = Math.min(end, start + part - 1);
    const first = await this.get(live, start, firstEnd, signal);
    return orderedChunks({
      count,
      concurrency,
      signal,
      onClose: () => (first.Body as Readable).destroy(),
      fetch: async (i, chunkSignal) => {
        // The first sub-range streams straight through: the first byte does not wait for a whole part.
        if (i === 0) return exactLength(first.Body as Readable, firstEnd - start + 1, 'S3 range');
        const from = start + i * part;
        const to = Math.min(end, from + part - 1);
        return readRange((await this.get(live, from, to, chunkSignal)).Body, to - from + 1);
      },
    });
  }

  private async get(live: Live, start: number, end: number, signal?: AbortSignal): Promise<GetObjectCommandOutput> {
    try {
      return await this.send<GetObjectCommandOutput>(new GetObjectCommand({ Bucket: this.opts.bucket, Key: live.bodyKey, Range: `bytes=${start}-${end}` }), signal);
    } catch (err) {
      // Superseded and swept since the index was read: the write we promised is gone.
      if (isMissing(err)) throw notFound();
      throw s3Error(this.opts.bucket, 'GET', err);
    }
  }

  /**
   * Sliding TTL: a read in the second half of an object's life renews it to the full maximum.
   * Conditional on the index we read, so a renewal never undoes a concurrent replacement.
   */
  private slideExpiry(live: Live): void {
    const now = Date.now();
    if (live.record.expiresAt - now >= this.opts.maxTtlMs / 2) return;
    // Without the index's ETag the rewrite could not be conditional; skipping one renewal is harmless.
    if (!live.indexETag) return;
    const record: IndexRecord = { ...live.record, expiresAt: Math.ceil((now + this.opts.maxTtlMs) / 1000) * 1000 };
    void this.putIndex(live.indexKey, record, live.indexETag).catch(() => undefined);
  }

  private putIndex(indexKey: string, record: IndexRecord, ifMatch?: string): Promise<unknown> {
    return this.send(
      new PutObjectCommand({ Bucket: this.opts.bucket, Key: indexKey, Body: JSON.stringify(record), ContentType: 'application/json', ...(ifMatch ? { IfMatch: ifMatch } : {}) }),
      AbortSignal.timeout(30_000),
    );
  }

  private deleteObject(key: string): Promise<unknown> {
    return this.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: key }), AbortSignal.timeout(30_000));
  }

  /** Deletes a superseded body after the grace period (a crash before then leaves it to the bucket's lifecycle rule). */
  private sweepLater(bodyKey: string): void {
    const timer = setTimeout(() => {
      this.sweeps.delete(timer);
      void this.deleteObject(bodyKey).catch(() => undefined);
    }, SUPERSEDED_GRACE_MS);
    timer.unref();
    this.sweeps.add(timer);
  }

  create(ns: string, key: CacheKey, headers: StoredHeaders, opts: CreateOptions): CacheWriter {
    const stored = prepareStoredHeaders(headers, opts.etag);
    const ttl = clampTtl(opts.ttlMs, this.opts.maxTtlMs);
    const indexKey = this.indexKey(ns, key);
    const tag = randomBytes(16).toString('hex');
    const bodyKey = `${indexKey}.${tag}.data`;
    // The SDK buffers one part per upload slot; this pipe adds a bounded cushion so a producer
    // (tar | zstd) keeps running while every slot is busy sending.
    const pipe = new PassThrough({ highWaterMark: 8 * MiB });
    let size = 0;
    let upload: Upload | undefined;
    let done: Promise<unknown> | undefined;
    const start = () => {
      if (done) return done;
      upload = new Upload({
        client: this.opts.client,
        params: { Bucket: this.opts.bucket, Key: bodyKey, Body: pipe, ...(stored['content-type'] ? { ContentType: stored['content-type'] } : {}) },
        queueSize: this.opts.uploadConcurrency,
        partSize: this.opts.uploadPartBytes,
        leavePartsOnError: false,
      });
      done = upload.done();
      done.catch(() => undefined);
      return done;
    };
    const failed = () => new Promise<never>((_, reject) => void start().catch((err: unknown) => reject(s3Error(this.opts.bucket, 'upload', err))));
    return new ObjectWriter(
      {
        write: async (chunk) => {
          start();
          size += chunk.length;
          if (pipe.write(chunk)) return;
          await Promise.race([waitForDrain(pipe), failed()]);
        },
        commit: async () => {
          start();
          pipe.end();
          try {
            await done;
          } catch (err) {
            throw s3Error(this.opts.bucket, 'upload', err);
          }
          const previous = await this.live(ns, key).catch(() => undefined);
          const storedAt = Date.now();
          const record: IndexRecord = { tag, size, expiresAt: Math.ceil((storedAt + ttl) / 1000) * 1000, storedAt, headers: stored };
          try {
            await this.putIndex(indexKey, record);
          } catch (err) {
            await this.deleteObject(bodyKey).catch(() => undefined);
            throw s3Error(this.opts.bucket, 'PUT index', err);
          }
          if (previous && previous.bodyKey !== bodyKey) this.sweepLater(previous.bodyKey);
        },
        discard: async () => {
          pipe.destroy();
          if (!upload) return;
          await upload.abort().catch(() => undefined);
          await done?.catch(() => undefined);
          // A small body may already have landed as a single PUT; nothing names it, but tidy up.
          await this.deleteObject(bodyKey).catch(() => undefined);
        },
      },
      opts.signal,
    );
  }

  private async removeLive(live: Live): Promise<void> {
    // Index first: the object stops being visible even if the body delete then fails.
    await this.deleteObject(live.indexKey);
    await this.deleteObject(live.bodyKey).catch(() => undefined);
  }

  async delete(ns: string, key: CacheKey): Promise<void> {
    const live = await this.live(ns, key, undefined, true);
    try {
      await this.removeLive(live);
    } catch (err) {
      throw s3Error(this.opts.bucket, 'DELETE', err);
    }
  }

  async stats(): Promise<CacheStats> {
    // Listing a shared bucket to count objects costs more than the answer is worth.
    throw new CacheError('stats-unavailable', 'the s3 cache does not report stats');
  }

  async listNamespaces(): Promise<string[]> {
    throw new CacheError('stats-unavailable', 'the s3 cache does not list namespaces');
  }

  async close(): Promise<void> {
    // Pending sweeps are dropped (lifecycle rules collect them); the client is shared and stays.
    for (const timer of this.sweeps) clearTimeout(timer);
    this.sweeps.clear();
  }

  describe(): string {
    return `s3:${this.opts.bucket}`;
  }
}

/** Builds `cache s3 {}` over a shared client. */
export function createS3Cache(opts: S3CacheOptions): BackendCache {
  return new BackendCache(new S3Backend(opts));
}
