import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { Cache } from '../../cache/cache.js';
import { parseKey, type CacheKey } from '../../cache/key.js';
import { withoutServerPaths } from '../../http/error-answer.js';
import { watchClientAbort } from '../../http/request-abort.js';
import { sendText } from '../../http/router.js';
import { sendCacheObject } from '../../http/send-cache-object.js';
import { GitMirrorRefusedError, type GitMirror, type GitMirrorManager } from '../../http/git-mirrors.js';
import { CACHE_CONTROL } from './cache-control.js';
import { GitModuleSource, ModuleNotFoundError, infoJson } from './git-module-source.js';
import { writeModuleZip } from './module-zip.js';
import { moduleLayout, PrivatePatterns } from './private-modules.js';

/** A module-proxy request for a private module, in escaped (wire) and real spelling. */
export type PrivateModuleRequest =
  | { kind: 'list' | 'latest'; module: string; escapedModule: string }
  | { kind: 'file'; module: string; escapedModule: string; version: string; escapedVersion: string; ext: 'info' | 'mod' | 'zip'; cacheable: boolean };

const CONTENT_TYPE = { info: 'application/json', mod: 'text/plain; charset=utf-8', zip: 'application/zip' } as const;
/** A fill (zip build) that runs longer than this is abandoned. */
const FILL_TIMEOUT_MS = 30 * 60_000;

/**
 * Private modules (`private-paths`), served from the git strategy's mirrors: version lists and
 * queries read the mirror's tags and commits (fetched first when behind upstream), and the files
 * of a canonical version — immutable — are built once, stored in the cache, and served from it
 * ever after, with the upstream gone too. One build per file at a time, however many ask.
 */
export class PrivateModuleServer {
  private readonly patterns: PrivatePatterns;
  private readonly fills = new Map<CacheKey, Promise<void>>();

  constructor(
    patterns: string[],
    private readonly hosts: Readonly<Record<string, string>>,
    private readonly mirrors: GitMirrorManager,
    private readonly cache: Cache,
    private readonly logger: Logger,
  ) {
    this.patterns = new PrivatePatterns(patterns);
  }

  /** Whether a module (real spelling) is private. */
  matches(module: string): boolean {
    return this.patterns.matches(module);
  }

  /** The cache key of a canonical version's file; apart from the upstream proxy's keys. */
  static key(escapedModule: string, escapedVersion: string, ext: string): CacheKey {
    return parseKey(`private/${escapedModule}/@v/${escapedVersion}.${ext}`);
  }

  async serve(req: IncomingMessage, res: ServerResponse, request: PrivateModuleRequest, cacheOnly: boolean): Promise<void> {
    const abort = watchClientAbort(res);
    const download = request.kind === 'file' && request.cacheable;
    try {
      if (request.kind === 'file' && request.cacheable) {
        const key = PrivateModuleServer.key(request.escapedModule, request.escapedVersion, request.ext);
        const headers = { 'cache-control': CACHE_CONTROL.immutable };
        if (await sendCacheObject(this.cache, key, req, res, headers)) return;
        if (cacheOnly) return sendText(res, 404, `not found: ${request.module}@${request.version}.${request.ext} is not cached (Disable-Module-Fetch)`, { 'cache-control': CACHE_CONTROL.notFoundDownload });
        await this.fill(key, request);
        if (await sendCacheObject(this.cache, key, req, res, headers)) return;
        throw new Error('the cached copy vanished right after it was stored');
      }
      if (cacheOnly) return sendText(res, 404, `not found: ${request.module}: version lists and queries are never cached (Disable-Module-Fetch)`, { 'cache-control': CACHE_CONTROL.notFoundQuery });
      const source = new GitModuleSource(await this.mirror(request.module, true, abort.signal), moduleLayout(request.module, this.hosts), abort.signal);
      if (request.kind === 'list') return sendText(res, 200, (await source.list()).join('\n'), { 'cache-control': CACHE_CONTROL.mutable });
      if (request.kind === 'file' && request.ext !== 'info') throw new ModuleNotFoundError(`${request.module}@${request.version}: .${request.ext} is only served for canonical versions`);
      const resolved = await source.resolve(request.kind === 'file' ? request.version : 'latest');
      sendText(res, 200, infoJson(resolved), { 'content-type': CONTENT_TYPE.info, 'cache-control': CACHE_CONTROL.mutable });
    } catch (err) {
      if (res.headersSent) return void res.destroy();
      if (err instanceof ModuleNotFoundError || err instanceof GitMirrorRefusedError) {
        return sendText(res, 404, `not found: ${err.message}`, { 'cache-control': download ? CACHE_CONTROL.notFoundDownload : CACHE_CONTROL.notFoundQuery });
      }
      if (abort.signal.aborted) return;
      this.logger.warn({ err, module: request.module }, 'private module request failed');
      // Like the GOPROXY library's bad-upstream answer: a 404 nobody may keep, so the go command
      // moves on (to `direct`) now and asks again later.
      sendText(res, 404, withoutServerPaths(`not found: fetching ${request.module} from its git repository failed: ${(err as Error).message}`), { 'cache-control': CACHE_CONTROL.upstreamFailed });
    } finally {
      abort.release();
    }
  }

