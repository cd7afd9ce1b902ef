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
  assert.deepEqual(await second.stats(), { objects: 1, size: 9, capacity: 256 << 20, evictions: 0 });
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
  // More readers than the thread pool has threads, so some opens wait in its queue while several
  // replacements commit and remove the revision they looked up: each must still find the object.
  const readers = Array.from({ length: 12 }, async () => {
    let reads = 0;
    while (!stop) {
      const got = await ns.open(key);
      const body = await readAll(got.body);
      assert.equal(got.headers['etag'], `"${createHash('sha256').update(body).digest('hex')}"`);
      reads++;
    }
    return reads;
  });
  for (let round = 0; round < 40; round++) await Promise.all([1, 2, 3, 4].map((i) => write(round * 4 + i)));
  stop = true;
  const counts = await Promise.all(readers);
  assert.ok(counts.every((n) => n > 0));
  await cache.close();
});

test('disk: a read overtaken by replacements between its lookup and its open still gets one whole revision; a delete in that window is a miss', async () => {
  const root = await tempDir();
  let overtake: (() => Promise<void>) | undefined;
  const cache = await createDiskCache({ ...options(root), beforeBodyOpen: () => overtake?.() ?? Promise.resolve() });
  const ns = cache.namespace('race');
  const key = parseKey('k');
  const bodies: Buffer[] = [];
  const write = async () => {
    const body = randomBytes(100_000 + bodies.length);
    bodies.push(body);
    await put(ns, 'k', body, {}, { etag: createHash('sha256').update(body).digest('hex') });
  };
  await write();
  // Every attempt of the read finds its revision replaced (and its body removed) before it opens
  // it, five times over: the read must follow the index rather than give up after a few tries.
  let overtaken = 0;
  overtake = async () => {
    if (overtaken++ < 5) await write();
  };
  const got = await ns.open(key);
  const body = await readAll(got.body);
  assert.equal(overtaken, 6, 'the read was overtaken five times, then opened');
  assert.ok(body.equals(bodies.at(-1)!), 'the read got the newest revision');
  assert.equal(got.headers['etag'], `"${createHash('sha256').update(body).digest('hex')}"`);
  // A delete in the same window: the object is gone, and the read says so.
  overtake = async () => {
    overtake = undefined;
    await ns.delete(key);
  };
  await assert.rejects(ns.open(key), /not found/);
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

test('disk: deletes racing replacements keep the size accounting and what survives a restart consistent', async () => {
  const root = await tempDir();
  const cache = await createDiskCache(options(root));
  const ns = cache.namespace('race');
  const key = parseKey('k');
  // Writers and deleters of one key interleave at every await; whatever the order, the index,
  // the byte count and the files on disk must agree afterwards.
  for (let round = 0; round < 40; round++) {
    await Promise.all([
      put(ns, 'k', Buffer.alloc(1000 + round, 1)),
      ns.delete(key).catch(() => undefined),
      put(ns, 'k', Buffer.alloc(2000 + round, 2)),
      ns.delete(key).catch(() => undefined),
      put(ns, 'k', Buffer.alloc(3000 + round, 3)),
    ]);
  }
  const live = await ns.stat(key).then((st) => st.size, () => undefined);
  assert.deepEqual(await cache.stats(), { objects: live === undefined ? 0 : 1, size: live ?? 0, capacity: 256 << 20, evictions: 0 });
  await cache.close();
  const reopened = await createDiskCache(options(root));
  const after = await reopened.namespace('race').stat(key).then((st) => st.size, () => undefined);
  assert.equal(after, live, 'the object visible before the restart is the one on disk');
  assert.deepEqual(await reopened.stats(), { objects: live === undefined ? 0 : 1, size: live ?? 0, capacity: 256 << 20, evictions: 0 });
  await reopened.close();
});

test('disk: a delete that arrives while a replacement is publishing waits for it (no double-counted size)', async () => {
  const root = await tempDir();
  const cache = await createDiskCache(options(root));
  const ns = cache.namespace('race');
  const key = parseKey('k');
  await put(ns, 'k', Buffer.alloc(1000, 1));
  const realRename = fs.rename;
  let fired = false;
  // Hold the replacement at the moment it moves its sidecar into place, and send a delete of
  // the old revision right then.
  fs.rename = (async (from: string, to: string) => {
    if (!fired && String(to).endsWith(`${key}.json`)) {
      fired = true;
      void ns.delete(key).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50));
    }
    return realRename(from, to);
  }) as typeof fs.rename;
  try {
    await put(ns, 'k', Buffer.alloc(3000, 3));
  } finally {
    fs.rename = realRename;
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(fired);
  const stats = await cache.stats();
  const live = await ns.stat(key).then((st) => st.size, () => 0);
  assert.equal(stats.size, live, `byte count ${stats.size} matches what is stored (${live})`);
  await cache.close();
});
