import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryMetadataStore } from '../../src/metadata/memory.js';

test('compareAndSet: absent-only create, stale version refused, namespaces separate', async () => {
  const store = new MemoryMetadataStore();
  assert.equal(await store.compareAndSet('ns', 'k', 'a', null), true);
  assert.equal(await store.compareAndSet('ns', 'k', 'b', null), false);
  const first = await store.get('ns', 'k');
  assert.equal(first?.value, 'a');
  assert.equal(await store.compareAndSet('ns', 'k', 'c', first!.version), true);
  assert.equal(await store.compareAndSet('ns', 'k', 'd', first!.version), false);
  assert.equal((await store.get('ns', 'k'))?.value, 'c');
  assert.equal(await store.get('other', 'k'), undefined);
  await store.delete('ns', 'k');
  assert.equal(await store.get('ns', 'k'), undefined);
});

test('N concurrent claimers: exactly one wins; an expired claim can be taken', async () => {
  let now = 1_000;
  const store = new MemoryMetadataStore(() => now);
  const results = await Promise.all(Array.from({ length: 16 }, (_, i) => store.claim('ns', 'job', `o${i}`, 5_000)));
  assert.equal(results.filter(Boolean).length, 1);
  const winner = `o${results.indexOf(true)}`;
  assert.equal(await store.claim('ns', 'job', 'late', 5_000), false);
  assert.equal(await store.claim('ns', 'job', winner, 5_000), true, 'holder renews');
  now += 5_001;
  assert.equal(await store.claim('ns', 'job', 'late', 5_000), true, 'expired claim is free');
  await store.release('ns', 'job', winner);
  assert.equal(await store.claim('ns', 'job', winner, 5_000), false, 'release by non-holder is a no-op');
});
