import { EventEmitter, once } from 'node:events';
import { promises as fs } from 'node:fs';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import path from 'node:path';
import { scratchPath } from '../../util/scratch.js';
import { waitForDrain } from '../../util/tee.js';
import { relayableHeaders } from '../../http/upstream.js';

/** What a spool records: a response head and a body (an upstream IncomingMessage qualifies). */
export interface SpoolSource extends AsyncIterable<unknown> {
  statusCode?: number | undefined;
  headers: IncomingHttpHeaders;
  resume(): unknown;
}

/** The spool could not produce a response head; the caller should go upstream itself. */
export class SpoolUnavailableError extends Error {}

const READ_CHUNK = 1 << 20;

/** How a spool records. */
export interface SpoolOptions {
  /** The source's Content-Length is the whole body (a cached object), so followers get it too. */
  keepLength?: boolean;
  /**
   * Statuses worth recording (default 2xx). Another status fails the spool before any head is
   * served, so readers go upstream themselves (git); the caching handler records every answer,
   * so a herd shares an error as well.
   */
  accept?: (status: number) => boolean;
  /** Bound of the file: a body growing past it fails the recording (default: no bound). */
  maxBytes?: number;
}

const is2xx = (status: number) => status >= 200 && status <= 299;

/**
 * One upstream response recorded to a file while it streams, so identical requests share a
 * single upstream transfer and every reader follows the file as it grows (tail-follow), not after
 * it is complete. The upstream request belongs to the spool, not to the first client: a client
 * that disconnects does not truncate the others. Used by git (identical requests during a clone,
 * cold snapshot reads) and by the generic caching handler (one upstream fetch per herd).
 */
export class Spool {
  private status: number | undefined;
  private headers: Record<string, string | string[]> | undefined;
  private size = 0;
  private done = false;
  private failure: Error | undefined;
  private readers = 0;
  private readonly events = new EventEmitter();
  private recording: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly opts: SpoolOptions,
  ) {
    this.events.setMaxListeners(0);
  }

  /**
   * Starts recording the response `fetch` yields into `file`, which must not exist yet (each
   * spool owns its file: a reader of one spool must never see another spool's bytes).
   */
  static start(file: string, fetch: () => Promise<SpoolSource>, opts: SpoolOptions = {}): Spool {
    const spool = new Spool(file, opts);
    spool.recording = spool.record(fetch);
    return spool;
  }

  private async record(fetch: () => Promise<SpoolSource>): Promise<void> {
    let handle: fs.FileHandle | undefined;
    try {
      await fs.mkdir(path.dirname(this.file), { recursive: true });
      // 'wx': never truncate a file another spool's readers may still be reading.
      handle = await fs.open(this.file, 'wx');
      const upstream = await fetch();
      const status = upstream.statusCode ?? 502;
      if (!(this.opts.accept ?? is2xx)(status)) {
        upstream.resume();
        throw new SpoolUnavailableError(`upstream answered ${status}`);
      }
      this.status = status;
      this.headers = relayableHeaders(upstream.headers);
      if (!this.opts.keepLength) delete this.headers['content-length'];
      this.events.emit('progress');
      const max = this.opts.maxBytes ?? Infinity;
      for await (const chunk of upstream) {
        if (this.size + (chunk as Buffer).length > max) throw new Error(`spool ${path.basename(this.file)} exceeded its bound of ${max} bytes`);
        await handle.write(chunk as Buffer);
        this.size += (chunk as Buffer).length;
        this.events.emit('progress');
      }
      this.done = true;
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
    } finally {
      await handle?.close().catch(() => undefined);
      this.events.emit('progress');
    }
  }

  /** Resolves when the recording ended, successfully or not. */
  finished(): Promise<void> {
    return this.recording;
  }

  /** True once the whole body is recorded. */
  get complete(): boolean {
    return this.done;
  }

  /** True when the recording failed (callers forward upstream instead). */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Number of clients streaming from this spool now. */
  get activeReaders(): number {
    return this.readers;
  }

  /**
   * Streams the recorded response to `res`, following the recording as it grows. Throws
   * SpoolUnavailableError when the recording failed before a response head existed; a failure
   * after the head destroys the client connection (a half-sent response cannot be repaired).
   */
  async serve(res: ServerResponse): Promise<void> {
    this.readers++;
    let handle: fs.FileHandle | undefined;
    try {
      while (this.status === undefined && !this.failure) await once(this.events, 'progress');
      if (this.status === undefined) throw new SpoolUnavailableError(this.failure?.message ?? 'spool failed', { cause: this.failure });
      res.writeHead(this.status, this.headers);
      handle = await fs.open(this.file, 'r');
      const buffer = Buffer.allocUnsafe(READ_CHUNK);
      let position = 0;
      for (;;) {
        if (res.destroyed) return;
        if (position < this.size) {
          const { bytesRead } = await handle.read(buffer, 0, Math.min(READ_CHUNK, this.size - position), position);
          if (bytesRead === 0) {
            // The file is shorter than what was recorded into it (removed or truncated under us):
            // retrying would spin forever, and the response cannot be completed.
            res.destroy(new Error(`spool file ${this.file} lost bytes at offset ${position} of ${this.size}`));
            return;
          }
          position += bytesRead;
          if (!res.write(Buffer.from(buffer.subarray(0, bytesRead)))) await waitForDrain(res);
          continue;
        }
        if (this.done) break;
        if (this.failure) {
          res.destroy(this.failure);
          return;
        }
        await once(this.events, 'progress');
      }
      res.end();
    } finally {
      this.readers--;
      this.events.emit('reader-done');
      await handle?.close().catch(() => undefined);
    }
  }

  /** Waits until no client is reading, then removes the file. */
  async dispose(): Promise<void> {
    while (this.readers > 0) await once(this.events, 'reader-done');
    await fs.rm(this.file, { force: true });
  }
}

/** The spools of one repository while it is being cloned. */
export class SpoolSet {
  /**
   * Not a util/single-flight InFlight: a spool stays after its recording ends (it serves until the
   * clone is done), a failed one is replaced under its key, and the set is bounded and closed.
   */
  private readonly spools = new Map<string, Spool>();
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly maxSpools = 64,
  ) {}

  /** The spool for `key`, started with `fetch` when new; undefined when spooling is closed or full. */
  acquire(key: string, fetch: () => Promise<SpoolSource>): Spool | undefined {
    if (this.closed) return undefined;
    const existing = this.spools.get(key);
    if (existing && !existing.failed) return existing;
    if (this.spools.size >= this.maxSpools && !existing) return undefined;
    // A fresh file per spool: readers of a failed spool keep reading (and then failing on) its own
    // bytes while the retry records elsewhere.
    const spool = Spool.start(scratchPath(this.dir, `${key}-`, '.spool'), fetch);
    this.spools.set(key, spool);
    if (existing) void existing.dispose();
    return spool;
  }

  /** Refuses new lookups, waits for readers and deletes every spool file. */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.spools.values()];
    this.spools.clear();
    await Promise.all(all.map((s) => s.dispose()));
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
