import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import type { CacheKey } from '../../cache/key.js';
import { failureAnswer } from '../../http/error-answer.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import { scratchPath } from '../../util/scratch.js';
import { InFlight } from '../../util/single-flight.js';
import { Spool, SpoolUnavailableError } from '../shared/spool.js';
import { sendAnswer } from './artifacts.js';
import type { Mirrors } from './mirrors.js';
import type { Repository } from './repository.js';

/** What a cold serve needs of the mirror lifecycle: count itself, and ask for the mirror after. */
export type ColdServeMirrors = Pick<Mirrors, 'coldActivity' | 'restoreAfterColdServe'>;

/**
 * Snapshots served while the mirror is not Ready (reference git §4.3): straight from the cache,
 * without waiting for any clone, so a new replica serves at once from the shared tier.
 */
export class ColdServes {
  /** Plain cold GETs in flight: one read of the cache per repository, whose live spool everyone follows. */
  private readonly coldReads = new InFlight<Spool>();

  constructor(
    private readonly cache: Cache,
    private readonly logger: Logger,
    private readonly scratchRoot: string,
    private readonly mirrors: ColdServeMirrors,
  ) {}

  /**
   * Serves a cached snapshot while the mirror is not Ready, without waiting for any clone. A
   * plain GET joins the repository's single read of the cache (the first caller starts it; the
   * rest stream the local spool as it fills), so a burst of cold requests reads the shared tier
   * once, whether or not an earlier read left a copy in the near tier. Ranged and conditional
   * requests always go to the cache directly, in parallel: a spool can only replay the whole body.
   * Returns false when no snapshot is cached.
   */
  async serve(req: IncomingMessage, res: ServerResponse, repo: Repository, key: CacheKey): Promise<boolean> {
    const forced = { 'content-type': 'application/zstd' };
    const url = repo.upstreamURL;
    const h = req.headers;
    const direct = h.range !== undefined || h['if-match'] !== undefined || h['if-none-match'] !== undefined || h['if-range'] !== undefined;
    const end = this.mirrors.coldActivity.started(url);
    let found = false;
    try {
      if (direct) {
        found = await sendCacheObject(this.cache, key, req, res, forced);
      } else {
        const spool = this.coldReads.join(
          url,
          () =>
            Spool.start(
              scratchPath(this.scratchRoot, 'cold-'),
              async () => {
                const opened = await this.cache.open(key);
                return Object.assign(opened.body, { statusCode: 200, headers: { ...opened.headers, ...forced, 'accept-ranges': 'bytes' } });
              },
              { keepLength: true },
            ),
          (started) => started.finished(),
          (done) => void done.dispose(),
        );
        try {
          await spool.serve(res);
          found = true;
        } catch (err) {
          if (!(err instanceof SpoolUnavailableError)) throw err;
          if (isCacheError(err.cause, 'not-found')) return false;
          if (!res.headersSent) {
            this.logger.warn({ err: err.cause ?? err, upstream: url }, 'snapshot read from the cache failed');
            sendAnswer(res, failureAnswer(err.cause ?? err, 'snapshot read from the cache'));
          }
          return true;
        }
      }
    } finally {
      end(found);
    }
    if (found) this.mirrors.restoreAfterColdServe(repo);
    return found;
  }
}
