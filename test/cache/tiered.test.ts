import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, type Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cache, OpenResult } from '../../src/cache/cache.js';
import type { ReadConditions } from '../../src/cache/conditional.js';
import { isCacheError } from '../../src/cache/errors.js';
import { createMemoryCache } from '../../src/cache/memory.js';
import { createTieredCache, settleBackgroundWork } from '../../src/cache/tiered.js';
import { MemoryMetadataStore } from '../../src/metadata/memory.js';
import type { MetadataStore } from '../../src/metadata/store.js';
import { parseKey, type CacheKey } from '../../src/cache/key.js';
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

type OpenHook = (inner: Cache, key: CacheKey, cond: ReadConditions & { signal?: AbortSignal }) => Promise<OpenResult>;

/** A cache that delegates to `inner` except for `open`, which goes through `hook` (also on namespace views). */
function instrumented(inner: Cache, hook: OpenHook): Cache {
  return {
    get ns() {
      return inner.ns;
    },
    namespace: (ns) => instrumented(inner.namespace(ns), hook),
    stat: (key, cond) => inner.stat(key, cond),
    statAuthoritative: (key) => inner.statAuthoritative(key),
    open: (key, cond) => hook(inner, key, cond ?? {}),
    create: (key, headers, opts) => inner.create(key, headers, opts),
    delete: (key) => inner.delete(key),
    invalidate: (key) => inner.invalidate(key),
    stats: () => inner.stats(),
    listNamespaces: () => inner.listNamespaces(),
    close: () => inner.close(),
    toString: () => `instrumented:${String(inner)}`,
  };
}

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    const value = await promise;
    if (value && typeof value === 'object' && 'body' in value) (value as OpenResult).body.destroy();
    return 'ok';
  } catch (err) {
    return isCacheError(err) ? err.code : `error: ${(err as Error).message}`;
  }
}

const etagOf = async (cache: Cache, key: string) => (await cache.stat(parseKey(key)).catch(() => undefined))?.headers['etag'];

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

describe('tiered: a lower tier failing mid-stream', () => {
  /** A far tier whose bodies deliver `good` bytes and then fail like a reset S3 connection. */
  const failingFar = (inner: Cache, good: number, sources: Readable[]) =>
    instrumented(inner, async (cache, key, cond) => {
      const real = await cache.open(key, cond);
      real.body.destroy();
      let sent = false;
      const body = new Readable({
        read() {
          if (!sent) {
            sent = true;
            this.push(Buffer.alloc(good, 1));
          } else this.destroy(new Error('S3 connection reset'));
        },
      });
      sources.push(body);
      return { ...real, body };
    });

  test('the caller read rejects, the process survives, and nothing is backfilled', async () => {
    const near = mem();
    const farInner = mem();
    await put(farInner, 'k', Buffer.alloc(100_000, 1));
    const sources: Readable[] = [];
    const tiered = createTieredCache([near, failingFar(farInner, 1000, sources)], new MemoryMetadataStore());
    // Before the fix the source had no 'error' listener: the error was uncaught (this test
    // failed with uncaughtException) and the caller's stream never ended.
    const res = await tiered.open(parseKey('k'));
    await assert.rejects(readAll(res.body), /S3 connection reset/);
    await sleep(20);
    await assert.rejects(near.stat(parseKey('k')), (err: unknown) => isCacheError(err, 'not-found'), 'a failed read must not backfill');
    // A second failing read behaves the same (no stuck state from the first).
    await assert.rejects(readAll((await tiered.open(parseKey('k'))).body), /S3 connection reset/);
  });

  test('a caller that stops reading releases the lower tier body', async () => {
    const near = mem();
    const farInner = mem();
    await put(farInner, 'k', Buffer.alloc(100_000, 1));
    const sources: Readable[] = [];
    const far = instrumented(farInner, async (cache, key, cond) => {
      const res = await cache.open(key, cond);
      sources.push(res.body);
      return res;
    });
    const tiered = createTieredCache([near, far], new MemoryMetadataStore());
    const res = await tiered.open(parseKey('k'));
    res.body.destroy();
    await sleep(20);
    assert.equal(sources[0]?.destroyed, true, 'the source (an S3 socket) is destroyed with the caller stream');
    await assert.rejects(near.stat(parseKey('k')));
  });
});

