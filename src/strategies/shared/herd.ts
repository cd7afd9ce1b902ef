import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { withClientAbort } from '../../http/request-abort.js';
import { scratchPath } from '../../util/scratch.js';
import { Spool, type SpoolSource } from './spool.js';

/** The answer one fill produces, which every member of its herd receives. */
export interface FillAnswer {
  status: number;
  headers: Record<string, string | string[]>;
  body: Readable;
  /** Exact body length when known (Content-Length kept for followers, and the spool's bound). */
  length?: number;
}

/** Bounds of a herd. */
export interface HerdLimits {
  /** Fills shared at once; a miss beyond it is served on its own, unshared. */
  maxFills: number;
  /** Bytes all spool files may reserve together; a fill that does not fit is served unshared. */
  spoolBudgetBytes: number;
  /** What a body without Content-Length reserves, and may grow to before its spool fails. */
  unknownLengthBytes: number;
}

const GiB = 1024 ** 3;
/** Defaults: enough for every realistic burst on the small machines hoard targets. */
export const DEFAULT_HERD_LIMITS: HerdLimits = { maxFills: 64, spoolBudgetBytes: 4 * GiB, unknownLengthBytes: 1 * GiB };

type Shared = { spool: Spool } | { unshared: FillAnswer } | { failed: Error };

interface Fill {
  /** Clients attached now (the leader included). */
  members: number;
  /** Owned by the fill, not by any client: aborted only when the last member leaves early. */
  abort: AbortController;
  ready: Promise<Shared>;
  spool?: Spool;
  /** An unshared answer goes to the leader only, once. */
  claimed: boolean;
}

/** Adapts an answer to what a spool records. */
function spoolSource(answer: FillAnswer): SpoolSource {
  return {
    statusCode: answer.status,
    headers: answer.headers,
    resume: () => answer.body.resume(),
    [Symbol.asyncIterator]: () => answer.body[Symbol.asyncIterator](),
  };
}

/** Sends an answer to one client (nothing shared). */
async function sendAnswer(answer: FillAnswer, res: ServerResponse): Promise<void> {
  res.writeHead(answer.status, answer.headers);
  await pipeline(answer.body, res).catch(() => res.destroy());
}

/**
 * One upstream fetch per herd: concurrent misses of one key share a single fill. The first miss
 * (the leader) starts `produce`; its answer is recorded to a spool file that every member,
 * leader included, reads with tail-follow while it grows, so followers get their first byte as
 * soon as the leader would. The fill belongs to the herd: a member leaving (the leader too)
 * never cancels it while anyone else reads; only when the last member left before the body was
 * whole is the upstream request aborted (and with it the cache copy discarded). Once the spool is
 * complete the key is forgotten, so later requests read the committed cache object.
 */
export class FillHerd {
  /**
   * Not a util/single-flight InFlight: a fill counts its members (the last one leaving early aborts
   * it), and a complete or aborted fill is passed over before its slot frees.
   */
  private readonly fills = new Map<string, Fill>();
  private reserved = 0;

  /** `dir` resolves the spool directory (created on first use). */
  constructor(
    private readonly dir: () => Promise<string>,
    private readonly limits: HerdLimits = DEFAULT_HERD_LIMITS,
  ) {}

  /** Fills running now (tests, metrics). */
  get active(): number {
    return this.fills.size;
  }

  /**
   * Serves `res` from the fill running for `key`, starting one with `produce` when none runs.
   * `produce` must answer rather than throw (an upstream failure is an answer too, so a herd
   * shares that as well); its signal aborts when the last member leaves early.
   */
  async serve(key: string, res: ServerResponse, produce: (signal: AbortSignal) => Promise<FillAnswer>): Promise<void> {
    const running = this.fills.get(key);
    // A complete spool is only waiting for its readers: a newcomer reads the committed object.
    if (running && !running.abort.signal.aborted && !running.spool?.complete) return this.attend(running, res, produce, false);
    if (this.fills.size >= this.limits.maxFills) return this.alone(res, produce);
    return this.attend(this.start(key, produce), res, produce, true);
  }

  private start(key: string, produce: (signal: AbortSignal) => Promise<FillAnswer>): Fill {
    const fill: Fill = { members: 0, abort: new AbortController(), claimed: false, ready: Promise.resolve({ failed: new Error('unset') }) };
    const forget = () => {
      if (this.fills.get(key) === fill) this.fills.delete(key);
    };
    fill.ready = (async (): Promise<Shared> => {
      const answer = await produce(fill.abort.signal);
      const bound = answer.length ?? this.limits.unknownLengthBytes;
      if (fill.abort.signal.aborted || this.reserved + bound > this.limits.spoolBudgetBytes) {
        forget();
        fill.abort.signal.addEventListener('abort', () => answer.body.destroy(), { once: true });
        return { unshared: answer };
      }
      this.reserved += bound;
      let spool: Spool;
      try {
        const file = scratchPath(await this.dir(), '', '.spool');
        spool = Spool.start(file, async () => spoolSource(answer), { accept: () => true, keepLength: answer.length !== undefined, maxBytes: bound });
      } catch (err) {
        this.reserved -= bound;
        throw err;
      }
      fill.spool = spool;
      void spool.finished().then(() => {
        this.reserved -= bound;
        forget();
        void spool.dispose();
      });
      return { spool };
    })().catch((err: unknown) => {
      forget();
      return { failed: err instanceof Error ? err : new Error(String(err)) };
    });
    this.fills.set(key, fill);
    return fill;
  }

  private async attend(fill: Fill, res: ServerResponse, produce: (signal: AbortSignal) => Promise<FillAnswer>, leader: boolean): Promise<void> {
    fill.members++;
    try {
      const shared = await fill.ready;
      if ('spool' in shared) return await shared.spool.serve(res);
      if ('unshared' in shared && leader && !fill.claimed) {
        fill.claimed = true;
        return await sendAnswer(shared.unshared, res);
      }
      if ('failed' in shared) {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' }).end(`fill failed: ${shared.failed.message}\n`);
        return;
      }
      // The leader's answer could not be shared (too large for the spool budget): fetch alone.
      return await this.alone(res, produce);
    } catch {
      // A spool that failed after the head: the response cannot be completed.
      res.destroy();
    } finally {
      fill.members--;
      if (fill.members === 0 && !fill.spool?.complete) fill.abort.abort();
    }
  }

  /** Serves one client with its own fill, nothing shared (the herd is full). */
  private async alone(res: ServerResponse, produce: (signal: AbortSignal) => Promise<FillAnswer>): Promise<void> {
    await withClientAbort(res, async (signal) => {
      const answer = await produce(signal);
      if (signal.aborted) return void answer.body.destroy();
      await sendAnswer(answer, res);
    });
  }
}
