import { Readable } from 'node:stream';
import { CacheError } from '../cache/errors.js';
import type { ResponseHeaders } from './object-client.js';

/** Options of a parallel ranged download. */
export interface ParallelGetOptions {
  /** Chunks in flight at once (including the discovery request). */
  concurrency: number;
  chunkBytes: number;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Attempts per chunk before giving up (a balancer may send a chunk to a replica without ranges). */
  attempts?: number;
}

/** The download: headers known after discovery, and the ordered body. */
export interface ParallelGetResult {
  status: number;
  /** Discovery headers with Content-Length set to the whole size and no Content-Range. */
  headers: ResponseHeaders;
  size: number | undefined;
  body: Readable;
}

function headersOf(res: Response): ResponseHeaders {
  const out: ResponseHeaders = {};
  res.headers.forEach((v, k) => {
    out[k] = v;
  });
  return out;
}

async function readExactly(res: Response, expected: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(expected);
  let filled = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    if (filled + chunk.length > expected) throw new Error('read more than expected for a chunk');
    buf.set(chunk, filled);
    filled += chunk.length;
  }
  if (filled !== expected) throw new Error(`chunk ended early: ${filled} of ${expected} bytes`);
  return buf;
}

/**
 * Downloads `url` as `concurrency` parallel ranged GETs pinned to the discovery response's ETag
 * with If-Match (a changed object fails with 412 instead of splicing versions), emitting bytes
 * strictly in order. At most `concurrency` chunks are buffered or in flight, so memory stays at
 * concurrency × chunk. Falls back to one plain stream when the server ignores ranges, the object
 * fits in one chunk, or no ETag exists to pin to. 404 → CacheError not-found.
 */
export async function parallelGet(url: string, opts: ParallelGetOptions): Promise<ParallelGetResult> {
  const { concurrency, chunkBytes } = opts;
  if (!(chunkBytes > 0) || concurrency < 1 || concurrency > 1024) throw new Error('invalid parallel download parameters');
  const attempts = opts.attempts ?? 4;
  const base = opts.headers ?? {};
  const init = (extra: Record<string, string>): RequestInit => ({ headers: { ...base, ...extra }, ...(opts.signal ? { signal: opts.signal } : {}) });
  const discovery = await fetch(url, init(concurrency > 1 ? { range: `bytes=0-${chunkBytes - 1}` } : {}));
  if (discovery.status === 404) {
    await discovery.body?.cancel();
    throw new CacheError('not-found', `not found: ${url}`);
  }
  if (discovery.status === 416) {
    await discovery.body?.cancel();
    return { status: 200, headers: { 'content-length': '0' }, size: 0, body: Readable.from([]) };
  }
  if (discovery.status !== 200 && discovery.status !== 206) {
    const text = (await discovery.text().catch(() => '')).trim();
    throw new Error(`server answered ${discovery.status}${text ? `: ${text}` : ''}`);
  }
  const headers = headersOf(discovery);
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers['content-range'] ?? '');
  const etag = headers['etag'];
  const streamWhole = (res: Response, size: number | undefined): ParallelGetResult => ({
    status: 200,
    headers,
    size,
    body: Readable.fromWeb(res.body as never),
  });
  if (discovery.status === 200 || !range) {
    const size = headers['content-length'] ? Number(headers['content-length']) : undefined;
    return streamWhole(discovery, size);
  }
  const total = Number(range[3]);
  delete headers['content-range'];
  headers['content-length'] = String(total);
  if (total <= chunkBytes) return { status: 200, headers, size: total, body: Readable.fromWeb(discovery.body as never) };
  if (!etag) {
    await discovery.body?.cancel();
    const whole = await fetch(url, init({}));
    if (whole.status !== 200) throw new Error(`server answered ${whole.status}`);
    return streamWhole(whole, total);
  }

  const chunks = Math.ceil(total / chunkBytes);
  const lengthOf = (i: number) => Math.min(chunkBytes, total - i * chunkBytes);
  const fetchChunk = async (i: number): Promise<Buffer> => {
    const start = i * chunkBytes;
    const end = start + lengthOf(i) - 1;
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (opts.signal?.aborted) throw new Error('download cancelled');
      const res: Response = await fetch(url, init({ range: `bytes=${start}-${end}`, 'if-match': etag }));
      if (res.status === 412) {
        await res.body?.cancel();
        throw new Error('object changed during download (ETag no longer matches)');
      }
      const cr = res.headers.get('content-range') ?? '';
      if (res.status !== 206 || !cr.startsWith(`bytes ${start}-`) || res.headers.get('etag') !== etag) {
        await res.body?.cancel();
        lastError = new Error(`chunk ${i}: unexpected answer ${res.status} ${cr}`);
        continue;
      }
      return readExactly(res, lengthOf(i));
    }
    throw lastError ?? new Error(`chunk ${i} failed`);
  };

  const inflight = new Map<number, Promise<Buffer>>();
  let next = 1;
  const fill = () => {
    while (next < chunks && inflight.size < concurrency - 1) {
      const p = fetchChunk(next);
      p.catch(() => undefined);
      inflight.set(next, p);
      next++;
    }
  };
  async function* ordered(): AsyncGenerator<Buffer> {
    fill();
    yield await readExactly(discovery, lengthOf(0));
    for (let i = 1; i < chunks; i++) {
      const p = inflight.get(i);
      if (!p) throw new Error(`chunk ${i} was never requested`);
      const buf = await p;
      inflight.delete(i);
      fill();
      yield buf;
    }
  }
  return { status: 200, headers, size: total, body: Readable.from(ordered(), { objectMode: false }) };
}
