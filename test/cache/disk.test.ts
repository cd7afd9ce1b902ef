import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createDiskCache } from '../../src/cache/disk.js';
import { parseKey } from '../../src/cache/key.js';
import { cacheConformance, put, readAll } from './conformance.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-disk-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
});

const options = (root: string, limitBytes = 256 << 20) => ({ root, limitBytes, maxTtlMs: 3_600_000, evictIntervalMs: 60_000 });

cacheConformance('disk', async () => {
  const root = await tempDir();
  return { cache: await createDiskCache(options(root)), cleanup: async () => undefined };
});

test('disk: objects and sizes survive a restart', async () => {
  const root = await tempDir();
  const first = await createDiskCache(options(root));
  await put(first.namespace('ns'), 'k', 'persisted', { 'Content-Type': 'text/plain' });
  await first.close();
  const second = await createDiskCache(options(root));
  const got = await second.namespace('ns').open(parseKey('k'));
  assert.equal((await readAll(got.body)).toString(), 'persisted');
  assert.equal(got.headers['content-type'], 'text/plain');
  assert.deepEqual(await second.stats(), { objects: 1, size: 9, capacity: 256 << 20 });
  assert.deepEqual(await second.listNamespaces(), ['ns']);
  await second.close();
});

test('disk: crash debris is never served and is cleaned at start-up', async () => {
  const root = await tempDir();
  const cache = await createDiskCache(options(root));
  await put(cache.namespace('ns'), 'good', 'ok');
  await cache.close();
  const key = parseKey('orphan');
  const shard = path.join(root, 'ns', key.slice(0, 2));
  await fs.mkdir(shard, { recursive: true });
  await fs.writeFile(path.join(shard, '.tmp-deadbeef'), 'half written');
  await fs.writeFile(path.join(shard, `${key}.0123456789abcdef`), 'body without sidecar');
  const brokenKey = parseKey('broken');
  const brokenShard = path.join(root, 'ns', brokenKey.slice(0, 2));
  await fs.mkdir(brokenShard, { recursive: true });
  await fs.writeFile(path.join(brokenShard, `${brokenKey}.json`), '{"rev":"ffff","size":3,"expiresAt":99999999999999,"headers":{}}');

  const reopened = await createDiskCache(options(root));
  await assert.rejects(reopened.namespace('ns').stat(key), /not found/);
  await assert.rejects(reopened.namespace('ns').stat(brokenKey), /not found/);
  assert.equal((await reopened.stats()).objects, 1);
  const left = await fs.readdir(shard).catch(() => []);
  assert.ok(!left.some((n) => n.startsWith('.tmp-') || n.startsWith(key)), `debris left: ${left.join(', ')}`);
  assert.ok(!(await fs.readdir(brokenShard)).some((n) => n.startsWith(brokenKey)));
  await reopened.close();
});

test('disk: eviction removes the least recently read objects first', async () => {
  const root = await tempDir();
  const cache = await createDiskCache(options(root, 1 << 20));
  const ns = cache.namespace('lru');
  for (const name of ['a', 'b', 'c']) {
    await put(ns, name, Buffer.alloc(300 << 10));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await readAll((await ns.open(parseKey('a'))).body);
  await put(ns, 'd', Buffer.alloc(300 << 10));
  await cache.settle();
  assert.equal((await ns.stat(parseKey('a'))).size, 300 << 10);
  await assert.rejects(ns.stat(parseKey('b')), /not found/);
  assert.ok((await cache.stats()).size <= 1 << 20);
  await cache.close();
});

test('disk: concurrent replacement never splices headers and bytes', async () => {
  const root = await tempDir();
  const cache = await createDiskCache(options(root));
  const ns = cache.namespace('race');
  const key = parseKey('k');
  const write = async (i: number) => {
    const body = randomBytes(100_000 + i);
    await put(ns, 'k', body, {}, { etag: createHash('sha256').update(body).digest('hex') });
  };
  await write(0);
  let stop = false;
  const readers = [0, 1, 2, 3].map(async () => {
    let reads = 0;
    while (!stop) {
      const got = await ns.open(key);
      const body = await readAll(got.body);
      assert.equal(got.headers['etag'], `"${createHash('sha256').update(body).digest('hex')}"`);
      reads++;
    }
    return reads;
  });
  for (let round = 0; round < 10; round++) await Promise.all([1, 2, 3, 4].map((i) => write(round * 4 + i)));
  stop = true;
  const counts = await Promise.all(readers);
  assert.ok(counts.every((n) => n > 0));
  await cache.close();
});

test('disk: ENOSPC fails the write with insufficient-storage, stores nothing, later writes work', async () => {
  const root = await tempDir();
  let full = true;
  const cache = await createDiskCache({
    ...options(root),
    writeChunk: async (handle, chunk) => {
      if (full) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      await handle.write(chunk);
    },
  });
  const ns = cache.namespace('full');
  await assert.rejects(put(ns, 'k', 'data'), (err: Error & { code?: string }) => err.code === 'insufficient-storage');
  await assert.rejects(ns.stat(parseKey('k')), /not found/);
  const shard = path.join(root, 'full', parseKey('k').slice(0, 2));
  assert.deepEqual(await fs.readdir(shard).catch(() => []), []);
  full = false;
  await put(ns, 'k', 'data');
  assert.equal((await ns.stat(parseKey('k'))).size, 4);
  await cache.close();
});
