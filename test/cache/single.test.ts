/**
 * The single configured cache as `hoard serve` wires it (src/cache/single.ts) (reference §3.6): with one tier that tier
 * is the authority, so the server wraps it and Invalidate is a no-op. The bare backends' own
 * conformance runs (memory, disk, s3) expect Invalidate to evict, which is what a tiered cache
 * relies on when it invalidates a near tier; this run checks the wrapped behaviour clients see.
 */
import { cacheConformance } from './conformance.js';
import { startTestServer } from '../fixtures/server.js';

cacheConformance('single configured disk cache (server-wired)', async () => {
  const server = await startTestServer();
  return { cache: server.server.cache, cleanup: () => server.close(), invalidate: { kind: 'no-op' } };
});
