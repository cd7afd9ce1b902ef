import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMemoryCache } from '../../src/cache/memory.js';
import { createTieredCache } from '../../src/cache/tiered.js';
import { MemoryMetadataStore } from '../../src/metadata/memory.js';
import { parseKey } from '../../src/cache/key.js';
import { cacheConformance, put, readAll } from './conformance.js';

const mem = () => createMemoryCache({ limitBytes: 64 << 20, maxTtlMs: 3_600_000 });

cacheConformance('tiered(memory,memory)', async () => {
  const near = mem();
  return {
    cache: createTieredCache([near, mem()], new MemoryMetadataStore()),
    cleanup: async () => undefined,
    invalidate: { kind: 'keeps-authoritative', near: [near] },
  };
});

cacheConformance('tiered(memory,memory,memory)', async () => {
  const near = [mem(), mem()];
  return {
    cache: createTieredCache([...near, mem()], new MemoryMetadataStore()),
    cleanup: async () => undefined,
    invalidate: { kind: 'keeps-authoritative', near },
  };
});

test('tiered: lower-tier hit backfills tier 0 only after the reader reaches EOF', async () => {
  const near = mem().namespace('t');
  const far = mem().namespace('t');
  const tiered = createTieredCache([near, far], new MemoryMetadataStore()).namespace('t');
  const body = Buffer.alloc(1 << 20, 7);
  await put(far, 'k', body);

  const partial = await tiered.open(parseKey('k'));
  partial.body.destroy(); // the reader gives up before EOF
  await sleep(50);
  await assert.rejects(near.stat(parseKey('k')), 'half-read must not backfill');

  const full = await tiered.open(parseKey('k'));
  assert.deepEqual(await readAll(full.body), body);
  await sleep(50);
  const backfilled = await near.open(parseKey('k'));
  assert.deepEqual(await readAll(backfilled.body), body);
});
