import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

/**
 * One upstream fetch per herd, through real HTTP: concurrent misses of one object share a single
 * upstream request and stream from the filling copy as it grows. The upstream writes the first
 * half of the body and then waits for the test to open a gate, so "followers got bytes before the
 * upstream finished" is checked by construction (without it the test would deadlock), not by time.
 */

const SIZE = 5 * 1024 * 1024;
const CHUNK = 64 * 1024;
const body = randomBytes(SIZE);
const digest = createHash('sha256').update(body).digest('hex');

let origin: http.Server;
let originUrl: string;
let hoard: TestServer;
const requests: string[] = [];
/** Per path: opened by the test to let the upstream write the second half. */
const gates = new Map<string, () => void>();
/** Per path: settles when the upstream's response ended ('finished') or was cut ('aborted'). */
const outcomes = new Map<string, Promise<'finished' | 'aborted'>>();

before(async () => {
  origin = http.createServer((req, res) => {
    const path = req.url ?? '';
    requests.push(path);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    gates.set(path, open);
    outcomes.set(
      path,
      new Promise((resolve) => {
        res.once('finish', () => resolve('finished'));
        res.once('close', () => resolve(res.writableFinished ? 'finished' : 'aborted'));
      }),
    );
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
    void (async () => {
      for (let offset = 0; offset < SIZE && !res.destroyed; offset += CHUNK) {
        if (offset === SIZE / 2) await gate;
        if (!res.write(body.subarray(offset, offset + CHUNK))) await new Promise((resolve) => res.once('drain', resolve));
        // Slow upstream: a pause between chunks.
        await new Promise((resolve) => setImmediate(resolve));
      }
      res.end();
    })();
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  hoard = await startTestServer({ hcl: `cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy host "${originUrl}" {}\n` });
});
after(async () => {
  await hoard?.close();
  origin.closeAllConnections();
  await new Promise((resolve) => origin.close(resolve));
});

/** A download through hoard: resolves `firstByte` on the first chunk; `done` with the body's sha256. */
function download(path: string) {
  const controller = new AbortController();
  let firstByte!: () => void;
  const gotFirstByte = new Promise<void>((resolve) => (firstByte = resolve));
  const done = (async () => {
    const res = await fetch(`${hoard.url}/${originUrl.slice('http://'.length)}${path}`, { signal: controller.signal });
    assert.equal(res.status, 200);
    const hash = createHash('sha256');
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      firstByte();
      hash.update(chunk);
    }
    return { sha256: hash.digest('hex'), cache: res.headers.get('x-hoard-cache') };
  })();
  done.catch(() => undefined);
  return { gotFirstByte, done, abort: () => controller.abort() };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const upstreamRequests = (path: string) => requests.filter((r) => r === path).length;

/**
 * Downloads `path` until hoard answers from the cache. A client has every byte (Content-Length)
 * before the fill's commit (an fsync) ends; a request in between joins the same fill ('miss',
 * no upstream request), so the count of upstream requests is what proves the sharing.
 */
async function eventuallyHit(path: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const got = await download(path).done;
    assert.equal(got.sha256, digest);
    if (got.cache === 'hit') return;
    if (Date.now() > deadline) assert.fail(`${path} never became a cache hit`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('8 concurrent misses of a 5 MB object from a slow upstream: 1 upstream request, identical bodies, followers stream while it fills', async () => {
  const path = '/objects/burst.bin';
  const leader = download(path);
  await until(() => upstreamRequests(path) === 1, 'the leader to reach the upstream');
  const followers = Array.from({ length: 7 }, () => download(path));
  // Every client has bytes while the upstream is held at half the body.
  await Promise.all([leader, ...followers].map((d) => d.gotFirstByte));
  gates.get(path)?.();
  const results = await Promise.all([leader, ...followers].map((d) => d.done));
  for (const r of results) assert.equal(r.sha256, digest);
  assert.equal(upstreamRequests(path), 1, 'exactly one upstream request for the burst');
  assert.ok(results.every((r) => r.cache === 'miss'));
  await eventuallyHit(path);
  assert.equal(upstreamRequests(path), 1, 'the shared fill was committed to the cache');
});

test('a follower leaving does not cancel the fill', async () => {
  const path = '/objects/follower-leaves.bin';
  const leader = download(path);
  await until(() => upstreamRequests(path) === 1, 'the leader to reach the upstream');
  const leaving = download(path);
  const staying = download(path);
  await Promise.all([leader.gotFirstByte, leaving.gotFirstByte, staying.gotFirstByte]);
  leaving.abort();
  await assert.rejects(leaving.done);
  gates.get(path)?.();
  assert.equal((await leader.done).sha256, digest);
  assert.equal((await staying.done).sha256, digest);
  assert.equal(await outcomes.get(path), 'finished');
  await eventuallyHit(path);
  assert.equal(upstreamRequests(path), 1);
});

test('the leader leaving does not cancel the fill while followers remain; the last one leaving does', async () => {
  const path = '/objects/leader-leaves.bin';
  const leader = download(path);
  await until(() => upstreamRequests(path) === 1, 'the leader to reach the upstream');
  const follower = download(path);
  await Promise.all([leader.gotFirstByte, follower.gotFirstByte]);
  leader.abort();
  await assert.rejects(leader.done);
  gates.get(path)?.();
  assert.equal((await follower.done).sha256, digest);
  assert.equal(await outcomes.get(path), 'finished');
  await eventuallyHit(path);
  assert.equal(upstreamRequests(path), 1);

  // Everyone leaves before the end: the upstream request is cut and nothing is cached.
  const abandoned = '/objects/abandoned.bin';
  const only = download(abandoned);
  await only.gotFirstByte;
  only.abort();
  await assert.rejects(only.done);
  assert.equal(await outcomes.get(abandoned), 'aborted');
  gates.get(abandoned)?.();
  const next = download(abandoned);
  await until(() => upstreamRequests(abandoned) === 2, 'a new fill for the abandoned object');
  gates.get(abandoned)?.();
  assert.deepEqual(await next.done, { sha256: digest, cache: 'miss' });
});
