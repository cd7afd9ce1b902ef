import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PutObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createS3Cache } from '../../src/cache/s3.js';
import { createDiskCache } from '../../src/cache/disk.js';
import { createTieredCache } from '../../src/cache/tiered.js';
import { S3MetadataStore } from '../../src/metadata/s3.js';
import { sharedS3Client, verifyBucket } from '../../src/s3/client.js';
import { parseKey } from '../../src/cache/key.js';
import { startS3rver, type S3rverHandle } from '../fixtures/s3rver.js';
import { cacheConformance, put, readAll } from './conformance.js';

const MiB = 1024 * 1024;

function clientFor(s3: S3rverHandle): S3Client {
  return sharedS3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    'use-ssl': false,
    'skip-ssl-verify': false,
    'use-path-style': true,
    'access-key-id': 'S3RVER',
    'secret-access-key': 'S3RVER',
  });
}

function cacheFor(s3: S3rverHandle, overrides: Partial<Parameters<typeof createS3Cache>[0]> = {}) {
  return createS3Cache({
    client: clientFor(s3),
    bucket: s3.bucket,
    maxTtlMs: 3_600_000,
    uploadConcurrency: 2,
    uploadPartBytes: 5 * MiB,
    downloadConcurrency: 4,
    downloadPartBytes: 4 * MiB,
    ...overrides,
  });
}

cacheConformance('s3 (s3rver)', async () => {
  const s3 = await startS3rver();
  return { cache: cacheFor(s3), cleanup: () => s3.stop() };
});

cacheConformance('tiered(disk, s3) with s3 metadata', async () => {
  const s3 = await startS3rver();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-tiered-s3-'));
  const disk = await createDiskCache({ root: dir, limitBytes: 256 * MiB, maxTtlMs: 3_600_000, evictIntervalMs: 60_000 });
  const metadata = new S3MetadataStore({ client: clientFor(s3), bucket: s3.bucket, syncIntervalMs: 0 });
  return {
    cache: createTieredCache([disk, cacheFor(s3)], metadata),
    cleanup: async () => {
      await s3.stop();
      await fs.rm(dir, { recursive: true, force: true });
    },
    invalidate: { kind: 'keeps-authoritative', near: [disk] },
  };
});

/**
 * Polls `check` until it holds. The deadline is generous on purpose: background S3 requests on
 * a loaded 2-core CI machine can take seconds, and a too-tight bound only produces flakes.
 */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(20);
  }
}

let s3: S3rverHandle;
before(async () => {
  s3 = await startS3rver();
});
after(async () => {
  await s3.stop();
});

test('s3: a large object is read back by parallel ranged GETs pinned to its version', async () => {
  const cache = cacheFor(s3).namespace('big');
  const body = randomBytes(18 * MiB);
  await put(cache, 'large', body);
  s3.requests.length = 0;
  const res = await cache.open(parseKey('large'));
  assert.equal(res.size, body.length);
  assert.ok((await readAll(res.body)).equals(body));
  const ranged = s3.requests.filter((r) => r.method === 'GET' && r.range && r.path.endsWith('.data'));
  assert.equal(ranged.length, 5, `18 MiB in 4 MiB sub-ranges: ${JSON.stringify(ranged)}`);

  const part = await cache.open(parseKey('large'), { range: `bytes=${MiB}-${10 * MiB - 1}` });
  assert.equal(part.status, 206);
  assert.ok((await readAll(part.body)).equals(body.subarray(MiB, 10 * MiB)));
});

test('s3: a body no index names (crash before the commit) is invisible', async () => {
  const cache = cacheFor(s3).namespace('crash');
  const key = parseKey('orphan');
  await clientFor(s3).send(new PutObjectCommand({ Bucket: s3.bucket, Key: `crash/${key.slice(0, 2)}/${key}.${'a'.repeat(32)}.data`, Body: 'uploaded, never committed' }));
  await assert.rejects(cache.stat(key), /not found/);
  await assert.rejects(cache.open(key), /not found/);
});

test('s3: a writer destroyed mid-stream leaves no data object behind', async () => {
  const cache = cacheFor(s3).namespace('aborted');
  const writer = cache.create(parseKey('partial'), {});
  writer.on('error', () => undefined);
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => (writer.write(randomBytes(3 * MiB)) ? resolve() : writer.once('drain', () => resolve())));
  writer.destroy(new Error('client went away'));
  await new Promise((resolve) => writer.once('close', resolve));
  // Aborting the upload may finish after 'close': poll rather than pause a fixed time.
  await until(async () => ((await clientFor(s3).send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'aborted/' }))).Contents ?? []).length === 0, 'the aborted upload leaves nothing');
  await assert.rejects(cache.stat(parseKey('partial')), /not found/);
});

