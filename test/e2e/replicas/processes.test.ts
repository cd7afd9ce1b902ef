/**
 * Replicas as separate `hoard serve` processes (issue 5 point 7): three processes, each with its
 * own disk tier, sharing one bucket (s3rver behind the conditional-enforcing front) as the
 * authoritative `cache s3` tier and as `metadata s3`. In-process servers would share module state
 * (the S3 client pool, timers), so only real processes show what replicas see of each other.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHoardProcess, stopAllHoardProcesses, writeServeConfig, type HoardProcess } from '../../fixtures/hoard-process.js';
import { s3ConfigBlock, type S3rverHandle, startS3rver } from '../../fixtures/s3rver.js';

const SYNC_INTERVAL_MS = 1000;
/**
 * How long a replica may take to see another's replacement. Semantically it is one sync interval
 * plus a request, but three servers and s3rver share two cores in CI (beside other test files),
 * so a tight bound only measures the machine's load; this one still fails a replica that never
 * refreshes its view of the ETag map.
 */
const VISIBLE_WITHIN_MS = Math.max(10 * SYNC_INTERVAL_MS, 15_000);

type Replica = HoardProcess;

let s3: S3rverHandle;
let work: string;

before(async () => {
  s3 = await startS3rver();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-replicas-'));
});
after(async () => {
  await stopAllHoardProcesses();
  await s3.stop();
  await fs.rm(work, { recursive: true, force: true });
});

async function startReplica(name: string): Promise<Replica> {
  const dir = path.join(work, name);
  await fs.mkdir(path.join(dir, 'state'), { recursive: true });
  const config = await writeServeConfig(
    dir,
    `${s3ConfigBlock(s3.endpoint)}
cache disk {}
cache s3 { bucket = "${s3.bucket}" }
metadata s3 {
  bucket = "${s3.bucket}"
  sync-interval = "${SYNC_INTERVAL_MS / 1000}s"
}
`,
    { logLevel: 'warn' },
  );
  return startHoardProcess({ config, name, startTimeoutMs: 60_000 });
}

const objectUrl = (r: Replica, key: string) => `${r.url}/api/v1/object/shared/${key}`;

async function get(r: Replica, key: string): Promise<{ status: number; etag: string | null; body: Buffer }> {
  const res = await fetch(objectUrl(r, key));
  return { status: res.status, etag: res.headers.get('etag'), body: Buffer.from(await res.arrayBuffer()) };
}

async function post(r: Replica, key: string, body: Buffer<ArrayBuffer>): Promise<void> {
  const res = await fetch(objectUrl(r, key), { method: 'POST', body });
  assert.equal(res.status, 200, await res.text());
}

/** Polls `r` until it serves `expected`; resolves to the milliseconds that took. */
async function until(r: Replica, key: string, expected: Buffer, limitMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const got = await get(r, key);
    if (got.status === 200 && got.body.equals(expected)) return Date.now() - started;
    if (Date.now() - started > limitMs) assert.fail(`${r.url} still serves ${got.status} ${got.body.length} bytes after ${limitMs} ms`);
    await sleep(100);
  }
}

test('three hoard processes sharing one bucket: writes are seen by every replica, replacements once the map syncs', async () => {
  const [r1, r2, r3] = await Promise.all([startReplica('r1'), startReplica('r2'), startReplica('r3')]) as [Replica, Replica, Replica];

  const first = randomBytes(256 * 1024);
  await post(r1, 'k', first);
  const written = await get(r1, 'k');
  assert.equal(written.status, 200);
  for (const r of [r2, r3]) {
    const got = await get(r, 'k');
    assert.equal(got.status, 200, 'a fresh replica reads the shared tier');
    assert.ok(got.body.equals(first));
    assert.equal(got.etag, written.etag, 'every replica serves the same ETag');
  }
  // r2 and r3 now hold the first version on their own disks; r1 has had it since the write.

  const second = randomBytes(200 * 1024);
  await post(r2, 'k', second);
  assert.ok((await get(r2, 'k')).body.equals(second), 'the writer sees its own write at once');
  // r1 and r3 keep their stale disk copies until their view of the ETag map refreshes; `until`
  // polls and fails past the bound.
  await until(r1, 'k', second, VISIBLE_WITHIN_MS);
  await until(r3, 'k', second, VISIBLE_WITHIN_MS);

  // Two replicas replacing one key at once: after the interval everyone agrees on one version
  // (the one the shared tier kept), whichever publish to the map came last.
  const fromR1 = randomBytes(64 * 1024);
  const fromR3 = randomBytes(64 * 1024);
  await Promise.all([post(r1, 'race', fromR1), post(r3, 'race', fromR3)]);
  const deadline = Date.now() + VISIBLE_WITHIN_MS;
  let views: Array<{ status: number; etag: string | null; body: Buffer }> = [];
  for (;;) {
    views = await Promise.all([r1, r2, r3].map((r) => get(r, 'race')));
    const agreed = views.every((v) => v.status === 200 && v.etag === views[0]?.etag);
    if (agreed || Date.now() > deadline) break;
    await sleep(100);
  }
  assert.ok(views.every((v) => v.status === 200 && v.etag === views[0]?.etag), `replicas disagree: ${views.map((v) => v.etag).join(' ')}`);
  assert.ok(views[0]!.body.equals(fromR1) || views[0]!.body.equals(fromR3));
  for (const v of views) assert.ok(v.body.equals(views[0]!.body), 'one ETag, one body');
  // And it stays agreed (no replica keeps flipping back to its own copy).
  await sleep(SYNC_INTERVAL_MS + 200);
  const later = await Promise.all([r1, r2, r3].map((r) => get(r, 'race')));
  assert.deepEqual(later.map((v) => v.etag), views.map((v) => v.etag));
});
