import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CacheError } from '../cache/errors.js';
import { exactLength } from '../util/exact-length.js';
import { orderedChunks } from '../util/ordered-chunks.js';
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
  /**
   * A connection that sends nothing for this long fails the download (default 5 min, as
   * undici's body timeout): a half-open TCP connection must not hang a restore for ever.
   */
  idleTimeoutMs?: number;
}

/** The download: headers known after discovery, and the ordered body. */
export interface ParallelGetResult {
  status: number;
  /** Discovery headers with Content-Length set to the whole size and no Content-Range. */
  headers: ResponseHeaders;
  size: number | undefined;
  body: Readable;
}

function headersOf(res: IncomingMessage): ResponseHeaders {
  const out: ResponseHeaders = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

async function textOf(res: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    // An error page is shown to the user, never a body of any size.
    if (size < 4096) parts.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return Buffer.concat(parts).toString('utf8').slice(0, 4096).trim();
}

/**
 * Downloads `url` as `concurrency` parallel ranged GETs pinned to the discovery response's ETag
 * with If-Match (a changed object fails with 412 instead of splicing versions), emitting bytes
 * strictly in order. The chunk being emitted streams straight through while the ones after it
 * fill their own buffers, so memory stays at concurrency × chunk and the consumer starts with the
 * first bytes. Falls back to one plain stream when the server ignores ranges, the object fits in
 * one chunk, or no ETag exists to pin to. 404 → CacheError not-found.
 *
 * node:http rather than fetch: on a restore the client shares the CPU with zstd and tar, and
 * fetch's web streams cost about twice the CPU per byte (docs/decisions.md, "Restore client").
 */
export async function parallelGet(url: string, opts: ParallelGetOptions): Promise<ParallelGetResult> {
  const { concurrency, chunkBytes } = opts;
  if (!(chunkBytes > 0) || concurrency < 1 || concurrency > 1024) throw new Error('invalid parallel download parameters');
  const target = new URL(url);
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`unsupported URL ${url}`);
  const transport = target.protocol === 'https:' ? https : http;
  const agent = new transport.Agent({ keepAlive: true, maxSockets: concurrency });
  const attempts = opts.attempts ?? 4;
  const base = opts.headers ?? {};
  const idleMs = opts.idleTimeoutMs ?? 5 * 60_000;
  const get = (extra: Record<string, string>, signal?: AbortSignal) =>
    new Promise<IncomingMessage>((resolve, reject) => {
      const req = transport.get(target, { agent, headers: { ...base, ...extra }, ...(signal ? { signal } : {}) }, resolve);
      req.once('error', reject);
      // Covers the wait for headers and every gap in the body (the socket's idle timer); the
      // response then fails with the error, which fails the download.
      req.setTimeout(idleMs, () => req.destroy(new Error(`no data from ${target.host} for ${Math.round(idleMs / 1000)} s`)));
    });

  let discovery: IncomingMessage;
  try {
    discovery = await get(concurrency > 1 ? { range: `bytes=0-${chunkBytes - 1}` } : {}, opts.signal);
  } catch (err) {
    agent.destroy();
    throw err;
  }
  const fail = (err: Error): never => {
    discovery.destroy();
    agent.destroy();
    throw err;
  };
  const status = discovery.statusCode ?? 0;
  if (status === 404) fail(new CacheError('not-found', `not found: ${url}`));
  if (status === 416) {
    discovery.destroy();
    agent.destroy();
    return { status: 200, headers: { 'content-length': '0' }, size: 0, body: Readable.from([]) };
  }
  if (status !== 200 && status !== 206) {
    const text = await textOf(discovery).catch(() => '');
    fail(new Error(`server answered ${status}${text ? `: ${text}` : ''}`));
  }
  const headers = headersOf(discovery);
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(headers['content-range'] ?? '');
  const etag = headers['etag'];
  /** One plain stream, checked against `size` when known; `described` are the headers reported. */
  const whole = (res: IncomingMessage, size: number | undefined, described: ResponseHeaders = headers): ParallelGetResult => {
    const body = size === undefined ? res : exactLength(res, size, 'download');
    body.once('close', () => agent.destroy());
    return { status: 200, headers: described, size, body };
  };
  if (status === 200 || !range) {
    const size = headers['content-length'] ? Number(headers['content-length']) : undefined;
    return whole(discovery, size);
  }
  const total = Number(range[3]);
  delete headers['content-range'];
  headers['content-length'] = String(total);
  if (total <= chunkBytes) return whole(discovery, total);
  if (!etag) {
    // Nothing to pin ranges to: one plain GET, described by its own headers (the object may
    // have changed since the discovery answer, so its length must not be trusted here).
    discovery.destroy();
    const res = await get({}, opts.signal).catch((err: Error) => fail(err));
    if (res.statusCode !== 200) {
      res.destroy();
      fail(new Error(`server answered ${res.statusCode}`));
    }
    const own = headersOf(res);
    return whole(res, own['content-length'] ? Number(own['content-length']) : undefined, own);
  }

  const chunks = Math.ceil(total / chunkBytes);
  const lengthOf = (i: number) => Math.min(chunkBytes, total - i * chunkBytes);
  // A chunk waiting its turn keeps reading into its own buffer (up to its length), so parallel
  // chunks download while earlier ones are still being consumed.
  const streamed = (res: IncomingMessage, i: number): Readable => {
    const buffer = new PassThrough({ readableHighWaterMark: lengthOf(i) });
    pipeline(res, buffer).catch(() => undefined);
    return exactLength(buffer, lengthOf(i), `chunk ${i}`);
  };
  const fetchChunk = async (i: number, signal: AbortSignal): Promise<Readable> => {
    if (i === 0) return streamed(discovery, 0);
    const start = i * chunkBytes;
    const end = start + lengthOf(i) - 1;
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (signal.aborted) throw new Error('download cancelled');
      const res = await get({ range: `bytes=${start}-${end}`, 'if-match': etag }, signal);
      if (res.statusCode === 412) {
        res.destroy();
        throw new Error('object changed during download (ETag no longer matches)');
      }
      const cr = res.headers['content-range'] ?? '';
      if (res.statusCode !== 206 || !cr.startsWith(`bytes ${start}-`) || res.headers['etag'] !== etag) {
        res.destroy();
        lastError = new Error(`chunk ${i}: unexpected answer ${res.statusCode} ${cr}`);
        continue;
      }
      return streamed(res, i);
    }
    throw lastError ?? new Error(`chunk ${i} failed`);
  };
  const body = orderedChunks({
    count: chunks,
    concurrency,
    fetch: fetchChunk,
    signal: opts.signal,
    onClose: () => {
      discovery.destroy();
      agent.destroy();
    },
  });
  return { status: 200, headers, size: total, body };
}