test('s3: a missing bucket or unreachable endpoint fails with a clear message', async () => {
  await assert.rejects(verifyBucket(clientFor(s3), 'no-such-bucket', 'cache s3'), /cache s3: S3 bucket "no-such-bucket" is not usable \(bucket does not exist\)/);
  const dead = sharedS3Client({ endpoint: 'http://127.0.0.1:1', region: 'us-east-1', 'use-ssl': false, 'skip-ssl-verify': false, 'use-path-style': true, 'access-key-id': 'x', 'secret-access-key': 'y' });
  await assert.rejects(verifyBucket(dead, 'b', 'cache s3'), /cache s3: S3 bucket "b" is not usable \(.*ECONNREFUSED/);
});

type Send = () => Promise<unknown>;

/**
 * A client of its own (not the shared one) whose requests pass through `hook`, which decides when
 * to send them, so a test can hold one request (a TTL renewal, a lazy-expiry delete) while a peer
 * writes.
 */
function interceptedClient(s3: S3rverHandle, hook: (command: string, input: { Key?: string }, send: Send) => Promise<unknown>): S3Client {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  client.middlewareStack.add(
    (next, context) => (args) => hook(context.commandName ?? '', args.input as { Key?: string }, () => next(args)) as ReturnType<typeof next>,
    { step: 'initialize', name: 'testHold' },
  );
  return client;
}

/**
 * Holds the first request `matches` accepts after `arm()` until `release()`. `entered` resolves
 * when it arrives, `done` once S3 answered it (success or refusal).
 */
function holdOne(matches: (command: string, input: { Key?: string }) => boolean) {
  let armed = false;
  let release!: () => void;
  let entered!: () => void;
  let finished!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  return {
    arm: () => (armed = true),
    entered: new Promise<void>((resolve) => (entered = resolve)),
    done: new Promise<void>((resolve) => (finished = resolve)),
    release: () => release(),
    hook: async (command: string, input: { Key?: string }, send: Send) => {
      if (!armed || !matches(command, input)) return send();
      armed = false;
      entered();
      await gate;
      try {
        return await send();
      } finally {
        finished();
      }
    },
  };
}

const indexPath = (ns: string, key: string) => `${ns}/${key.slice(0, 2)}/${key}`;

test('s3: sliding TTL — a read in the second half of the life extends it; one in the first half writes nothing', async () => {
  const cache = cacheFor(s3, { maxTtlMs: 6000 }).namespace('slide');
  const indexPuts = (key: string) => s3.requests.filter((r) => r.method === 'PUT' && r.path.endsWith(indexPath('slide', parseKey(key)))).length;
  await put(cache, 'young', 'full life', {});
  s3.requests.length = 0; // forget the write's own index PUT
  await readAll((await cache.open(parseKey('young'))).body);
  // Short-lived objects are written only now, so a slow machine cannot spend their life before
  // the read that must renew one. Expiries are rounded up to the second: gone by put + 3 s.
  await put(cache, 'read', 'kept alive', {}, { ttlMs: 2000 });
  await put(cache, 'unread', 'left alone', {}, { ttlMs: 2000 });
  const shortLivedPut = Date.now();
  const writtenOnce = indexPuts('read');
  // ≤ 3 s left of a 6 s maximum: this read renews to now + 6 s. The renewal PUT is fire-and-forget,
  // so poll for it rather than guess how long a loaded machine takes to send it.
  await readAll((await cache.open(parseKey('read'))).body);
  await until(() => indexPuts('read') > writtenOnce, 'the index of the read object is rewritten');
  // A renewal of "young" would have been scheduled before two writes and this read, so it would
  // have arrived by now; it is checked again at the end, seconds later.
  assert.equal(indexPuts('young'), 0, 'no renewal while more than half the max TTL remains');
  await sleep(Math.max(0, shortLivedPut + 3300 - Date.now())); // past the original expiry of both
  assert.equal((await cache.stat(parseKey('read'))).size, 'kept alive'.length);
  await assert.rejects(cache.stat(parseKey('unread')), /not found/);
  assert.equal(indexPuts('young'), 0, 'no renewal while more than half the max TTL remains');
});

test('s3: a TTL renewal never undoes a newer write', async () => {
  const ns = 'slide-race';
  const key = parseKey('k');
  const hold = holdOne((command, input) => command === 'PutObjectCommand' && input.Key === indexPath(ns, key));
  const reader = createS3Cache({ client: interceptedClient(s3, hold.hook), bucket: s3.bucket, maxTtlMs: 6000, uploadConcurrency: 1, uploadPartBytes: 5 * MiB, downloadConcurrency: 1, downloadPartBytes: 4 * MiB }).namespace(ns);
  const writer = cacheFor(s3, { maxTtlMs: 6000 }).namespace(ns);
  await put(writer, 'k', 'old bytes', {}, { ttlMs: 2000, etag: 'old' });
  hold.arm();
  await readAll((await reader.open(key)).body); // schedules the renewal of "old"
  await hold.entered;
  await put(writer, 'k', 'new bytes', {}, { etag: 'new' });
  hold.release();
  await hold.done;
  const got = await writer.open(key);
  assert.equal(got.headers['etag'], '"new"', 'the renewal was conditional on the index it read');
  assert.equal((await readAll(got.body)).toString(), 'new bytes');
});

test('s3: an expired object is kept (no delete on read) and stays readable stale', async () => {
  const ns = 'expiry-kept';
  const key = parseKey('k');
  const cache = cacheFor(s3).namespace(ns);
  await put(cache, 'k', 'short-lived', {}, { ttlMs: 1000 });
  await sleep(2100);
  s3.requests.length = 0;
  await assert.rejects(cache.stat(key), /not found/);
  await assert.rejects(cache.open(key), /not found/);
  const got = await cache.open(key, { allowStale: true });
  assert.equal(got.stale, true);
  assert.equal((await readAll(got.body)).toString(), 'short-lived');
  assert.equal(s3.requests.filter((r) => r.method === 'DELETE').length, 0, 'reads delete nothing');
  assert.equal(s3.requests.filter((r) => r.method === 'PUT').length, 0, 'a stale read does not renew the TTL');
  const listed = ((await clientFor(s3).send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: indexPath(ns, key) }))).Contents ?? []).map((o) => o.Key);
  assert.equal(listed.length, 2, 'index and body are both still there');
});
