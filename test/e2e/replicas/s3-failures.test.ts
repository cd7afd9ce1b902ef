/**
 * Failure paths of the S3 tier with real processes: a replica killed with SIGKILL mid-upload
 * leaves nothing visible, and an unreachable S3 leaves the local tiers serving with clear errors.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { sharedS3Client } from '../../../src/s3/client.js';
import { startHoardProcess, type HoardProcess } from '../../fixtures/hoard-process.js';
import { s3ConfigBlock, type S3rverHandle, startS3rver } from '../../fixtures/s3rver.js';
import { startTestServer } from '../../fixtures/server.js';

const MiB = 1024 * 1024;
let work: string;

before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-s3fail-'));
});
after(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

const listed = async (s3: S3rverHandle, prefix: string) => {
  const client = sharedS3Client({ endpoint: s3.endpoint, region: 'us-east-1', 'use-ssl': false, 'skip-ssl-verify': false, 'use-path-style': true, 'access-key-id': 'S3RVER', 'secret-access-key': 'S3RVER' });
  return ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key);
};

test('kill -9 of a hoard process during an S3 upload leaves nothing visible', async () => {
  const s3 = await startS3rver();
  const state = path.join(work, 'killed');
  await fs.mkdir(state);
  const config = path.join(state, 'hoard.hcl');
  await fs.writeFile(config, `state = "${state}"\nbind = "127.0.0.1:0"\nmetrics { port = 0 }\n${s3ConfigBlock(s3.endpoint)}\ncache s3 {\n  bucket = "${s3.bucket}"\n  upload-part-size-mb = 5\n}\nmetadata memory {}\n`);
  let hoard: HoardProcess | undefined;
  try {
    hoard = await startHoardProcess({ config, run: 'sources', startTimeoutMs: 30_000 });
    const upload = http.request(`${hoard.url}/api/v1/object/crashy/big`, { method: 'POST' });
    upload.on('error', () => undefined);
    // More than two parts' worth, then stop short of the end: the upload is mid-flight.
    for (let i = 0; i < 12; i++) {
      if (!upload.write(randomBytes(MiB))) await new Promise((r) => upload.once('drain', r));
    }
    const deadline = Date.now() + 30_000;
    while (!s3.requests.some((r) => r.method === 'PUT' && r.path.includes('/crashy/')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(s3.requests.some((r) => r.method === 'PUT' && r.path.includes('/crashy/')), 'a part reached S3 before the kill');
    await hoard.stop();
    upload.destroy();
    assert.deepEqual(await listed(s3, 'crashy/'), [], 'no body or index object became visible');
    const reader = await startTestServer({ hcl: `${s3ConfigBlock(s3.endpoint)}\ncache s3 { bucket = "${s3.bucket}" }\nmetadata memory {}\nmetrics { port = 0 }\n` });
    try {
      assert.equal((await fetch(`${reader.url}/api/v1/object/crashy/big`)).status, 404);
    } finally {
      await reader.close();
    }
  } finally {
    await hoard?.stop();
    await s3.stop();
  }
});

test('S3 unreachable (cache s3 + metadata s3): the disk tier keeps serving, writes fail with a clear error, start-up names the problem', async () => {
  const s3 = await startS3rver();
  const metadata = `metadata s3 {\n  bucket = "${s3.bucket}"\n  sync-interval = "1s"\n}`;
  const hcl = `${s3ConfigBlock(s3.endpoint)}\ncache disk {}\ncache s3 { bucket = "${s3.bucket}" }\n${metadata}\nmetrics { port = 0 }\n`;
  const logs: Array<Record<string, unknown>> = [];
  const server = await startTestServer({ hcl, logs });
  // The HTTP answer names the operation; the cause (which S3 call, which network error) is in the
  // server log (the API keeps internal error text from callers, reference §7.4).
  const logged = (msg: string) =>
    logs
      .filter((r) => r['msg'] === msg)
      .map((r) => String((r['err'] as { message?: string } | undefined)?.message ?? ''))
      .join('\n');
  try {
    const body = randomBytes(64 * 1024);
    assert.equal((await fetch(`${server.url}/api/v1/object/ns/kept`, { method: 'POST', body })).status, 200);
    await s3.stop();
    // Past the sync interval, so the ETag lookup for the disk copy really goes to the dead S3.
    await new Promise((r) => setTimeout(r, 1100));
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const got = await fetch(`${server.url}/api/v1/object/ns/kept`);
      assert.equal(got.status, 200);
      assert.ok(Buffer.from(await got.arrayBuffer()).equals(body));
      assert.ok(Date.now() - started < 5_000, 'a local hit does not wait out S3 timeouts');
    }
    // An outage of the authoritative tier is a 503 naming the tier and the network error; the
    // full SDK error (endpoint included) stays in the server log.
    const write = await fetch(`${server.url}/api/v1/object/ns/new`, { method: 'POST', body: 'x' });
    assert.equal(write.status, 503);
    assert.match(await write.text(), /^cache tier s3 \(bucket hoard-test\) unavailable: (upload|PUT index): .*ECONNREFUSED/);
    assert.match(logged('create failed'), /cache tier s3 .*unavailable.*ECONNREFUSED/i);
    // Not on disk, and the authoritative tier cannot be asked: an outage, not a miss.
    const after = await fetch(`${server.url}/api/v1/object/ns/new`);
    assert.equal(after.status, 503);
    assert.match(await after.text(), /^cache tier s3 \(bucket hoard-test\) unavailable: GET index: connect ECONNREFUSED/);
    assert.match(logged('open failed'), /cache tier s3 \(bucket hoard-test\) unavailable: GET index: connect ECONNREFUSED/);
  } finally {
    await server.close();
  }
  await assert.rejects(startTestServer({ hcl }), /cache s3: S3 bucket "hoard-test" is not usable \(.*ECONNREFUSED/);
  // With only the metadata store on S3, start-up names that block.
  await assert.rejects(
    startTestServer({ hcl: `${s3ConfigBlock(s3.endpoint)}\ncache disk {}\n${metadata}\nmetrics { port = 0 }\n` }),
    /metadata s3: S3 bucket "hoard-test" is not usable \(.*ECONNREFUSED/,
  );
});
