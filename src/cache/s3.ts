import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { CacheStats, CacheWriter, CreateOptions, OpenResult, StatResult } from './cache.js';
import { BackendCache, ObjectWriter, clampTtl, type Backend } from './backend.js';
import { checkConditions, resolveRange, type Conditions, type ReadConditions } from './conditional.js';
import { CacheError, notFound } from './errors.js';
import { headersForRead, prepareStoredHeaders, type StoredHeaders } from './headers.js';
import type { CacheKey } from './key.js';
import { isMissing, isPreconditionFailed } from './s3-client.js';
import { orderedChunks } from '../util/ordered-chunks.js';

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
 * The mutable half of an object, in `<data key>.meta`. An object is committed only once this
 * companion exists and names the data object's tag: a data object without it (a crash between
 * the two writes, or a writer still finishing) is invisible.
 */
interface Companion {
  tag: string;
  expiresAt: number;
  headers: StoredHeaders;
}

/** What a HEAD of data + companion established about a live object. */
interface Live {
  dataKey: string;
  size: number;
  /** S3's own ETag of the data object, used to pin body reads to this exact version. */
  s3ETag: string;
  companion: Companion;
}

function encodeHeaders(headers: StoredHeaders): string {
  // S3 user metadata travels as HTTP headers: keep it ASCII whatever the stored headers hold.
  return Buffer.from(JSON.stringify(headers)).toString('base64url');
}

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

function s3Error(action: string, err: unknown): CacheError | Error {
  if (err instanceof CacheError) return err;
  const e = err as { name?: string; message?: string };
  return new Error(`S3 ${action} failed: ${e?.name ?? 'error'}: ${e?.message ?? String(err)}`);
}

/**
 * Shared authoritative tier on S3 (reference §3.3): streaming multipart writes with bounded
 * memory, a companion object that commits each write, conditionals evaluated against hoard's
 * ETag, and body reads pinned to the S3 version that was HEADed.
 */
class S3Backend implements Backend {
  constructor(private readonly opts: S3CacheOptions) {}

  private dataKey(ns: string, key: CacheKey): string {
    return `${ns ? `${ns}/` : ''}${key.slice(0, 2)}/${key}`;
  }

  private async live(ns: string, key: CacheKey, signal?: AbortSignal): Promise<Live> {
    const dataKey = this.dataKey(ns, key);
    const { client, bucket } = this.opts;
    const [head, meta] = await Promise.allSettled([
      client.send(new HeadObjectCommand({ Bucket: bucket, Key: dataKey }), signal ? { abortSignal: signal } : {}),
      client.send(new GetObjectCommand({ Bucket: bucket, Key: `${dataKey}.meta` }), signal ? { abortSignal: signal } : {}).then((r) => readSmall(r.Body)),
    ]);
    if (head.status === 'rejected') {
      if (isMissing(head.reason)) throw notFound();
      throw s3Error('HEAD', head.reason);
    }
    if (meta.status === 'rejected') {
      if (isMissing(meta.reason)) throw notFound();
      throw s3Error('GET companion', meta.reason);
    }
    let companion: Companion;
    try {
      companion = JSON.parse(meta.value) as Companion;
    } catch {
      throw notFound();
    }
    if (head.value.Metadata?.['tag'] !== companion.tag) throw notFound();
    if (companion.expiresAt <= Date.now()) {
      void this.remove(dataKey).catch(() => undefined);
      throw notFound();
    }
    return { dataKey, size: head.value.ContentLength ?? 0, s3ETag: head.value.ETag ?? '', companion };
  }

  async stat(ns: string, key: CacheKey, cond: Conditions): Promise<StatResult> {
    const live = await this.live(ns, key);
    checkConditions(cond, live.companion.headers);
    return { headers: headersForRead(live.companion.headers, live.size), size: live.size };
  }

  async open(ns: string, key: CacheKey, cond: ReadConditions & { signal?: AbortSignal }): Promise<OpenResult> {
    const live = await this.live(ns, key, cond.signal);
    const stored = live.companion.headers;
    checkConditions(cond, stored);
    const range = resolveRange(cond, stored['etag'], live.size);
    this.slideExpiry(live);
    if (!range) {
      const body = await this.body(live, 0, live.size - 1, live.size > this.opts.downloadPartBytes, cond.signal);
      return { status: 200, headers: headersForRead(stored, live.size), size: live.size, body };
    }
    const length = range.end - range.start + 1;
    const headers = headersForRead(stored, length);
    headers['content-range'] = `bytes ${range.start}-${range.end}/${live.size}`;
    const body = await this.body(live, range.start, range.end, length >= PARALLEL_RANGE_MIN, cond.signal);
    return { status: 206, headers, size: live.size, body };
  }

  /** Bytes `start..end` of the HEADed version; parallel sub-range GETs when `parallel` and allowed. */
  private async body(live: Live, start: number, end: number, parallel: boolean, signal?: AbortSignal): Promise<Readable> {
    if (live.size === 0) return new PassThrough().end();
    const length = end - start + 1;
    const concurrency = this.opts.downloadConcurrency;
    if (!parallel || concurrency <= 1) return this.rangeStream(live, start, end, signal);
    const part = Math.min(this.opts.downloadPartBytes, Math.max(MIN_SUBRANGE, Math.ceil(length / concurrency)));
    const count = Math.ceil(length / part);
    // The first sub-range's answer is awaited before returning so a vanished object fails the
    // open, not the body; its bytes are read once the consumer asks for them.
    const firstEnd = Math.min(end, start + part - 1);
    const first = await this.get(live, start, firstEnd, signal);
    return orderedChunks({
      count,
      concurrency,
      signal,
      onClose: () => (first.Body as Readable).destroy(),
      fetch: async (i, chunkSignal) => {
        if (i === 0) return readRange(first.Body, firstEnd - start + 1);
        const from = start + i * part;
        const to = Math.min(end, from + part - 1);
        return readRange((await this.get(live, from, to, chunkSignal)).Body, to - from + 1);
      },
    });
  }

