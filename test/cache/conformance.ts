import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Cache } from '../../src/cache/cache.js';
import { isCacheError } from '../../src/cache/errors.js';
import { parseKey } from '../../src/cache/key.js';

/** Stores `body` under `key` and waits until it is visible. */
export async function put(cache: Cache, key: string, body: Buffer | string, headers: Record<string, string> = {}, opts: { ttlMs?: number; etag?: string } = {}): Promise<void> {
  await pipeline(Readable.from([Buffer.from(body)]), cache.create(parseKey(key), headers, opts));
}

/** Reads a whole body. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isCacheError(err), `expected CacheError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${code}`);
}

/**
 * What `invalidate` does on the cache under test; it differs by design (reference §2.2, §3.5, §3.6):
 * - `removes`: a bare backend (memory, disk, s3) evicts its copy, because as a tier it is only
 *   ever asked to drop a copy that may be stale;
 * - `keeps-authoritative`: a tiered cache evicts the copies in its near tiers (`near`, root views)
 *   and never touches the last, authoritative tier, so the object stays readable;
 * - `no-op`: the single configured cache as the server wires it (src/app/wiring.ts wraps it),
 *   because with one tier that tier is the authority and there is nothing local to evict.
 */
export type InvalidateSemantics = { kind: 'removes' } | { kind: 'keeps-authoritative'; near: Cache[] } | { kind: 'no-op' };

/** What `make` returns: the cache under test, its cleanup, and its invalidate semantics (default `removes`). */
export interface MadeCache {
  cache: Cache;
  cleanup(): Promise<void>;
  invalidate?: InvalidateSemantics;
}

/**
 * The behaviour every Cache must show (reference §2 and §11.1), run against a fresh cache from
 * `make`. Backends run it from their own test files. Nothing is skipped: where backends differ
 * by design (invalidate), the expectation comes from `make`.
 */
