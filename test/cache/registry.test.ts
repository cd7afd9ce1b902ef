import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cacheProviders } from '../../src/cache/registry.js';
import { parseKey } from '../../src/cache/key.js';
import { globalBlockSchemas } from '../../src/config/global-schema.js';
import { put } from './conformance.js';

const provider = (name: string) => cacheProviders.find((p) => p.spec.name === name)!;

test('a cachew config with zero limits and TTLs loads with the defaults, not a cache that expires everything', async () => {
  const state = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-registry-'));
  try {
    for (const name of ['memory', 'disk']) {
      const config = provider(name).spec.schema.parse({ 'limit-mb': 0, 'max-ttl': '0s', ...(name === 'disk' ? { 'evict-interval': '0s' } : {}) });
      const cache = await provider(name).create(config, { state, s3: globalBlockSchemas.s3.parse({}) });
      try {
        await put(cache.namespace('z'), 'k', 'kept');
        const st = await cache.namespace('z').stat(parseKey('k'));
        assert.equal(st.size, 4, `${name}: the object is there after writing`);
        const stats = await cache.stats();
        assert.equal(stats.capacity, (name === 'memory' ? 1024 : 10240) * 1024 * 1024, `${name}: 0 MiB means the default size`);
      } finally {
        await cache.close();
      }
    }
  } finally {
    await fs.rm(state, { recursive: true, force: true });
  }
});
