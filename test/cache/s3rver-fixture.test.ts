import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startS3rver } from '../fixtures/s3rver.js';

test('s3rver fixture serves a bucket on 127.0.0.1 and logs requests', async (t) => {
  const s3 = await startS3rver();
  t.after(() => s3.stop());
  assert.match(s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  const put = await fetch(`${s3.endpoint}/${s3.bucket}/k1`, { method: 'PUT', body: 'hello' });
  assert.equal(put.status, 200);
  const get = await fetch(`${s3.endpoint}/${s3.bucket}/k1`, { headers: { range: 'bytes=1-2' } });
  assert.equal(await get.text(), 'el');
  const gets = s3.requests.filter((r) => r.method === 'GET' && r.path === `/${s3.bucket}/k1`);
  assert.equal(gets.length, 1);
  assert.equal(gets[0]?.range, 'bytes=1-2');
});

test('the conditional front enforces If-Match on DELETE, which s3rver alone ignores', async (t) => {
  const s3 = await startS3rver();
  t.after(() => s3.stop());
  const url = `${s3.endpoint}/${s3.bucket}/cond`;
  const put = await fetch(url, { method: 'PUT', body: 'v1' });
  const etag = put.headers.get('etag') ?? '';
  assert.ok(etag);
  assert.equal((await fetch(url, { method: 'DELETE', headers: { 'if-match': '"not-it"' } })).status, 412);
  assert.equal((await fetch(url)).status, 200, 'a refused conditional delete leaves the object');
  assert.equal((await fetch(url, { method: 'DELETE', headers: { 'if-match': etag } })).status, 204);
  assert.equal((await fetch(url)).status, 404);
  // s3rver itself deletes regardless of the condition.
  await fetch(url, { method: 'PUT', body: 'v2' });
  await fetch(`${s3.rawEndpoint}/${s3.bucket}/cond`, { method: 'DELETE', headers: { 'if-match': '"not-it"' } });
  assert.equal((await fetch(url)).status, 404);
});
