import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { isCacheError } from '../../cache/errors.js';
import { sendText } from '../../http/router.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import { holdingConnection } from '../../http/hold-connection.js';
import { withClientAbort } from '../../http/request-abort.js';
import { BUNDLE_URL_HEADER, COMMIT_SHA, SNAPSHOT_COMMIT_HEADER, artifactKey, mirrorNotReadyAnswer, sendAnswer } from './artifacts.js';
import type { BundleService } from './bundles.js';
import type { ColdServes } from './cold-serve.js';
import { handleEnsureRefs } from './ensure-refs.js';
import type { SnapshotGenerator } from './generate.js';
import type { Mirrors } from './mirrors.js';
import type { GitRequestPath } from './paths.js';
import type { Repository } from './repository.js';

/**
 * Longest a warm snapshot request waits for the upstream ref check before answering without it
 * (the check goes on in the background and the next request sees its verdict).
 */
const FRESHNESS_WAIT_MS = 2_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** What the artifact routes need of the mirror lifecycle. */
export type ArtifactMirrors = Pick<Mirrors, 'ensureReady' | 'catchUp'>;

/**
 * The artifact routes of a repository (reference git §2.4-2.7): `snapshot.tar.zst`,
 * `snapshot.bundle`, `lfs-snapshot.tar.zst` and `ensure-refs`. A warm snapshot is served from
 * the cache with a bundle URL when the mirror or upstream moved past it; a cold one (mirror not
 * Ready) by ColdServes; a miss is generated on demand.
 */
export class ArtifactRoutes {
  constructor(
    private readonly cache: Cache,
    private readonly logger: Logger,
    private readonly mirrors: ArtifactMirrors,
    private readonly cold: ColdServes,
    private readonly generator: SnapshotGenerator,
    private readonly bundles: BundleService,
  ) {}

  /** Handles artifact routes; returns false for other operations. */
  async handle(req: IncomingMessage, res: ServerResponse, repo: Repository, parsed: GitRequestPath, query: URLSearchParams): Promise<boolean> {
    const method = req.method ?? 'GET';
    switch (parsed.operation) {
      case 'snapshot.tar.zst':
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
        await this.serveSnapshot(req, res, repo, parsed);
        return true;
      case 'snapshot.bundle':
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
        await this.bundles.serve(req, res, repo, query.get('base') ?? '');
        return true;
      case 'lfs-snapshot.tar.zst':
        if (method !== 'GET' && method !== 'HEAD') return this.methodNotAllowed(res, 'GET, HEAD');
        await this.serveLfsSnapshot(req, res, repo);
        return true;
      case 'ensure-refs':
        if (method !== 'POST') return this.methodNotAllowed(res, 'POST');
        await handleEnsureRefs(req, res, repo, this.mirrors);
        return true;
      default:
        return false;
    }
  }

  private methodNotAllowed(res: ServerResponse, allow: string): true {
    sendText(res, 405, 'method not allowed', { allow });
    return true;
  }

  private async serveSnapshot(req: IncomingMessage, res: ServerResponse, repo: Repository, parsed: GitRequestPath): Promise<void> {
    const key = artifactKey(repo.upstreamURL, 'snapshot');
    const cache = this.cache;
    if (req.method === 'HEAD') {
      // Metadata only: never generates, never warms a mirror.
      if (!(await sendCacheObject(cache, key, req, res, { 'content-type': 'application/zstd' }))) sendText(res, 404, 'Snapshot not cached');
      return;
    }
    // If-Match names a representation the client already has; with none cached it cannot match
    // (RFC 9110 §13.1.1), and a new generation would carry a different ETag anyway (#367).
    const ifMatch = req.headers['if-match'] !== undefined;
    if (repo.state !== 'ready') {
      if (await this.cold.serve(req, res, repo, key)) return;
      if (ifMatch) return void res.writeHead(412, { 'content-length': '0' }).end();
      try {
        await withClientAbort(res, (signal) => holdingConnection(res, () => this.mirrors.ensureReady(repo, signal)));
      } catch (err) {
        // Answered as ensure-refs answers: 404 when the upstream lacks the repository (so
        // `hoard git restore` exits 2 and scripts fall back to a clone), 502 naming the cause
        // (a refused redirect, an unreachable upstream) otherwise.
        if (!res.destroyed) sendAnswer(res, mirrorNotReadyAnswer(err));
        return;
      }
    }
    let extra: Record<string, string> = { 'content-type': 'application/zstd' };
    try {
      const st = await cache.stat(key);
      const commit = st.headers[SNAPSHOT_COMMIT_HEADER];
      if (commit && COMMIT_SHA.test(commit)) {
        // Both checks run together: the ref check may need an ls-remote, HEAD is usually memoised.
        const [head, upstreamAhead] = await Promise.all([repo.head().catch(() => undefined), this.upstreamAhead(repo)]);
        if (head && (commit !== head || upstreamAhead)) {
          extra = { ...extra, [BUNDLE_URL_HEADER]: `/git/${parsed.host}/${parsed.urlPath}/snapshot.bundle?base=${commit}` };
        }
      }
    } catch (err) {
      if (!isCacheError(err, 'not-found')) throw err;
    }
    if (await sendCacheObject(cache, key, req, res, extra)) return;
    if (ifMatch) return void res.writeHead(412, { 'content-length': '0' }).end();
    await this.generator.serveOnDemand(res, repo);
  }

  /**
   * True when upstream is ahead of the mirror, by the repository's own ref check (rate-limited
   * there to one ls-remote per ref-check-interval; requests arriving while it runs get the last
   * verdict). Only the request that started a check waits for it, and at most FRESHNESS_WAIT_MS:
   * the check goes on, and when it finds the mirror behind a coalescing catch-up fetch starts, so
   * the answer stays true until that fetch lands. The snapshot is then advertised with a bundle
   * URL even while the mirror still sits at the snapshot's commit: the bundle endpoint freshens
   * before deciding, so the client ends on upstream's HEAD rather than on a stale snapshot.
   */
  private async upstreamAhead(repo: Repository): Promise<boolean> {
    const checking = repo.refsStale().then((stale) => {
      if (stale) {
        this.mirrors.catchUp(repo).catch((err: Error) => this.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'catch-up fetch for a stale snapshot failed'));
      }
      return stale;
    });
    return Promise.race([checking, sleep(FRESHNESS_WAIT_MS).then(() => false)]);
  }

  /**
   * LFS snapshot (§2.6), served through the same conditional/range-aware path as every artifact.
   * A GET miss answers 404 at once and, when the mirror is Empty, starts its clone so the periodic
   * LFS job can produce the artifact later. The clone is started directly rather than from a job
   * on the repository's queue: the clone itself runs on that queue, so a queued job waiting for
   * it would wait for ever and leave the repository stuck Cloning.
   */
  private async serveLfsSnapshot(req: IncomingMessage, res: ServerResponse, repo: Repository): Promise<void> {
    if (await sendCacheObject(this.cache, artifactKey(repo.upstreamURL, 'lfs-snapshot'), req, res)) return;
    sendText(res, 404, 'LFS snapshot not found');
    // HEAD never warms a mirror (as for snapshots, #337).
    if (req.method === 'HEAD' || repo.state !== 'empty') return;
    this.mirrors.ensureReady(repo, new AbortController().signal).catch((err: Error) => {
      this.logger.warn({ err: err.message, upstream: repo.upstreamURL }, 'LFS warm-up clone failed');
    });
  }
}