describe('tiered: staleness is decided before conditionals', () => {
  const setup = async () => {
    const near = mem().namespace('t');
    const farInner = mem();
    const far = farInner.namespace('t');
    const metadata = new MemoryMetadataStore();
    const tiered = createTieredCache([near, far], metadata).namespace('t');
    await put(far, 'k', '0123456789', {}, { etag: 'new' });
    await metadata.set('t', parseKey('k'), '"new"');
    const stale = () => put(near, 'k', 'old', {}, { etag: 'old' });
    await stale();
    return { near, far, tiered, stale };
  };
  const key = parseKey('k');

  test('If-None-Match naming the stale near copy gets the fresh body, not 304, and tier 0 is refreshed', async () => {
    const { near, tiered } = await setup();
    const res = await tiered.open(key, { ifNoneMatch: '"old"' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['etag'], '"new"');
    assert.equal((await readAll(res.body)).toString(), '0123456789');
    assert.equal(await etagOf(near, 'k'), '"new"', 'the stale copy was replaced by the backfill');
  });

  test('If-Match naming the stale copy is 412 (the object was replaced), Stat agrees', async () => {
    const { near, tiered, stale } = await setup();
    assert.equal(await code(tiered.open(key, { ifMatch: '"old"' })), 'precondition-failed');
    assert.equal(await etagOf(near, 'k'), undefined, 'the stale copy was evicted');
    await stale();
    assert.equal(await code(tiered.stat(key, { ifMatch: '"old"' })), 'precondition-failed');
    await stale();
    const st = await tiered.stat(key, { ifNoneMatch: '"old"' });
    assert.equal(st.headers['etag'], '"new"');
    assert.equal(st.size, 10);
    await stale();
    assert.equal((await readAll((await tiered.open(key, { ifMatch: '"new"' })).body)).toString(), '0123456789');
  });

  test('a range only the stale copy cannot satisfy is served from the fresh tier', async () => {
    const { tiered } = await setup();
    const res = await tiered.open(key, { range: 'bytes=5-7' });
    assert.equal(res.status, 206);
    assert.equal((await readAll(res.body)).toString(), '567');
  });

  test('a stale copy alone is not-found, whatever the conditionals', async () => {
    const { far, tiered, stale } = await setup();
    await far.delete(key);
    assert.equal(await code(tiered.open(key, { ifNoneMatch: '"old"' })), 'not-found');
    await stale();
    assert.equal(await code(tiered.stat(key, { ifNoneMatch: '"old"' })), 'not-found');
    await stale();
    assert.equal(await code(tiered.open(key, { ifMatch: '"old"' })), 'not-found');
  });

  test('a current near copy still answers 304, and If-Match for another version reports a deeper outage', async () => {
    const near = mem();
    const farInner = mem();
    const metadata = new MemoryMetadataStore();
    await put(createTieredCache([near, farInner], metadata), 'k', 'v', {}, { etag: 'cur' });
    let down = false;
    const far = instrumented(farInner, async (inner, k, c) => {
      if (down) throw new Error('S3 GET index failed: ECONNREFUSED');
      return inner.open(k, c);
    });
    const tiered = createTieredCache([near, far], metadata);
    assert.equal(await code(tiered.open(key, { ifNoneMatch: '"cur"' })), 'not-modified');
    down = true;
    assert.equal(await code(tiered.open(key, { ifNoneMatch: '"cur"' })), 'not-modified', 'answered locally');
    assert.equal(await code(tiered.open(key, { ifMatch: '"pinned-elsewhere"' })), 'error: S3 GET index failed: ECONNREFUSED', 'an outage, not a 412');
  });
});

test('tiered: replica B drops its stale near copy after replica A replaced the object through the shared tier', async () => {
  const far = mem();
  const metadata = new MemoryMetadataStore(); // shared, as `metadata s3` is between replicas
  const a = createTieredCache([mem(), far], metadata).namespace('r');
  const bNear = mem();
  const b = createTieredCache([bNear, far], metadata).namespace('r');
  await put(a, 'k', 'first version', {}, { etag: 'v1' });
  assert.equal((await readAll((await b.open(parseKey('k'))).body)).toString(), 'first version');
  assert.equal(await etagOf(bNear.namespace('r'), 'k'), '"v1"', 'B keeps a near copy');

  await put(a, 'k', 'second version', {}, { etag: 'v2' });
  assert.equal(await etagOf(bNear.namespace('r'), 'k'), '"v1"', "A cannot touch B's local tier");
  const st = await b.stat(parseKey('k'));
  assert.equal(st.headers['etag'], '"v2"');
  const got = await b.open(parseKey('k'));
  assert.equal(got.headers['etag'], '"v2"');
  assert.equal((await readAll(got.body)).toString(), 'second version');
  assert.equal(await etagOf(bNear.namespace('r'), 'k'), '"v2"', 'the near copy was invalidated and refilled');
});

describe('tiered: the ETag map follows the authoritative tier', () => {
  test('a reader repairs a map entry that disagrees with the authoritative tier, so later reads stay local', async () => {
    const near = mem();
    const farInner = mem();
    let farOpens = 0;
    const far = instrumented(farInner, (inner, k, c) => {
      farOpens++;
      return inner.open(k, c);
    });
    const metadata = new MemoryMetadataStore();
    const key = parseKey('k');
    // The aftermath of a lost race: S3 and this replica's disk hold "b", the map says "a".
    await put(farInner.namespace('r'), 'k', 'bytes of b', {}, { etag: 'b' });
    await put(near.namespace('r'), 'k', 'bytes of b', {}, { etag: 'b' });
    await metadata.set('r', key, '"a"');
    const tiered = createTieredCache([near, far], metadata).namespace('r');

    const first = await tiered.open(key);
    assert.equal(first.headers['etag'], '"b"');
    assert.equal((await readAll(first.body)).toString(), 'bytes of b');
    assert.equal(farOpens, 1);
    assert.equal((await metadata.get('r', key))?.value, '"b"', 'the entry now names the authoritative version');
    // Before the fix every read evicted the good near copy and went to S3 again.
    for (let i = 0; i < 3; i++) await readAll((await tiered.open(key)).body);
    assert.equal(farOpens, 1, 'later reads are served by tier 0');
    assert.equal((await tiered.stat(key)).headers['etag'], '"b"');
  });

  test('a repair never overwrites an entry published after the reader read it', async () => {
    const metadata = new MemoryMetadataStore();
    const key = parseKey('k');
    const farInner = mem();
    await put(farInner, 'k', 'x', {}, { etag: 'old' });
    await metadata.set('', key, '"stale"');
    // While the reader is at the authoritative tier, another replica publishes "newest".
    const far = instrumented(farInner, async (inner, k, c) => {
      const res = await inner.open(k, c);
      await metadata.set('', key, '"newest"');
      return res;
    });
    const tiered = createTieredCache([mem(), far], metadata);
    await readAll((await tiered.open(key)).body);
    assert.equal((await metadata.get('', key))?.value, '"newest"');
  });

  test('concurrent writers: the map records whichever write the authoritative tier kept, whatever the publish order', async () => {
    const shared = new MemoryMetadataStore();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // Replica A's publish is delayed until B has finished: A committed to S3 first but publishes last.
    const slow: MetadataStore = {
      get: (ns, k) => shared.get(ns, k),
      set: async (ns, k, v) => {
        await gate;
        return shared.set(ns, k, v);
      },
      compareAndSet: async (ns, k, v, ver) => {
        await gate;
        return shared.compareAndSet(ns, k, v, ver);
      },
      delete: (ns, k) => shared.delete(ns, k),
      claim: (ns, n, o, t) => shared.claim(ns, n, o, t),
      release: (ns, n, o) => shared.release(ns, n, o),
      close: () => shared.close(),
      toString: () => 'slow',
    };
    const far = mem();
    const a = createTieredCache([mem(), far], slow).namespace('w');
    const b = createTieredCache([mem(), far], shared).namespace('w');
    const aWrite = put(a, 'k', 'from A', {}, { etag: 'a' });
    while ((await etagOf(far.namespace('w'), 'k')) !== '"a"') await sleep(5);
    await put(b, 'k', 'from B', {}, { etag: 'b' });
    release();
    await aWrite;
    assert.equal(await etagOf(far.namespace('w'), 'k'), '"b"', 'B committed last to the authoritative tier');
    assert.equal((await shared.get('w', parseKey('k')))?.value, '"b"', 'so the map must say "b", not the last publisher "a"');
    const seenByA = await a.open(parseKey('k'));
    assert.equal((await readAll(seenByA.body)).toString(), 'from B', "A's own near copy is recognised as stale");
  });
});

describe('tiered: async heal of tier 0 after ranged reads', () => {
  const body = Buffer.from('abcdefghijklmnopqrstuvwxyz');
  const setup = () => {
    const near = mem();
    const farInner = mem();
    const heals: string[] = [];
    let gate: Promise<void> | undefined;
    // A heal is the only full read pinned with If-Match; count those, optionally holding them.
    const far = instrumented(farInner, async (inner, k, c) => {
      const res = await inner.open(k, c);
      if (c.ifMatch && !c.range) {
        heals.push(k);
        if (gate) await gate;
      }
      return res;
    });
    const metadata = new MemoryMetadataStore();
    const tiered = createTieredCache([near, far], metadata);
    return {
      near,
      farInner,
      metadata,
      tiered,
      heals,
      hold: () => {
        let release!: () => void;
        gate = new Promise((resolve) => (release = resolve));
        return () => {
          gate = undefined;
          release();
        };
      },
    };
  };
  const ranged = async (cache: Cache, key: string) => {
    const res = await cache.open(parseKey(key), { range: 'bytes=2-4' });
    assert.equal(res.status, 206);
    assert.equal((await readAll(res.body)).toString(), 'cde');
  };

  test('a ranged read served by the deeper tier with the recorded ETag heals tier 0', async () => {
    const { near, farInner, metadata, tiered, heals } = setup();
    await put(farInner, 'k', body, { 'Content-Type': 'text/plain' }, { etag: 'S' });
    await metadata.set('', parseKey('k'), '"S"');
    await ranged(tiered, 'k');
    await settleBackgroundWork(tiered);
    assert.equal(heals.length, 1);
    const healed = await near.open(parseKey('k'));
    assert.equal(healed.headers['etag'], '"S"');
    assert.equal(healed.headers['content-type'], 'text/plain');
    assert.ok((await readAll(healed.body)).equals(body));
    // With the deeper copy gone, tier 0 alone serves the whole object.
    await farInner.delete(parseKey('k'));
    assert.ok((await readAll((await tiered.open(parseKey('k'))).body)).equals(body));
  });

  test('no heal when a present record differs from the source tier', async () => {
    const { near, farInner, metadata, tiered, heals } = setup();
    await put(farInner, 'k', body, {}, { etag: 'S' });
    await metadata.set('', parseKey('k'), '"X"');
    await ranged(tiered, 'k');
    await settleBackgroundWork(tiered);
    await sleep(20);
    assert.deepEqual(heals, []);
    assert.equal(await etagOf(near, 'k'), undefined);
    // The read repaired the entry to the authoritative "S", so the next ranged read may heal.
    assert.equal((await metadata.get('', parseKey('k')))?.value, '"S"');
    await ranged(tiered, 'k');
    await settleBackgroundWork(tiered);
    assert.equal(await etagOf(near, 'k'), '"S"');
  });

  test('a key with no record heals from the authoritative tier and seeds the map (metadata lost, or never replaced)', async () => {
    // Plain memory tiers and an empty metadata store: the object exists only in the far tier.
    const near = mem();
    const far = mem();
    const metadata = new MemoryMetadataStore();
    const tiered = createTieredCache([near, far], metadata);
    await put(far, 'k', body, { 'Content-Type': 'text/plain' }, { etag: 'S' });
    assert.equal(await metadata.get('', parseKey('k')), undefined);
    await ranged(tiered, 'k');
    await settleBackgroundWork(tiered);
    assert.equal((await metadata.get('', parseKey('k')))?.value, '"S"', 'the map is seeded with the authoritative ETag');
    const healed = await near.open(parseKey('k'));
    assert.equal(healed.headers['etag'], '"S"');
    assert.equal(healed.headers['content-type'], 'text/plain');
    assert.ok((await readAll(healed.body)).equals(body));
    // Tier 0 now serves ranged reads by itself (what `hoard git restore`'s chunked reads need).
    await far.delete(parseKey('k'));
    await ranged(tiered, 'k');
  });

  test('an unrecorded key: a writer publishing during the ranged read keeps its entry and no heal commits', async () => {
    const near = mem();
    const farInner = mem();
    const metadata = new MemoryMetadataStore();
    const heals: string[] = [];
    // The map was read (empty) before the far tier answered; a replacing writer on another
    // replica publishes "T" in between, so the heal's seed must not overwrite it.
    const far = instrumented(farInner, async (inner, k, c) => {
      if (c.ifMatch && !c.range) heals.push(k);
      const res = await inner.open(k, c);
      if (c.range) await metadata.set('', k, '"T"');
      return res;
    });
    const tiered = createTieredCache([near, far], metadata);
    await put(farInner, 'k', body, {}, { etag: 'S' });
    await ranged(tiered, 'k');
    await settleBackgroundWork(tiered);
    assert.equal((await metadata.get('', parseKey('k')))?.value, '"T"', "the writer's newer entry wins over the seed");
    assert.deepEqual(heals, [], 'the heal gave up before reading the source');
    assert.equal(await etagOf(near, 'k'), undefined);
  });

  test('an unrecorded key served by an intermediate tier does not heal (it may lag the authoritative tier)', async () => {
    const near = mem();
    const middle = mem();
    const last = mem();
    const metadata = new MemoryMetadataStore();
    const tiered = createTieredCache([near, middle, last], metadata);
    await put(middle, 'k', body, {}, { etag: 'L' });
    await put(last, 'k', body, {}, { etag: 'N' });
    await ranged(tiered, 'k');
    await settleBackgroundWork(tiered);
    assert.equal(await etagOf(near, 'k'), undefined);
    assert.equal(await metadata.get('', parseKey('k')), undefined, 'nothing seeded from a non-authoritative answer');
  });

  test('an unrecorded key deleted during its heal is not resurrected in tier 0', async () => {
    const { near, farInner, metadata, tiered, heals, hold } = setup();
    await put(farInner, 'k', body, {}, { etag: 'S' });
    const release = hold();
    await ranged(tiered, 'k');
    while (heals.length === 0) await sleep(5);
    assert.equal((await metadata.get('', parseKey('k')))?.value, '"S"', 'seeded before the copy');
    await tiered.delete(parseKey('k'));
    release();
    await settleBackgroundWork(tiered);
    assert.equal(await etagOf(near, 'k'), undefined);
    assert.equal(await etagOf(tiered, 'k'), undefined);
  });

  test('a heal never overwrites a newer tier 0: a deeper lagging tier with another ETag does not heal', async () => {
    // Three tiers: the middle one lags behind a replacement that reached tier 0 and the last tier.
    const near = mem();
    const middleInner = mem();
    const last = mem();
    const heals: string[] = [];
    const middle = instrumented(middleInner, async (inner, k, c) => {
      if (c.ifMatch && !c.range) heals.push(k);
      return inner.open(k, c);
    });
    const metadata = new MemoryMetadataStore();
    const tiered = createTieredCache([near, middle, last], metadata);
    await put(tiered, 'k', 'newest bytes', {}, { etag: 'N' });
    await put(middleInner, 'k', body, {}, { etag: 'L' }); // lagging copy
    // Pinned to the lagging version (a download that started long ago): tier 0 refuses it, the
    // middle tier's copy is stale and evicted, the last tier refuses too.
    assert.equal(await code(tiered.open(parseKey('k'), { range: 'bytes=0-1', ifMatch: '"L"' })), 'precondition-failed');
    await settleBackgroundWork(tiered);
    assert.deepEqual(heals, []);
    assert.equal(await etagOf(near, 'k'), '"N"');
  });

  test('heals are deduplicated per key and bounded; a Delete during the copy aborts the commit', async () => {
    const { near, farInner, metadata, tiered, heals, hold } = setup();
    for (const k of ['k0', 'k1', 'k2', 'k3', 'k4', 'k5']) {
      await put(farInner, k, body, {}, { etag: `e-${k}` });
      await metadata.set('', parseKey(k), `"e-${k}"`);
    }
    const release = hold();
    await ranged(tiered, 'k0');
    await ranged(tiered, 'k0');
    await sleep(10);
    assert.equal(heals.length, 1, 'one heal per key at a time');
    for (const k of ['k1', 'k2', 'k3', 'k4', 'k5']) await ranged(tiered, k);
    await sleep(10);
    assert.equal(heals.length, 4, 'at most 4 heals run at once; the rest are skipped');
    // k0 is deleted while its heal holds the body: committing now would resurrect it.
    await tiered.delete(parseKey('k0'));
    release();
    await settleBackgroundWork(tiered);
    assert.equal(await etagOf(near, 'k0'), undefined, 'a deleted object is not resurrected in tier 0');
    assert.equal(await etagOf(tiered, 'k0'), undefined);
    for (const k of ['k1', 'k2', 'k3']) assert.equal(await etagOf(near, k), `"e-${k}"`);
    for (const k of ['k4', 'k5']) assert.equal(await etagOf(near, k), undefined);
    await ranged(tiered, 'k4');
    await settleBackgroundWork(tiered);
    assert.equal(await etagOf(near, 'k4'), '"e-k4"', 'a later read re-triggers a skipped heal');
  });

  test('close cancels and drains running heals', async () => {
    const { near, farInner, metadata } = setup();
    const writers: Writable[] = [];
    // Track tier-0 writers to see the heal's copy discarded rather than committed.
    const tracked: Cache = { ...instrumented(near, (inner, k, c) => inner.open(k, c)), create: (k, h, o) => {
      const w = near.create(k, h, o);
      writers.push(w);
      return w;
    } };
    let releaseOpen!: () => void;
    const gateOpen = new Promise<void>((resolve) => (releaseOpen = resolve));
    // The heal's source read is held open until after close() began.
    const far = instrumented(farInner, async (inner, k, c) => {
      const res = await inner.open(k, c);
      if (c.ifMatch && !c.range) await gateOpen;
      return res;
    });
    const tiered = createTieredCache([tracked, far], metadata);
    await put(farInner, 'k', body, {}, { etag: 'S' });
    await metadata.set('', parseKey('k'), '"S"');
    await ranged(tiered, 'k');
    let closed = false;
    const closing = tiered.close().then(() => (closed = true));
    await sleep(10);
    assert.equal(closed, false, 'close waits for the running heal');
    releaseOpen();
    await closing;
    assert.equal(writers.length, 1);
    assert.equal(writers[0]?.destroyed, true);
    assert.equal(writers[0]?.writableFinished, false, 'the cancelled heal never committed');
  });
});

test('statAuthoritative answers from the last tier only: a near copy cannot hide a lost shared object', async () => {
  const near = mem().namespace('a');
  const far = mem().namespace('a');
  const tiered = createTieredCache([near, far], new MemoryMetadataStore()).namespace('a');
  await put(tiered, 'k', 'both');
  assert.equal((await tiered.statAuthoritative(parseKey('k'))).size, 4);
  await far.delete(parseKey('k')); // the shared object is lost; the near copy lives on
  assert.equal((await tiered.stat(parseKey('k'))).size, 4, 'an ordinary stat still finds the near copy');
  await assert.rejects(tiered.statAuthoritative(parseKey('k')), (err: unknown) => isCacheError(err, 'not-found'));
});
