import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import type { Cache } from '../../src/cache/cache.js';
import { createMemoryCache } from '../../src/cache/memory.js';
import { fileCleanups } from '../fixtures/cleanups.js';
import { diskCacheRunningOutOfSpace, serveObjectApi } from '../fixtures/object-api.js';

const MiB = 1 << 20;
const { defer, tempDir } = fileCleanups('hoard-upload-');

/** The object API over `cache` on a real loopback listener. */
const serve = (cache: Cache, opts: { idleTimeoutMs?: number } = {}) => serveObjectApi(cache, defer, opts);

/** A disk cache whose body writes fail with ENOSPC once `budget` bytes were written in total. */
async function diskFailingAfter(budget: number): Promise<{ cache: Cache; root: string; setBudget(n: number): void }> {
  const root = await tempDir();
  let left = budget;
  const cache = await diskCacheRunningOutOfSpace(root, (bytes) => (left -= bytes) < 0);

  return { cache, root, setBudget: (n) => void (left = n) };
}

/** `size` bytes in 64 KiB chunks, produced lazily (a streamed upload, not one buffer). */
function bigBody(size: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return void this.push(null);
      const n = Math.min(64 * 1024, size - sent);
      sent += n;
      this.push(Buffer.alloc(n, 0x61));
    },
  });
}

/** POST with fetch (streamed, chunked). A hang fails the test instead of blocking it forever. */
async function fetchUpload(url: string, size: number): Promise<{ status: number; text: string; connection: string | null }> {
  const res = await fetch(url, { method: 'POST', body: Readable.toWeb(bigBody(size)) as unknown as BodyInit, duplex: 'half', signal: AbortSignal.timeout(15_000) } as RequestInit);
  return { status: res.status, text: await res.text(), connection: res.headers.get('connection') };
}

/**
 * POST with node:http and a Content-Length, writing the whole body even after the answer came
 * (as a plain client does). Resolves when the upload is over, with any socket error seen: the
 * server must half-close and keep draining (lingering close), never reset the connection, or a
 * client can lose the answer from its receive buffer.
 */
function httpUpload(url: string, size: number): Promise<{ status: number; text: string; socketError?: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('upload got no answer within 15 s (hang)')), 15_000);
    let answer: { status: number; text: string } | undefined;
    let socketError: string | undefined;
    let finished = false;
    const settle = () => {
      if (!answer || !finished) return;
      clearTimeout(timer);
      resolve({ ...answer, ...(socketError ? { socketError } : {}) });
    };
    const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-length': String(size) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        answer = { status: res.statusCode ?? 0, text };
        settle();
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      socketError ??= err.code ?? err.message;
      finished = true;
      if (!answer) answer = { status: 0, text: '' };
      settle();
    });
    req.on('close', () => {
      finished = true;
      settle();
    });
    bigBody(size).pipe(req);
  });
}

async function tempFilesUnder(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(p);
      else found.push(p);
    }
  };
  await walk(root);
  return found;
}

describe('uploads whose write fails part-way', () => {
  test('disk full after 1 MiB of an 8 MiB upload: 507 with the reason, Connection: close, nothing stored', async () => {
    const disk = await diskFailingAfter(MiB);
    const base = await serve(disk.cache);
    const url = `${base}/api/v1/object/ns/big`;

    const viaFetch = await fetchUpload(url, 8 * MiB);
    assert.equal(viaFetch.status, 507);
    assert.match(viaFetch.text, /^Insufficient storage: cache storage is full \(ENOSPC\)\n$/);
    assert.equal(viaFetch.connection, 'close');

    // A client that writes with Content-Length and keeps writing gets the answer and no reset.
    disk.setBudget(MiB);
    const viaHttp = await httpUpload(url, 8 * MiB);
    assert.equal(viaHttp.socketError, undefined);
    assert.equal(viaHttp.status, 507);
    assert.match(viaHttp.text, /Insufficient storage/);

    assert.equal((await fetch(url)).status, 404);
    // The partial temp body was discarded (no file under the cache root holds the partial bytes).
    const leftovers = [];
    for (const f of await tempFilesUnder(disk.root)) if ((await fs.stat(f)).size > 0) leftovers.push(f);
    assert.deepEqual(leftovers, []);

    // The server keeps serving: with space again the same upload succeeds.
    disk.setBudget(1 << 30);
    const ok = await fetchUpload(url, 3 * MiB);
    assert.equal(ok.status, 200, ok.text);
    const back = await fetch(url);
    assert.equal((await back.arrayBuffer()).byteLength, 3 * MiB);
  });

  test('memory tier limit: an object larger than the cache is 413, nothing stored, next upload fine', async () => {
    const base = await serve(createMemoryCache({ limitBytes: MiB, maxTtlMs: 3_600_000 }));
    const url = `${base}/api/v1/object/ns/huge`;
    const viaFetch = await fetchUpload(url, 6 * MiB);
    assert.equal(viaFetch.status, 413);
    assert.match(viaFetch.text, /^Object too large: object exceeds the memory cache limit of 1048576 bytes\n$/);
    assert.equal(viaFetch.connection, 'close');
    const viaHttp = await httpUpload(url, 6 * MiB);
    assert.equal(viaHttp.socketError, undefined);
    assert.equal(viaHttp.status, 413);
    assert.equal((await fetch(url)).status, 404);
    assert.equal((await fetchUpload(url, 512 * 1024)).status, 200);
    assert.equal((await (await fetch(url)).arrayBuffer()).byteLength, 512 * 1024);
  });

  test('a refused header (bad TTL) on a large body is answered at once, without reading it all', async () => {
    const base = await serve(createMemoryCache({ limitBytes: 64 * MiB, maxTtlMs: 3_600_000 }));
    const res = await fetch(`${base}/api/v1/object/ns/ttl`, {
      method: 'POST',
      headers: { 'time-to-live': 'forever' },
      body: Readable.toWeb(bigBody(32 * MiB)) as unknown as BodyInit,
      duplex: 'half',
      signal: AbortSignal.timeout(15_000),
    } as RequestInit);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /Invalid Time-To-Live/);
  });

  test('a stalled upload is ended by the idle timeout and stores nothing', async () => {
    const base = await serve(createMemoryCache({ limitBytes: 64 * MiB, maxTtlMs: 3_600_000 }), { idleTimeoutMs: 300 });
    const url = new URL(`${base}/api/v1/object/ns/stalled`);
    const closedBy = await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('still open after 5 s'), 5_000);
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-length': '1000000' } });
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve(err.code ?? err.message);
      });
      req.on('response', () => resolve('answered'));
      req.write(Buffer.alloc(1000, 1)); // then nothing more
    });
    assert.match(closedBy, /ECONNRESET|socket hang up/);
    assert.equal((await fetch(url)).status, 404);
  });
});
