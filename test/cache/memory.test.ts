import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createMemoryCache } from '../../src/cache/memory.js';
import { parseKey } from '../../src/cache/key.js';
import { cacheConformance, put, readAll } from './conformance.js';

cacheConformance('memory', async () => ({
  cache: createMemoryCache({ limitBytes: 64 << 20, maxTtlMs: 3_600_000 }),
  cleanup: async () => undefined,
}));

test('memory: least recently read object survives eviction', async () => {
  const cache = createMemoryCache({ limitBytes: 3000, maxTtlMs: 60_000 }).namespace('lru');
  await put(cache, 'a', Buffer.alloc(1000));
  await put(cache, 'b', Buffer.alloc(1000));
  await put(cache, 'c', Buffer.alloc(1000));
  await readAll((await cache.open(parseKey('a'))).body);
  await put(cache, 'd', Buffer.alloc(1000));
  assert.equal((await cache.stat(parseKey('a'))).size, 1000);
  await assert.rejects(cache.stat(parseKey('b')), /not found/);
});

test('memory: oversized objects are rejected cleanly and TTLs are clamped', async () => {
  let now = 1_000_000;
  const cache = createMemoryCache({ limitBytes: 100, maxTtlMs: 10_000, now: () => now }).namespace('x');
  await assert.rejects(put(cache, 'big', Buffer.alloc(200)), /exceeds the memory cache limit/);
  await assert.rejects(cache.stat(parseKey('big')), /not found/);
  await put(cache, 'k', 'v', {}, { ttlMs: 3_600_000 });
  now += 9_000;
  assert.equal((await cache.stat(parseKey('k'))).size, 1);
  now += 2_000;
  await assert.rejects(cache.stat(parseKey('k')), /not found/);
  assert.equal(String(cache), 'memory:0MB');
});
