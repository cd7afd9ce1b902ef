import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { exactLength } from '../../src/util/exact-length.js';
import { orderedChunks } from '../../src/util/ordered-chunks.js';

const collect = async (body: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

test('orderedChunks emits chunks in order even when later ones finish first', async () => {
  const body = orderedChunks({
    count: 6,
    concurrency: 3,
    fetch: async (i) => {
      await sleep((6 - i) * 5); // later chunks resolve sooner
      return i % 2 ? Buffer.from(`<${i}>`) : Readable.from([Buffer.from(`[${i}`), Buffer.from(']')]);
    },
  });
  assert.equal((await collect(body)).toString(), '[0]<1>[2]<3>[4]<5>');
});

test('orderedChunks never has more than `concurrency` chunks in flight and stops fetching when nobody reads', async () => {
  let inFlight = 0;
  let peak = 0;
  const requested: number[] = [];
  const body = orderedChunks({
    count: 100,
    concurrency: 4,
    fetch: async (i) => {
      requested.push(i);
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep(2);
      inFlight--;
      return Buffer.alloc(256 * 1024, i);
    },
  });
  // Read a little, then stop: backpressure must stop the fetching well before the end.
  const it = body[Symbol.asyncIterator]();
  await it.next();
  await sleep(100);
  assert.ok(peak <= 4, `peak in flight ${peak}`);
  assert.ok(requested.length < 20, `fetched ${requested.length} chunks with one read`);
  body.destroy();
});

test('orderedChunks destroyed before its first read still releases prefetched resources', async () => {
  let closed = 0;
  const body = orderedChunks({ count: 3, concurrency: 2, fetch: async () => Buffer.from('x'), onClose: () => closed++ });
  body.destroy();
  await sleep(10);
  assert.equal(closed, 1);
});

test('orderedChunks aborts the chunks in flight when the consumer goes away', async () => {
  const aborted: number[] = [];
  const body = orderedChunks({
    count: 4,
    concurrency: 4,
    fetch: (i, signal) =>
      i === 0
        ? Promise.resolve(Buffer.from('first'))
        : new Promise((_resolve, reject) => signal.addEventListener('abort', () => (aborted.push(i), reject(new Error('aborted'))))),
  });
  const it = body[Symbol.asyncIterator]();
  assert.equal(String((await it.next()).value), 'first');
  body.destroy();
  await sleep(10);
  assert.deepEqual(aborted.sort(), [1, 2, 3]);
});

test('orderedChunks fails the stream when a chunk fails', async () => {
  const body = orderedChunks({ count: 3, concurrency: 2, fetch: async (i) => (i === 1 ? Promise.reject(new Error('chunk 1 broke')) : Buffer.from('ok')) });
  await assert.rejects(collect(body), /chunk 1 broke/);
});

test('exactLength passes an exact body and rejects short or long ones', async () => {
  assert.equal((await collect(exactLength(Readable.from([Buffer.from('abc'), Buffer.from('de')]), 5, 'chunk 0'))).toString(), 'abcde');
  await assert.rejects(collect(exactLength(Readable.from([Buffer.from('abc')]), 5, 'chunk 1')), /chunk 1 ended early: 3 of 5 bytes/);
  await assert.rejects(collect(exactLength(Readable.from([Buffer.from('abcdef')]), 5, 'S3 range')), /S3 range carried more bytes/);
});

test('exactLength destroyed before reading releases its source', async () => {
  const source = new Readable({ read() {} });
  const checked = exactLength(source, 10, 'x');
  checked.destroy();
  await sleep(10);
  assert.equal(source.destroyed, true);
});
