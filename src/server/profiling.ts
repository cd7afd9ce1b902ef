import type { IncomingMessage, ServerResponse } from 'node:http';
import { Session } from 'node:inspector/promises';
import { pipeline } from 'node:stream/promises';
import v8 from 'node:v8';
import { sendText } from '../http/router.js';
import type { RouteRegistry } from '../http/strategy.js';

/** Longest CPU profile one request may take. */
const MAX_PROFILE_SECONDS = 300;

/**
 * Node's answer to cachew's `/admin/pprof/…` (loopback-only like every `/admin` route):
 * - `GET /admin/pprof/heap`: a V8 heap snapshot (`.heapsnapshot`, open it in Chrome DevTools →
 *   Memory). Taking it pauses the process for about a second per GB of heap.
 * - `GET /admin/pprof/profile?seconds=N` (default 30, at most 300): a CPU profile of the next N
 *   seconds (`.cpuprofile`, DevTools → Performance). One at a time; the client leaving ends it.
 */
export function mountProfiling(routes: RouteRegistry): void {
  let profiling = false;

  routes.on('GET', '/admin/pprof/heap', async (_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-disposition': `attachment; filename="hoard-${process.pid}-${Date.now()}.heapsnapshot"` });
    await pipeline(v8.getHeapSnapshot(), res).catch(() => res.destroy());
  });

  routes.on('GET', '/admin/pprof/profile', async (req: IncomingMessage, res: ServerResponse, _params, query) => {
    const text = query.get('seconds') ?? '30';
    const seconds = Number(text);
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_PROFILE_SECONDS) return sendText(res, 400, `seconds must be a number in (0, ${MAX_PROFILE_SECONDS}], got ${JSON.stringify(text)}`);
    if (profiling) return sendText(res, 409, 'a CPU profile is already being taken; try again when it ends');
    profiling = true;
    const session = new Session();
    try {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, seconds * 1000);
        res.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const { profile } = await session.post('Profiler.stop');
      if (res.destroyed) return;
      const body = JSON.stringify(profile);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'content-disposition': `attachment; filename="hoard-${process.pid}-${Date.now()}.cpuprofile"` });
      res.end(body);
    } finally {
      session.disconnect();
      profiling = false;
    }
  });
}
