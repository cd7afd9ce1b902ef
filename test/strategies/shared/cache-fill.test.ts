import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startTestServer, type TestServer } from '../../fixtures/server.js';
import { mountSmallDisk, type SmallDisk } from '../../fixtures/small-disk.js';

const run = promisify(execFile);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Bigger than the 2 MiB disk the failing cache lives on, so its fill hits ENOSPC mid-stream. */
const BIG = randomBytes(8 << 20);
const small = (n: string) => Buffer.alloc(256 * 1024, `object ${n} `);

let origin: http.Server;
let originUrl: string;
const hits: string[] = [];
let work: string;

before(async () => {
  origin = http.createServer((req, res) => {
    const url = req.url ?? '';
    hits.push(url);
    const body = url.startsWith('/big/') ? BIG : small(url);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-fill-'));
});
after(async () => {
  origin.closeAllConnections();
  await new Promise((resolve) => origin.close(resolve));
  await fs.rm(work, { recursive: true, force: true });
});

const hostPath = (p: string) => `/${originUrl.replace('http://', '')}${p}`;
const hostHcl = (cache: string) => `${cache}
metadata memory {}
metrics { port = 0 }
strategy host "${originUrl}" {}
`;

/**
 * One real `curl` process per download: it exits (closing its connection) as soon as it has the
 * Content-Length bytes. `--max-time` turns a stalled response into a failure instead of a hang.
 */
async function curl(url: string, out: string): Promise<Buffer> {
  await run('curl', ['-sS', '--fail', '--max-time', '30', '-o', out, url]);
  return fs.readFile(out);
}

async function cachedObjects(hoard: TestServer): Promise<number> {
  const res = await fetch(`${hoard.url}/api/v1/stats`);
  return ((await res.json()) as { objects: number }).objects;
}

/** Polls until `check` holds (or the deadline passes); returns its last answer. */
async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('cache fill (generic caching handler, host strategy)', () => {
  test('an object is cached even when its client closes the connection right after the last byte', async () => {
    const hoard = await startTestServer({ hcl: hostHcl('cache disk {}') });
    try {
      const paths = Array.from({ length: 10 }, (_, i) => `/leave-at-once/${i}.bin`);
      for (const [i, p] of paths.entries()) {
        const body = await curl(`${hoard.url}${hostPath(p)}`, path.join(work, `first-${i}`));
        assert.equal(sha(body), sha(small(p)), p);
      }
      const upstreamHits = () => hits.filter((h) => h.startsWith('/leave-at-once/')).length;
      assert.equal(upstreamHits(), 10);
      const objects = await eventually(() => cachedObjects(hoard), (n) => n >= 10);
      assert.equal(objects, 10, 'every fully received object was committed to the disk cache');
      for (const [i, p] of paths.entries()) {
        const body = await curl(`${hoard.url}${hostPath(p)}`, path.join(work, `second-${i}`));
        assert.equal(sha(body), sha(small(p)), p);
      }
      assert.equal(upstreamHits(), 10, 'the second round was served from the cache');
    } finally {
      await hoard.close();
    }
  });

  test('a disk cache that fills up mid-stream never stalls the client: whole body, caching abandoned and logged once', async (t) => {
    const disk = await mountSmallDisk(2);
    if ('unavailable' in disk) return t.skip(disk.unavailable);
    const logs: Array<Record<string, unknown>> = [];
    let hoard: TestServer | undefined;
    try {
      const server = await startTestServer({ logs, hcl: hostHcl(`cache disk { root = "${(disk as SmallDisk).dir}" }`) });
      hoard = server;
      // On the sync disk the writer is slower than the network, so the tee is waiting for it to
      // drain when the disk fills: a 'drain'-only wait then hangs for ever (curl's --max-time).
      const body = await curl(`${server.url}${hostPath('/big/1.bin')}`, path.join(work, 'big'));
      assert.equal(body.length, BIG.length);
      assert.equal(sha(body), sha(BIG), `the client got the whole body (cache on ${(disk as SmallDisk).kind})`);
      const failures = logs.filter((l) => l['msg'] === 'cache fill failed; serving without caching');
      assert.equal(failures.length, 1, 'logged once');
      assert.equal(failures[0]?.['level'], 40, 'at warn');
      assert.match(JSON.stringify(failures[0]?.['err']), /ENOSPC|full/);
      // The partial copy was discarded: the space is free again and a small object is cached.
      const before = hits.length;
      await curl(`${server.url}${hostPath('/after-full/small.bin')}`, path.join(work, 'small-1'));
      assert.equal(await eventually(() => cachedObjects(server), (n) => n >= 1), 1);
      await curl(`${server.url}${hostPath('/after-full/small.bin')}`, path.join(work, 'small-2'));
      assert.equal(hits.length, before + 1, 'the small object came from the cache the second time');
    } finally {
      await hoard?.close();
      await disk.close();
    }
  });

  test('an object over the memory cache limit is served whole without caching, logged once', async () => {
    const logs: Array<Record<string, unknown>> = [];
    const hoard = await startTestServer({ logs, hcl: hostHcl('cache memory { limit-mb = 1 }') });
    try {
      const body = await curl(`${hoard.url}${hostPath('/big/memory.bin')}`, path.join(work, 'big-memory'));
      assert.equal(sha(body), sha(BIG));
      const failures = logs.filter((l) => l['msg'] === 'cache fill failed; serving without caching');
      assert.equal(failures.length, 1);
      assert.match(JSON.stringify(failures[0]?.['err']), /limit/);
      assert.equal(await cachedObjects(hoard), 0);
    } finally {
      await hoard.close();
    }
  });
});
