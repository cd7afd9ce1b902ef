import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { Spool, SpoolSet, type SpoolSource } from '../../../src/strategies/shared/spool.js';

let dir: string;
let server: http.Server;
let base: string;
/** What the test server does with a request: `/<id>` is served by the spool registered as id. */
const routes = new Map<string, (res: ServerResponse) => Promise<void>>();

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-spool-'));
  server = http.createServer((req, res) => {
    const route = routes.get((req.url ?? '').slice(1));
    if (!route) return void res.writeHead(404).end();
    route(res).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await fs.rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A source whose body is the given chunks, then optionally an error; `gate` holds the end back. */
function source(chunks: Buffer[], opts: { fail?: boolean; gate?: Promise<void> } = {}): () => Promise<SpoolSource> {
  return async () => {
    async function* body() {
      for (const chunk of chunks) yield chunk;
      await opts.gate;
      if (opts.fail) throw new Error('upstream broke mid-body');
    }
    return Object.assign(Readable.from(body()), { statusCode: 200, headers: { 'content-type': 'application/x-test' } });
  };
}

/** GETs `/<id>`; `pauseUntil` keeps the response unread until it settles (a slow client). */
function get(id: string, pauseUntil?: Promise<unknown>): Promise<{ status: number; body: Buffer; aborted: boolean }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${base}/${id}`, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let aborted = false;
        res.pause();
        void Promise.resolve(pauseUntil).then(() => res.resume());
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('aborted', () => (aborted = true));
        res.on('error', () => (aborted = true));
        res.on('close', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), aborted: aborted || !res.complete }));
      })
      .on('error', reject);
  });
}

describe('upload-pack spools', () => {
  test('a retry after a failure records into its own file; a reader of the failed spool gets only its bytes, then an error', async () => {
    const set = new SpoolSet(path.join(dir, 'retry'));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // Large enough that a paused client leaves the reader blocked far behind the recording.
    const first = set.acquire('k', source([Buffer.alloc(8 << 20, 'a')], { fail: true, gate }))!;
    routes.set('first', (res) => first.serve(res));
    let resumeFirst!: () => void;
    const firstRead = get('first', new Promise<void>((r) => (resumeFirst = r)));
    await sleep(200);
    release();
    await first.finished();
    assert.ok(first.failed);

    const second = set.acquire('k', source([Buffer.alloc(1 << 20, 'b')]))!;
    assert.notEqual(second, first);
    assert.notEqual(second.file, first.file, 'each spool owns its file');
    await second.finished();
    routes.set('second', (res) => second.serve(res));
    const secondRead = await get('second');
    assert.equal(secondRead.body.length, 1 << 20);
    assert.ok(secondRead.body.every((b) => b === 0x62));

    resumeFirst();
    const got = await Promise.race([firstRead, sleep(10_000).then(() => undefined)]);
    assert.ok(got, 'the reader of the failed spool finished (it must not spin)');
    assert.ok(got.aborted, 'a response cut by the failure is not presented as complete');
    assert.ok(got.body.length <= 8 << 20);
    assert.ok(got.body.every((b) => b === 0x61), 'the failed spool’s reader never sees the retry’s bytes');
    await set.close();
  });

  test('a reader whose spool file lost bytes errors instead of spinning', async () => {
    const file = path.join(dir, 'truncated.spool');
    const spool = Spool.start(file, source([Buffer.alloc(6 << 20, 'c')]));
    await spool.finished();
    routes.set('truncated', (res) => spool.serve(res));
    let resume!: () => void;
    const reading = get('truncated', new Promise<void>((r) => (resume = r)));
    await sleep(200);
    await fs.truncate(file, 1 << 20);
    resume();
    const got = await Promise.race([reading, sleep(10_000).then(() => undefined)]);
    assert.ok(got, 'reader finished');
    assert.ok(got.aborted);
    await spool.dispose();
  });

  test('a new spool never reuses an existing file', async () => {
    const file = path.join(dir, 'taken.spool');
    await fs.writeFile(file, 'somebody else’s bytes');
    const spool = Spool.start(file, source([Buffer.from('mine')]));
    await spool.finished();
    assert.ok(spool.failed);
    assert.equal(await fs.readFile(file, 'utf8'), 'somebody else’s bytes');
  });

  test('backpressure waits leave no listeners behind', async () => {
    const spool = Spool.start(path.join(dir, 'big.spool'), source(Array.from({ length: 32 }, () => Buffer.alloc(1 << 20, 'd'))));
    await spool.finished();
    let baseline = -1;
    let peak = 0;
    let drains = 0;
    routes.set('big', async (res) => {
      baseline = res.listenerCount('close');
      // Registered before any wait, so it sees the listeners every earlier wait left behind.
      res.on('drain', () => {
        drains++;
        peak = Math.max(peak, res.listenerCount('close'));
      });
      await spool.serve(res);
    });
    // A slowly read response makes the spool wait for 'drain' many times.
    const read = await new Promise<number>((resolve, reject) => {
      http
        .get(`${base}/big`, (res) => {
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            res.pause();
            setTimeout(() => res.resume(), 1);
          });
          res.on('end', () => resolve(size));
        })
        .on('error', reject);
    });
    assert.equal(read, 32 << 20);
    assert.ok(drains >= 8, `only ${drains} backpressure waits`);
    assert.ok(peak <= baseline + 1, `'close' listeners grew from ${baseline} to ${peak} over ${drains} waits`);
    await spool.dispose();
  });
});
