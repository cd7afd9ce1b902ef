import { createReadStream, promises as fs } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import type { CacheKey } from '../../cache/key.js';
import { sendText } from '../../http/router.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import { holdingConnection } from '../../http/hold-connection.js';
import { withClientAbort } from '../../http/request-abort.js';
import { scratchPath } from '../../util/scratch.js';
import { COMMIT_SHA, GENERATION_TIMEOUT_MS, bundleKey, mirrorNotReadyAnswer, sendAnswer } from './artifacts.js';
import type { Mirrors } from './mirrors.js';
import type { Repository } from './repository.js';

const BUNDLE_HEADERS = { 'content-type': 'application/x-git-bundle' };

/** What delta bundles need. */
export interface BundleOptions {
  cache: Cache;
  logger: Logger;
  scratchRoot: string;
  /** `bundle-cache-ttl`. */
  bundleTtlMs: number;
}

/**
 * Delta bundles (reference git §2.5): `snapshot.bundle?base=<commit>` brings a snapshot taken at
 * `base` up to the mirror's HEAD; cached per base for bundle-cache-ttl.
 */
export class BundleService {
  constructor(
    private readonly opts: BundleOptions,
    private readonly mirrors: Pick<Mirrors, 'ensureReady'>,
  ) {}

  async serve(req: IncomingMessage, res: ServerResponse, repo: Repository, base: string): Promise<void> {
    if (!COMMIT_SHA.test(base)) return sendText(res, 400, 'base must be a full lowercase commit SHA (40 or 64 hex)');
    const key = bundleKey(repo.upstreamURL, base);
    if (await sendCacheObject(this.opts.cache, key, req, res, BUNDLE_HEADERS)) return;
    // HEAD answers from what is cached: producing a bundle (and fetching upstream) for a request
    // that discards the body would be all cost and no use.
    if (req.method === 'HEAD') return sendText(res, 404, 'Bundle not cached');
    await withClientAbort(res, (signal) => this.serveReady(req, res, repo, base, key, signal));
  }

  /** A bundle not cached: make the mirror Ready, freshen it once, create, cache and send the bundle. */
  private async serveReady(req: IncomingMessage, res: ServerResponse, repo: Repository, base: string, key: CacheKey, signal: AbortSignal): Promise<void> {
    try {
      await holdingConnection(res, () => this.mirrors.ensureReady(repo, signal));
    } catch (err) {
      return sendAnswer(res, mirrorNotReadyAnswer(err));
    }
    const hasBase = () => repo.git(['-C', repo.mirrorDir, 'cat-file', '-e', `${base}^{commit}`], { timeoutMs: 30_000 }).then(() => true, () => false);
    let head = await repo.head();
    let freshenFailed = false;
    try {
      if (head === base) await repo.fetch({ verified: true, signal });
      // An unknown base may be a commit upstream has and the mirror has not fetched yet: the
      // repository's own freshness check (rate-limited to one ls-remote per ref-check-interval)
      // decides whether a fetch could bring it.
      else if (!(await hasBase()) && (await repo.refsStale())) await repo.fetch({ signal });
    } catch (err) {
      freshenFailed = true;
      this.opts.logger.warn({ err, upstream: repo.upstreamURL }, 'bundle freshen failed');
    }
    head = await repo.head();
    const baseKnown = await hasBase();
    if (freshenFailed && (head === base || !baseKnown)) return sendText(res, 404, 'Bundle not available: could not verify the mirror is up to date');
    if (!baseKnown) return sendText(res, 404, 'Bundle not available: base commit unknown');
    if (head === base) {
      res.writeHead(204).end();
      return;
    }
    const file = scratchPath(this.opts.scratchRoot, 'bundle-', '.bundle');
    try {
      await fs.mkdir(this.opts.scratchRoot, { recursive: true });
      const headRef = (await repo.git(['-C', repo.mirrorDir, 'symbolic-ref', '-q', 'HEAD'], { timeoutMs: 30_000 }).catch(() => 'HEAD')).trim() || 'HEAD';
      await repo.git(['-C', repo.mirrorDir, 'bundle', 'create', '-q', file, headRef, `^${base}`], { timeoutMs: GENERATION_TIMEOUT_MS, signal });
      await pipeline(createReadStream(file), this.opts.cache.create(key, BUNDLE_HEADERS, { ttlMs: this.opts.bundleTtlMs }));
    } catch (err) {
      this.opts.logger.warn({ err, upstream: repo.upstreamURL }, 'bundle creation failed');
      return sendText(res, 404, 'Bundle not available');
    } finally {
      await fs.rm(file, { force: true });
    }
    if (!(await sendCacheObject(this.opts.cache, key, req, res, BUNDLE_HEADERS))) sendText(res, 404, 'Bundle not available');
  }
}