export function cacheConformance(name: string, make: () => Promise<MadeCache>): void {
  describe(`cache conformance: ${name}`, () => {
    let root: Cache;
    let cleanup: () => Promise<void>;
    let semantics: InvalidateSemantics;
    let n = 0;
    const fresh = () => root.namespace(`t${++n}`);

    before(async () => {
      const made = await make();
      root = made.cache;
      cleanup = made.cleanup;
      semantics = made.invalidate ?? { kind: 'removes' };
    });
    after(async () => {
      await root.close();
      await cleanup();
    });

    test('create then open returns body and headers', async () => {
      const c = fresh();
      await put(c, 'k', 'hello', { 'Content-Type': 'text/plain', 'X-Owner': 'ci' });
      const got = await c.open(parseKey('k'));
      assert.equal(got.status, 200);
      assert.equal((await readAll(got.body)).toString(), 'hello');
      assert.equal(got.headers['content-type'], 'text/plain');
      assert.equal(got.headers['x-owner'], 'ci');
      assert.equal(got.headers['content-length'], '5');
      assert.match(got.headers['etag'] ?? '', /^".+"$/);
      assert.ok(got.headers['last-modified']);
    });

    test('missing keys are not-found for stat, open and delete', async () => {
      const c = fresh();
      await rejectsWith(c.stat(parseKey('nope')), 'not-found');
      await rejectsWith(c.open(parseKey('nope')), 'not-found');
      await rejectsWith(c.delete(parseKey('nope')), 'not-found');
      await c.invalidate(parseKey('nope'));
    });

    test('stat reports size and headers without a body', async () => {
      const c = fresh();
      await put(c, 'k', 'abcdef', {}, { etag: 'v1' });
      const st = await c.stat(parseKey('k'));
      assert.equal(st.size, 6);
      assert.equal(st.headers['etag'], '"v1"');
      assert.equal(st.headers['content-length'], '6');
    });

    test('transport headers are not stored', async () => {
      const c = fresh();
      await put(c, 'k', 'x', { 'Content-Length': '1', Range: 'bytes=0-0', 'Time-To-Live': '1h', 'Content-Range': 'bytes 0-0/1' });
      const st = await c.stat(parseKey('k'));
      assert.equal(st.headers['range'], undefined);
      assert.equal(st.headers['time-to-live'], undefined);
      assert.equal(st.headers['content-range'], undefined);
    });

    test('overwrite replaces body and ETag', async () => {
      const c = fresh();
      await put(c, 'k', 'one', {}, { etag: 'a' });
      await put(c, 'k', 'second', {}, { etag: 'b' });
      const got = await c.open(parseKey('k'));
      assert.equal((await readAll(got.body)).toString(), 'second');
      assert.equal(got.headers['etag'], '"b"');
    });

    test('delete removes', async () => {
      const c = fresh();
      await put(c, 'k', 'x');
      await c.delete(parseKey('k'));
      await rejectsWith(c.open(parseKey('k')), 'not-found');
      await rejectsWith(c.stat(parseKey('k')), 'not-found');
      await rejectsWith(c.delete(parseKey('k')), 'not-found');
      // A write after a delete is an ordinary new object.
      await put(c, 'k', 'again');
      assert.equal((await readAll((await c.open(parseKey('k'))).body)).toString(), 'again');
    });

    test('invalidate follows the documented semantics and tolerates absence', async () => {
      const c = fresh();
      const key = parseKey('k');
      await c.invalidate(parseKey('never-written'));
      await put(c, 'k', 'payload', {}, { etag: 'inv' });
      if (semantics.kind === 'keeps-authoritative') {
        const near = semantics.near.map((t) => t.namespace(c.ns));
        for (const t of near) assert.equal((await t.stat(key)).headers['etag'], '"inv"', 'a tiered write reaches every near tier');
        await c.invalidate(key);
        for (const t of near) await rejectsWith(t.stat(key), 'not-found');
        // The authoritative tier kept it, so the object is still served (and refills tier 0).
        const got = await c.open(key);
        assert.equal((await readAll(got.body)).toString(), 'payload');
        assert.equal(got.headers['etag'], '"inv"');
      } else if (semantics.kind === 'no-op') {
        await c.invalidate(key);
        assert.equal((await readAll((await c.open(key)).body)).toString(), 'payload');
      } else {
        await c.invalidate(key);
        await rejectsWith(c.stat(key), 'not-found');
        await rejectsWith(c.open(key), 'not-found');
      }
      await c.invalidate(key);
    });

    test('If-Match and If-None-Match', async () => {
      const c = fresh();
      await put(c, 'k', 'x', {}, { etag: 'e1' });
      const key = parseKey('k');
      assert.equal((await c.stat(key, { ifMatch: '"e1"' })).size, 1);
      assert.equal((await c.stat(key, { ifMatch: '*' })).size, 1);
      await rejectsWith(c.stat(key, { ifMatch: '"other"' }), 'precondition-failed');
      await rejectsWith(c.open(key, { ifMatch: '"other"' }), 'precondition-failed');
      const nm = (await rejectsWith(c.open(key, { ifNoneMatch: '"e1"' }), 'not-modified')) as { headers?: Record<string, string> };
      assert.equal(nm.headers?.['etag'], '"e1"');
      await rejectsWith(c.open(key, { ifNoneMatch: '"x", "e1"' }), 'not-modified');
      await rejectsWith(c.open(key, { ifNoneMatch: '*' }), 'not-modified');
      const ok = await c.open(key, { ifNoneMatch: '"zzz"' });
      await readAll(ok.body);
    });

    test('single ranges, suffix ranges and If-Range', async () => {
      const c = fresh();
      await put(c, 'k', '0123456789', {}, { etag: 'r' });
      const key = parseKey('k');
      const mid = await c.open(key, { range: 'bytes=2-4' });
      assert.equal(mid.status, 206);
      assert.equal((await readAll(mid.body)).toString(), '234');
      assert.equal(mid.headers['content-range'], 'bytes 2-4/10');
      assert.equal(mid.headers['content-length'], '3');
      assert.equal((await readAll((await c.open(key, { range: 'bytes=-3' })).body)).toString(), '789');
      assert.equal((await readAll((await c.open(key, { range: 'bytes=7-' })).body)).toString(), '789');
      assert.equal((await readAll((await c.open(key, { range: 'bytes=8-100' })).body)).toString(), '89');
      const multi = await c.open(key, { range: 'bytes=0-1,3-4' });
      assert.equal(multi.status, 200);
      await readAll(multi.body);
      const garbage = await c.open(key, { range: 'pages=1-2' });
      assert.equal(garbage.status, 200);
      await readAll(garbage.body);
      const err = (await rejectsWith(c.open(key, { range: 'bytes=10-' }), 'range-not-satisfiable')) as { size?: number };
      assert.equal(err.size, 10);
      const stale = await c.open(key, { range: 'bytes=0-0', ifRange: '"old"' });
      assert.equal(stale.status, 200);
      await readAll(stale.body);
      const fresh206 = await c.open(key, { range: 'bytes=0-0', ifRange: '"r"' });
      assert.equal(fresh206.status, 206);
      await readAll(fresh206.body);
    });

    test('a write is invisible until it is closed, then visible (§11.1 #8)', async () => {
      const c = fresh();
      const writer = c.create(parseKey('k'), {});
      await new Promise<void>((resolve, reject) => writer.write(Buffer.from('part one, '), (err) => (err ? reject(err) : resolve())));
      await rejectsWith(c.stat(parseKey('k')), 'not-found');
      await rejectsWith(c.open(parseKey('k')), 'not-found');
      await new Promise<void>((resolve, reject) => {
        writer.once('error', reject);
        writer.end(Buffer.from('part two'), () => resolve());
      });
      assert.equal((await readAll((await c.open(parseKey('k'))).body)).toString(), 'part one, part two');
    });

    test('Last-Modified is added when absent and kept exactly when given (§11.1 #11)', async () => {
      const c = fresh();
      const before = Date.now() - 1000;
      await put(c, 'auto', 'x');
      const added = Date.parse((await c.stat(parseKey('auto'))).headers['last-modified'] ?? '');
      assert.ok(Number.isFinite(added) && added >= before - 1000 && added <= Date.now() + 1000, 'a parseable, current Last-Modified');
      const explicit = 'Wed, 21 Oct 2015 07:28:00 GMT';
      await put(c, 'given', 'x', { 'Last-Modified': explicit });
      assert.equal((await c.stat(parseKey('given'))).headers['last-modified'], explicit);
      assert.equal((await c.open(parseKey('given'))).headers['last-modified'], explicit);
    });

    test('stat answers conditionals like open: 304 carries the ETag, 412 on a mismatch, a Range is ignored (§11.1 #17, #18)', async () => {
      const c = fresh();
      await put(c, 'k', '0123456789', {}, { etag: 'conditional-etag' });
      const key = parseKey('k');
      const nm = (await rejectsWith(c.stat(key, { ifNoneMatch: '"conditional-etag"' }), 'not-modified')) as { headers?: Record<string, string> };
      assert.equal(nm.headers?.['etag'], '"conditional-etag"');
      assert.equal((await c.stat(key, { ifNoneMatch: '"other"' })).size, 10);
      await rejectsWith(c.stat(key, { ifMatch: '"other"' }), 'precondition-failed');
      const ranged = await c.stat(key, { ifMatch: '"conditional-etag"', ...({ range: 'bytes=2-5' } as object) });
      assert.equal(ranged.headers['content-range'], undefined);
      assert.equal(ranged.headers['content-length'], '10');
      // If-Match with a range: a hit serves the range, a miss is 412 before any byte.
      const hit = await c.open(key, { ifMatch: '"conditional-etag"', range: 'bytes=2-5' });
      assert.equal((await readAll(hit.body)).toString(), '2345');
      await rejectsWith(c.open(key, { ifMatch: '"stale"', range: 'bytes=2-5' }), 'precondition-failed');
    });

    test('zero-length objects and 416 on them', async () => {
      const c = fresh();
      await put(c, 'k', '');
      const got = await c.open(parseKey('k'));
      assert.equal((await readAll(got.body)).length, 0);
      assert.equal(got.headers['content-length'], '0');
      await rejectsWith(c.open(parseKey('k'), { range: 'bytes=0-' }), 'range-not-satisfiable');
    });

    test('a 4 MiB object streams back identical', async () => {
      const c = fresh();
      const body = randomBytes(4 << 20);
      await put(c, 'big', body);
      const got = await c.open(parseKey('big'));
      assert.ok((await readAll(got.body)).equals(body));
      const tail = await c.open(parseKey('big'), { range: `bytes=${(4 << 20) - 10}-` });
      assert.ok((await readAll(tail.body)).equals(body.subarray(body.length - 10)));
    });

    test('an aborted or destroyed writer leaves nothing visible', async () => {
      const c = fresh();
      const controller = new AbortController();
      const w = c.create(parseKey('aborted'), {}, { signal: controller.signal });
      w.on('error', () => undefined);
      w.write(Buffer.from('partial'));
      controller.abort();
      await new Promise((resolve) => w.once('close', resolve));
      assert.match(String(w.errored?.message), /cancel/);
      await rejectsWith(c.stat(parseKey('aborted')), 'not-found');

      const d = c.create(parseKey('destroyed'), {});
      d.on('error', () => undefined);
      d.write(Buffer.alloc(1024, 1));
      d.destroy(new Error('client went away'));
      await new Promise((resolve) => d.once('close', resolve));
      await rejectsWith(c.open(parseKey('destroyed')), 'not-found');

      await put(c, 'kept', 'old');
      const r = c.create(parseKey('kept'), {});
      r.write('new-but-broken');
      r.destroy();
      await new Promise((resolve) => r.once('close', resolve));
      assert.equal((await readAll((await c.open(parseKey('kept'))).body)).toString(), 'old');
    });

    test('a failed upstream stream stores nothing', async () => {
      const c = fresh();
      const source = new Readable({
        read() {
          this.push(Buffer.alloc(1000));
          this.destroy(new Error('upstream reset'));
        },
      });
      await assert.rejects(pipeline(source, c.create(parseKey('k'), {})), /upstream reset/);
      await rejectsWith(c.stat(parseKey('k')), 'not-found');
    });

    test('concurrent writers to one key never tear an object', async () => {
      const c = fresh();
      const bodies = [0, 1, 2, 3].map((i) => randomBytes(200_000 + i));
      await Promise.all(bodies.map((b) => put(c, 'k', b, {}, { etag: createHash('sha256').update(b).digest('hex') })));
      const got = await c.open(parseKey('k'));
      const body = await readAll(got.body);
      assert.equal(got.headers['etag'], `"${createHash('sha256').update(body).digest('hex')}"`);
      assert.ok(bodies.some((b) => b.equals(body)));
    });

    test('namespace views replace, never nest, and are isolated', async () => {
      const a = root.namespace('alpha');
      const b = a.namespace('beta');
      assert.equal(b.ns, 'beta');
      await put(a, 'k', 'in alpha');
      await rejectsWith(b.stat(parseKey('k')), 'not-found');
      assert.throws(() => root.namespace('../x'), /invalid namespace/);
      assert.throws(() => root.namespace('.hidden'), /invalid namespace/);
      let names: string[];
      try {
        names = await root.listNamespaces();
      } catch (err) {
        // Shared stores (s3) do not list; isolation is what matters here.
        assert.ok(isCacheError(err, 'stats-unavailable'));
        await a.delete(parseKey('k'));
        return;
      }
      assert.ok(names.includes('alpha'));
      assert.deepEqual(names, [...names].sort());
      await a.delete(parseKey('k'));
      assert.ok(!(await root.listNamespaces()).includes('alpha'));
    });

    test('stats counts objects and bytes', async () => {
      let stats;
      try {
        stats = await root.stats();
      } catch (err) {
        assert.ok(isCacheError(err, 'stats-unavailable'));
        return;
      }
      const before = stats;
      const c = fresh();
      await put(c, 'k', '12345');
      const afterPut = await root.stats();
      assert.equal(afterPut.objects, before.objects + 1);
      assert.equal(afterPut.size, before.size + 5);
      assert.ok(afterPut.capacity > 0);
    });

    test('expired objects are not-found but kept, readable stale', async () => {
      const c = fresh();
      await put(c, 'k', 'short-lived', {}, { ttlMs: 1000 });
      assert.equal((await c.stat(parseKey('k'))).size, 11);
      await new Promise((resolve) => setTimeout(resolve, 2200));
      await rejectsWith(c.stat(parseKey('k')), 'not-found');
      await rejectsWith(c.open(parseKey('k')), 'not-found');
      // Kept until space is needed, and readable as stale (stale-if-error serves it).
      const st = await c.stat(parseKey('k'), { allowStale: true });
      assert.equal(st.stale, true);
      assert.equal(st.size, 11);
      const got = await c.open(parseKey('k'), { allowStale: true });
      assert.equal(got.stale, true);
      assert.ok(got.expiresAt !== undefined && got.expiresAt <= Date.now());
      if (got.storedAt !== undefined) assert.ok(got.storedAt <= got.expiresAt);
      assert.equal((await readAll(got.body)).toString(), 'short-lived');
      // Still not-found to ordinary readers after a stale read (no renewal).
      await rejectsWith(c.open(parseKey('k')), 'not-found');
      // An expired object can be deleted.
      await c.delete(parseKey('k'));
      await rejectsWith(c.stat(parseKey('k'), { allowStale: true }), 'not-found');
    });

    test('a fresh object reads as not stale with allowStale', async () => {
      const c = fresh();
      await put(c, 'k', 'fresh');
      const got = await c.open(parseKey('k'), { allowStale: true });
      assert.notEqual(got.stale, true);
      assert.equal((await readAll(got.body)).toString(), 'fresh');
    });

    test('describes itself', async () => {
      assert.ok(String(root).length > 0);
      assert.notEqual(String(root), '[object Object]');
    });
  });
}
