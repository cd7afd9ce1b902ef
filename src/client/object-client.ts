import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { CacheError } from '../cache/errors.js';
import { parseKey } from '../cache/key.js';

/** Non-success HTTP answers that are not cache outcomes. */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpStatusError';
  }
}

/** Response headers as a plain lower-case map, minus per-transfer ones. */
export type ResponseHeaders = Record<string, string>;

const DROPPED = new Set(['date', 'transfer-encoding', 'connection', 'keep-alive', 'accept-ranges']);

function headersOf(res: Response): ResponseHeaders {
  const out: ResponseHeaders = {};
  res.headers.forEach((value, name) => {
    if (!DROPPED.has(name)) out[name] = value;
  });
  return out;
}

async function errorFor(res: Response, what: string): Promise<Error> {
  const text = (await res.text().catch(() => '')).trim();
  const detail = text ? `: ${text}` : '';
  switch (res.status) {
    case 404:
      return new CacheError('not-found', `${what} not found`);
    case 304:
      return new CacheError('not-modified', 'not modified', { headers: headersOf(res) });
    case 412:
      return new CacheError('precondition-failed', 'precondition failed');
    case 416: {
      const size = Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? NaN);
      return new CacheError('range-not-satisfiable', 'range not satisfiable', Number.isFinite(size) ? { size } : {});
    }
    case 501:
      return new CacheError('stats-unavailable', `not available${detail}`);
    default:
      return new HttpStatusError(res.status, `server answered ${res.status} ${res.statusText}${detail}`);
  }
}

/** Options of the object client. */
export interface ObjectClientOptions {
  /** Server base URL, e.g. http://127.0.0.1:8080 (trailing slashes ignored). */
  url: string;
  /** Sent as `Authorization` on every request when set. */
  authorization?: string | undefined;
  /** Called after each response head arrives (the CLI's debug log). */
  onResponse?: (method: string, url: string, status: number, ms: number) => void;
}

/** Conditional and range options of a read. */
export interface ReadOptions {
  ifMatch?: string;
  ifNoneMatch?: string;
  range?: string;
  ifRange?: string;
  signal?: AbortSignal;
}

/** Client for hoard's object API v1 (reference §2.8-2.9). Bodies stream both ways. */
export class ObjectClient {
  readonly base: string;

  constructor(private readonly opts: ObjectClientOptions) {
    this.base = opts.url.replace(/\/+$/, '');
  }

  /**
   * URL of an object. `key` is the 64-hex form or any text, hashed here exactly as the server
   * would (reference §2.1), so the URL always carries the hex form (§2.9): key text with `/` or
   * `%` in it never has to survive percent-encoding (the server refuses encoded slashes).
   */
  objectUrl(ns: string, key: string): string {
    return `${this.base}/api/v1/object/${encodeURIComponent(ns || 'default')}/${parseKey(key)}`;
  }

  private headers(extra: Record<string, string | undefined> = {}): Record<string, string> {
    const out: Record<string, string> = {};
    if (this.opts.authorization) out['authorization'] = this.opts.authorization;
    for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
    return out;
  }

  private async request(url: string, init: RequestInit): Promise<Response> {
    const started = Date.now();
    try {
      const res = await fetch(url, init);
      this.opts.onResponse?.(init.method ?? 'GET', url, res.status, Date.now() - started);
      return res;
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`cannot reach hoard at ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
  }

  /** HEAD: headers and size of an object. */
  async stat(ns: string, key: string, opts: ReadOptions = {}): Promise<{ headers: ResponseHeaders; size: number }> {
    const res = await this.request(this.objectUrl(ns, key), {
      method: 'HEAD',
      headers: this.headers({ 'if-match': opts.ifMatch, 'if-none-match': opts.ifNoneMatch }),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (res.status !== 200) throw await errorFor(res, 'cache object');
    return { headers: headersOf(res), size: Number(res.headers.get('content-length') ?? 0) };
  }

  /** GET: a streamed body with its status and headers. */
  async open(ns: string, key: string, opts: ReadOptions = {}): Promise<{ status: number; headers: ResponseHeaders; body: Readable }> {
    return this.openUrl(this.objectUrl(ns, key), opts, 'cache object');
  }

  /** GET any hoard URL with validators (used for snapshots too). */
  async openUrl(url: string, opts: ReadOptions = {}, what = 'object'): Promise<{ status: number; headers: ResponseHeaders; body: Readable }> {
    const res = await this.request(url, {
      headers: this.headers({ 'if-match': opts.ifMatch, 'if-none-match': opts.ifNoneMatch, range: opts.range, 'if-range': opts.ifRange }),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (res.status !== 200 && res.status !== 206) throw await errorFor(res, what);
    const body = res.body ? Readable.fromWeb(res.body as unknown as WebReadableStream) : Readable.from([]);
    return { status: res.status, headers: headersOf(res), body };
  }

  /**
   * Streams `body` into a new object. If reading `body` fails the request is aborted and the
   * server stores nothing; a server error status is reported in preference to the local symptom.
   */
  async create(ns: string, key: string, body: Readable, opts: { ttl?: string; etag?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<void> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let readError: Error | undefined;
    body.once('error', (err) => {
      readError = err;
      controller.abort(err);
    });
    // Header names are case-insensitive but object keys are not: merged as given, a caller's
    // `Content-Type` would sit next to our default `content-type` and fetch would send both
    // joined ("application/octet-stream, text/plain"). Lower-case first; the caller's value wins.
    const headers: Record<string, string | undefined> = { 'content-type': 'application/octet-stream' };
    for (const [name, value] of Object.entries(opts.headers ?? {})) headers[name.toLowerCase()] = value;
    // The ETag comes only from opts.etag (validated and quoted), as cachew's client does.
    delete headers['etag'];
    if (opts.etag) headers['etag'] = `"${opts.etag}"`;
    if (opts.ttl) headers['time-to-live'] = opts.ttl;
    try {
      const res = await this.request(this.objectUrl(ns, key), {
        method: 'POST',
        headers: this.headers(headers),
        body: Readable.toWeb(body) as unknown as BodyInit,
        duplex: 'half',
        signal: controller.signal,
      } as RequestInit);
      if (res.status !== 200) throw await errorFor(res, 'cache object');
      await res.body?.cancel();
    } catch (err) {
      if (readError) throw new Error(`upload aborted, nothing stored: ${readError.message}`);
      throw err;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** DELETE an object. */
  async delete(ns: string, key: string): Promise<void> {
    const res = await this.request(this.objectUrl(ns, key), { method: 'DELETE', headers: this.headers() });
    if (res.status !== 200) throw await errorFor(res, 'cache object');
  }

  /** Drops local copies of an object on the server. */
  async invalidate(ns: string, key: string): Promise<void> {
    const res = await this.request(`${this.objectUrl(ns, key)}/invalidate`, { method: 'POST', headers: this.headers() });
    if (res.status !== 200) throw await errorFor(res, 'cache object');
  }

  /** Totals of the server's cache. */
  async stats(): Promise<{ objects: number; size: number; capacity: number }> {
    const res = await this.request(`${this.base}/api/v1/stats`, { headers: this.headers() });
    if (res.status !== 200) throw await errorFor(res, 'stats');
    return (await res.json()) as { objects: number; size: number; capacity: number };
  }

  /** Namespaces holding objects. */
  async listNamespaces(): Promise<string[]> {
    const res = await this.request(`${this.base}/api/v1/namespaces`, { headers: this.headers() });
    if (res.status !== 200) throw await errorFor(res, 'namespaces');
    return (await res.json()) as string[];
  }
}