  private async get(live: Live, start: number, end: number, signal?: AbortSignal) {
    try {
      return await this.opts.client.send(
        new GetObjectCommand({ Bucket: this.opts.bucket, Key: live.dataKey, Range: `bytes=${start}-${end}`, IfMatch: live.s3ETag }),
        signal ? { abortSignal: signal } : {},
      );
    } catch (err) {
      // Replaced or removed since the HEAD: the version we promised is gone.
      if (isMissing(err) || isPreconditionFailed(err)) throw notFound();
      throw s3Error('GET', err);
    }
  }

  private async rangeStream(live: Live, start: number, end: number, signal?: AbortSignal): Promise<Readable> {
    const res = await this.get(live, start, end, signal);
    return res.Body as Readable;
  }

  /** Sliding TTL: a read in the second half of an object's life renews it to the full maximum. */
  private slideExpiry(live: Live): void {
    const now = Date.now();
    if (live.companion.expiresAt - now >= this.opts.maxTtlMs / 2) return;
    const companion: Companion = { ...live.companion, expiresAt: Math.ceil((now + this.opts.maxTtlMs) / 1000) * 1000 };
    void this.putCompanion(live.dataKey, companion).catch(() => undefined);
  }

  private putCompanion(dataKey: string, companion: Companion): Promise<unknown> {
    return this.opts.client.send(
      new PutObjectCommand({ Bucket: this.opts.bucket, Key: `${dataKey}.meta`, Body: JSON.stringify(companion), ContentType: 'application/json' }),
      { abortSignal: AbortSignal.timeout(30_000) },
    );
  }

  /** Removes the data object only if it is still the one `tag` wrote (a concurrent writer's survives). */
  private async removeIfOurs(dataKey: string, tag: string): Promise<void> {
    try {
      const head = await this.opts.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: dataKey }), { abortSignal: AbortSignal.timeout(30_000) });
      if (head.Metadata?.['tag'] !== tag) return;
      await this.opts.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: dataKey }), { abortSignal: AbortSignal.timeout(30_000) });
    } catch {
      // Best effort: without a companion naming its tag the object is invisible anyway.
    }
  }

  create(ns: string, key: CacheKey, headers: StoredHeaders, opts: CreateOptions): CacheWriter {
    const stored = prepareStoredHeaders(headers, opts.etag);
    const ttl = clampTtl(opts.ttlMs, this.opts.maxTtlMs);
    const dataKey = this.dataKey(ns, key);
    const tag = randomBytes(16).toString('hex');
    // The SDK buffers one part per upload slot; this pipe adds a bounded cushion so a producer
    // (tar | zstd) keeps running while every slot is busy sending.
    const pipe = new PassThrough({ highWaterMark: 8 * MiB });
    let upload: Upload | undefined;
    let done: Promise<unknown> | undefined;
    const start = () => {
      if (done) return done;
      upload = new Upload({
        client: this.opts.client,
        params: {
          Bucket: this.opts.bucket,
          Key: dataKey,
          Body: pipe,
          Metadata: { tag, headers: encodeHeaders(stored) },
          ...(stored['content-type'] ? { ContentType: stored['content-type'] } : {}),
        },
        queueSize: this.opts.uploadConcurrency,
        partSize: this.opts.uploadPartBytes,
        leavePartsOnError: false,
      });
      done = upload.done();
      done.catch(() => undefined);
      return done;
    };
    const failed = () => new Promise<never>((_, reject) => void start().catch((err: unknown) => reject(s3Error('upload', err))));
    return new ObjectWriter(
      {
        write: async (chunk) => {
          start();
          if (pipe.write(chunk)) return;
          await Promise.race([new Promise<void>((resolve) => pipe.once('drain', () => resolve())), failed()]);
        },
        commit: async () => {
          start();
          pipe.end();
          try {
            await done;
          } catch (err) {
            throw s3Error('upload', err);
          }
          const companion: Companion = { tag, expiresAt: Math.ceil((Date.now() + ttl) / 1000) * 1000, headers: stored };
          try {
            await this.putCompanion(dataKey, companion);
          } catch (err) {
            await this.removeIfOurs(dataKey, tag);
            throw s3Error('PUT companion', err);
          }
        },
        discard: async () => {
          pipe.destroy();
          if (!upload) return;
          await upload.abort().catch(() => undefined);
          await done?.catch(() => undefined);
          // A small body may already have landed as a single PUT; it has no companion, but tidy up.
          await this.removeIfOurs(dataKey, tag);
        },
      },
      opts.signal,
    );
  }

  private async remove(dataKey: string): Promise<void> {
    const { client, bucket } = this.opts;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `${dataKey}.meta` }));
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: dataKey }));
  }

  async delete(ns: string, key: CacheKey): Promise<void> {
    const live = await this.live(ns, key);
    try {
      // Companion first: the object stops being visible even if the data delete then fails.
      await this.remove(live.dataKey);
    } catch (err) {
      throw s3Error('DELETE', err);
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
    // The client is shared with other consumers; it lives as long as the process.
  }

  describe(): string {
    return `s3:${this.opts.bucket}`;
  }
}

/** Builds `cache s3 {}` over a shared client. */
export function createS3Cache(opts: S3CacheOptions): BackendCache {
  return new BackendCache(new S3Backend(opts));
}
