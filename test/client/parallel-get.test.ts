import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parallelGet } from '../../src/client/parallel-get.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('parallelGet (tiny ranged server)', () => {
  let data = randomBytes(1024 * 1024 + 123);
  let etag: string | undefined = '"v1"';
  let afterRanged: (() => void) | undefined;
  let ignoreRangeOnce = new Set<string>();
  let server: http.Server;
  let url = '';
  before(async () => {
    server = http.createServer((req, res) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (req.headers['if-match'] && req.headers['if-match'] !== etag) {
        res.writeHead(412).end();
        return;
      }
      if (!m || ignoreRangeOnce.delete(req.headers.range ?? '')) {
        res.writeHead(200, { ...(etag ? { etag } : {}), 'content-length': data.length }).end(data);
        return;
      }
      const start = Number(m[1]);
      const end = Math.min(Number(m[2]), data.length - 1);
      res.writeHead(206, { ...(etag ? { etag } : {}), 'content-range': `bytes ${start}-${end}/${data.length}`, 'content-length': end - start + 1 });
      res.end(data.subarray(start, end + 1));
      afterRanged?.();
      afterRanged = undefined;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/obj`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const collect = async (body: NodeJS.ReadableStream) => {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c as Buffer);
    return Buffer.concat(parts);
  };

  test('reassembles chunks in order with the whole size in headers', async () => {
    const r = await parallelGet(url, { concurrency: 4, chunkBytes: 64 * 1024 });
    assert.equal(r.size, data.length);
    assert.equal(r.headers['content-length'], String(data.length));
    assert.equal(r.headers['content-range'], undefined);
    assert.equal(sha(await collect(r.body)), sha(data));
  });

  test('a chunk answered without its range is retried', async () => {
    ignoreRangeOnce = new Set([`bytes=${3 * 64 * 1024}-${4 * 64 * 1024 - 1}`]);
    const r = await parallelGet(url, { concurrency: 4, chunkBytes: 64 * 1024 });
    assert.equal(sha(await collect(r.body)), sha(data));
    assert.equal(ignoreRangeOnce.size, 0);
  });

  test('an object changed mid-download fails instead of splicing versions', async () => {
    const r = await parallelGet(url, { concurrency: 2, chunkBytes: 64 * 1024 });
    etag = '"v2"';
    await assert.rejects(collect(r.body), /changed during download/);
    etag = '"v1"';
  });

  test('without an ETag to pin to, one plain GET is trusted with its own length, not the discovery answer', async () => {
    const before = data;
    etag = undefined;
    const grown = Buffer.concat([data, randomBytes(4321)]);
    afterRanged = () => (data = grown); // the object changes between discovery and the plain GET
    try {
      const r = await parallelGet(url, { concurrency: 4, chunkBytes: 64 * 1024 });
      assert.equal(r.size, grown.length);
      assert.equal(r.headers['content-length'], String(grown.length));
      assert.equal(sha(await collect(r.body)), sha(grown));
    } finally {
      etag = '"v1"';
      data = before;
    }
  });
});

test('a server that stops sending fails the download at the idle timeout instead of hanging', async () => {
  const sockets = new Set<import('node:net').Socket>();
  const stalling = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': 1000 });
    res.write(Buffer.alloc(10)); // then nothing, and the connection stays open
  });
  stalling.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}/obj`;
    const started = Date.now();
    const r = await parallelGet(url, { concurrency: 1, chunkBytes: 1 << 20, idleTimeoutMs: 300 });
    await assert.rejects(
      (async () => {
        for await (const _ of r.body) void _;
      })(),
    );
    assert.ok(Date.now() - started < 5000);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => stalling.close(() => resolve()));
  }
});
