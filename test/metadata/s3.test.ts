import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { S3Client } from '@aws-sdk/client-s3';
import { S3MetadataStore } from '../../src/metadata/s3.js';
import { sharedS3Client } from '../../src/s3/client.js';
import { startS3rver, type S3rverHandle } from '../fixtures/s3rver.js';

let s3: S3rverHandle;
before(async () => {
  s3 = await startS3rver();
});
after(async () => {
  await s3.stop();
});

const clientAt = (endpoint: string) =>
  sharedS3Client({ endpoint, region: 'us-east-1', 'use-ssl': false, 'skip-ssl-verify': false, 'use-path-style': true, 'access-key-id': 'S3RVER', 'secret-access-key': 'S3RVER' });

const store = (opts: { now?: () => number; syncIntervalMs?: number } = {}) =>
  new S3MetadataStore({ client: clientAt(s3.endpoint), bucket: s3.bucket, syncIntervalMs: opts.syncIntervalMs ?? 0, ...(opts.now ? { now: opts.now } : {}) });

test('metadata s3: compare-and-set creates once, refuses stale versions, namespaces are separate', async () => {
  const a = store();
  const b = store();
  assert.equal(await a.compareAndSet('ns', 'k', 'one', null), true);
  assert.equal(await b.compareAndSet('ns', 'k', 'two', null), false, 'a second create loses');
  const seen = await b.get('ns', 'k');
  assert.equal(seen?.value, 'one');
  assert.equal(await b.compareAndSet('ns', 'k', 'three', seen!.version), true);
  assert.equal(await a.compareAndSet('ns', 'k', 'four', seen!.version), false, 'a stale version loses');
  assert.equal((await a.get('ns', 'k'))?.value, 'three');
  assert.equal(await a.get('', 'k'), undefined);
  await a.delete('ns', 'k');
  assert.equal(await b.get('ns', 'k'), undefined);
});

test('metadata s3: 16 replicas race for one claim and exactly one wins; expired claims are free again', async () => {
  let now = 1_000_000;
  const replicas = Array.from({ length: 16 }, () => store({ now: () => now }));
  const results = await Promise.all(replicas.map((r, i) => r.claim('gen', 'snapshot', `replica-${i}`, 60_000)));
  assert.equal(results.filter(Boolean).length, 1);
  const winner = results.indexOf(true);
  assert.equal(await replicas[(winner + 1) % 16]!.claim('gen', 'snapshot', 'late', 60_000), false);
  assert.equal(await replicas[winner]!.claim('gen', 'snapshot', `replica-${winner}`, 60_000), true, 'the holder renews');
  now += 60_001; // the holder crashed and never renewed
  assert.equal(await replicas[0]!.claim('gen', 'snapshot', 'successor', 60_000), true);
  await replicas[winner]!.release('gen', 'snapshot', `replica-${winner}`);
  assert.equal(await replicas[1]!.claim('gen', 'snapshot', 'third', 60_000), false, 'release by a former holder leaves the new claim');
  await replicas[0]!.release('gen', 'snapshot', 'successor');
  assert.equal(await replicas[1]!.claim('gen', 'snapshot', 'third', 60_000), true);
});

test('metadata s3: reads are reused for the sync interval, own writes are seen at once', async () => {
  let now = 0;
  const reader = store({ now: () => now, syncIntervalMs: 15_000 });
  const writer = store();
  await writer.set('ns', 'etag', '"v1"');
  assert.equal((await reader.get('ns', 'etag'))?.value, '"v1"');
  await writer.set('ns', 'etag', '"v2"');
  assert.equal((await reader.get('ns', 'etag'))?.value, '"v1"', 'within the window the last answer is reused');
  now += 15_000;
  assert.equal((await reader.get('ns', 'etag'))?.value, '"v2"');
  await reader.set('ns', 'etag', '"v3"');
  assert.equal((await reader.get('ns', 'etag'))?.value, '"v3"');
});

test('metadata s3: the start-up probe tells an enforcing endpoint from plain s3rver', async () => {
  assert.equal(await store().enforcesConditionalWrites(), true);
  const raw = new S3MetadataStore({ client: clientAt(s3.rawEndpoint), bucket: s3.bucket, syncIntervalMs: 0 });
  assert.equal(await raw.enforcesConditionalWrites(), false, 's3rver itself ignores If-None-Match');
});

test('metadata s3: with S3 unreachable, reads serve the last value seen and a failed read is not retried within the interval', async () => {
  const own = await startS3rver();
  let now = 0;
  let sends = 0;
  const client = new S3Client({ endpoint: own.endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  client.middlewareStack.add((next) => (args) => {
    sends++;
    return next(args);
  }, { step: 'initialize', name: 'countSends' });
  const reader = new S3MetadataStore({ client, bucket: own.bucket, syncIntervalMs: 1000, now: () => now });
  try {
    await reader.set('ns', 'seen', '"v1"');
    await own.stop();
    now += 1000;
    assert.equal((await reader.get('ns', 'seen'))?.value, '"v1"', 'the last value seen keeps being served');
    await assert.rejects(reader.get('ns', 'never-read'), /metadata s3: read \.metadata\/ns\/values\/\w+\.json failed/);
    const before = sends;
    await assert.rejects(reader.get('ns', 'never-read'), /metadata s3: read/);
    assert.equal((await reader.get('ns', 'seen'))?.value, '"v1"');
    assert.equal(sends, before, 'within the interval neither key goes back to S3');
    now += 1000;
    await assert.rejects(reader.get('ns', 'never-read'));
    assert.equal(sends, before + 1, 'after the interval S3 is tried again');
  } finally {
    await own.stop();
  }
});

test("metadata s3 { lock-ttl } (cachew's deprecated attribute) loads with a warning that names it and says why", async () => {
  const { metadataProviders } = await import('../../src/metadata/registry.js');
  const provider = metadataProviders.find((p) => p.spec.name === 's3')!;
  const warnings: string[] = [];
  const logger = { warn: (_obj: object, msg: string) => void warnings.push(msg) };
  const { globalBlockSchemas } = await import('../../src/config/global-schema.js');
  const s3Settings = globalBlockSchemas.s3.parse({ endpoint: s3.endpoint, region: 'us-east-1', 'use-ssl': false, 'use-path-style': true, 'access-key-id': 'S3RVER', 'secret-access-key': 'S3RVER' });
  const config = provider.spec.schema.parse({ bucket: s3.bucket, 'lock-ttl': '30s' });
  const withLockTtl = await provider.create(config, { state: '/tmp', s3: s3Settings, logger });
  await withLockTtl.close();
  assert.ok(warnings.some((w) => /lock-ttl has no effect in hoard/.test(w)), warnings.join('\n'));
  const before = warnings.length;
  const plain = await provider.create(provider.spec.schema.parse({ bucket: s3.bucket }), { state: '/tmp', s3: s3Settings, logger });
  await plain.close();
  assert.ok(!warnings.slice(before).some((w) => /lock-ttl/.test(w)), 'no warning when it is not set');
});