  private mirror(module: string, fresh: boolean, signal: AbortSignal): Promise<GitMirror> {
    return this.mirrors.mirror(moduleLayout(module, this.hosts).repository, { fresh, signal });
  }

  /** Builds one canonical version's file into the cache (joining a build already running). */
  private fill(key: CacheKey, request: Extract<PrivateModuleRequest, { kind: 'file' }>): Promise<void> {
    let running = this.fills.get(key);
    if (!running) {
      running = this.build(key, request).finally(() => this.fills.delete(key));
      this.fills.set(key, running);
    }
    return running;
  }

  private async build(key: CacheKey, request: Extract<PrivateModuleRequest, { kind: 'file' }>): Promise<void> {
    // The build belongs to every waiter, so no client's disconnect cancels it; a deadline does.
    const signal = AbortSignal.timeout(FILL_TIMEOUT_MS);
    const layout = moduleLayout(request.module, this.hosts);
    let source = new GitModuleSource(await this.mirror(request.module, false, signal), layout, signal);
    let resolved;
    try {
      resolved = await source.resolve(request.version);
    } catch (err) {
      if (!(err instanceof ModuleNotFoundError)) throw err;
      // A version the mirror does not know yet may have been tagged or pushed since: fetch, retry.
      source = new GitModuleSource(await this.mirror(request.module, true, signal), layout, signal);
      resolved = await source.resolve(request.version);
    }
    // A version is served under the name it was asked by only if it is that version: `v1.0.0`
    // must be a tag, and a pseudo-version was checked against its commit by resolve.
    if (resolved.version !== request.version) throw new ModuleNotFoundError(`${request.module}@${request.version}: resolves to ${resolved.version}`);
    const dir = request.ext === 'info' ? undefined : await source.moduleDirectory(resolved.commit, resolved.version);
    const writer = this.cache.create(key, { 'content-type': CONTENT_TYPE[request.ext] }, { signal });
    try {
      if (request.ext === 'info') return await pipeline(Readable.from([Buffer.from(infoJson(resolved))]), writer);
      if (request.ext === 'mod') return await pipeline(Readable.from([dir!.goMod ?? Buffer.from(`module ${request.module}\n`)]), writer);
      this.logger.info({ module: request.module, version: resolved.version, commit: resolved.commit, dir: dir!.dir || '.' }, 'building private module zip');
      await writeModuleZip(source.mirror, { commit: resolved.commit, dir: dir!.dir, module: request.module, version: resolved.version, signal }, writer);
    } catch (err) {
      writer.destroy(); // nothing partial is ever published
      throw err;
    }
  }
}
