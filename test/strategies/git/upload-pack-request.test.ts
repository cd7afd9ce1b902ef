import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createGzip, gzipSync } from 'node:zlib';
import { fetchWants, isLsRefsRequest } from '../../../src/strategies/git/upload-pack-request.js';

const v2 = { 'git-protocol': 'version=2' };
const lsRefs = Buffer.from('0014command=ls-refs\n0014agent=git/2.39.5\n00010009peel\n0000');
const fetchCmd = Buffer.from('0012command=fetch\n0001000ethin-pack\n0032want 0123456789012345678901234567890123456789\n0009done\n0000');

/** A gzip stream of `prefix` followed by `zeros` zero bytes, compressed without holding them all. */
async function gzipBomb(prefix: Buffer, zeros: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  const ended = new Promise((resolve) => gz.on('end', resolve));
  gz.write(prefix);
  const block = Buffer.alloc(1 << 20);
  for (let written = 0; written < zeros; written += block.length) gz.write(block);
  gz.end();
  await ended;
  return Buffer.concat(out);
}

describe('isLsRefsRequest', () => {
  test('recognises protocol v2 ls-refs, plain or gzip, and nothing else', () => {
    assert.equal(isLsRefsRequest(v2, lsRefs), true);
    assert.equal(isLsRefsRequest({ ...v2, 'content-encoding': 'gzip' }, gzipSync(lsRefs)), true);
    assert.equal(isLsRefsRequest(v2, fetchCmd), false);
    assert.equal(isLsRefsRequest({}, lsRefs), false, 'protocol v0/v1 has no ls-refs command');
    assert.equal(isLsRefsRequest({ ...v2, 'content-encoding': 'gzip' }, Buffer.from('not gzip at all')), false);
  });

  test('a gzip body longer than the inspected prefix still decodes its first command', () => {
    // Random payload so the compressed body is far larger than the 64 KiB that is inspected.
    const noise = Buffer.from(Array.from({ length: 300_000 }, () => Math.floor(Math.random() * 256)));
    const body = gzipSync(Buffer.concat([lsRefs, noise]));
    assert.ok(body.length > 128 << 10);
    assert.equal(isLsRefsRequest({ ...v2, 'content-encoding': 'gzip' }, body), true);
  });

  test('a gzip bomb is not inflated past the limit and counts as not ls-refs', async () => {
    // 64 KiB on the wire, 64 MiB inflated: the unbounded inflate used to return the whole thing.
    const bomb = await gzipBomb(lsRefs, 64 << 20);
    assert.ok(bomb.length < 1 << 20, `bomb is ${bomb.length} bytes`);
    const before = process.memoryUsage().arrayBuffers;
    const started = Date.now();
    assert.equal(isLsRefsRequest({ ...v2, 'content-encoding': 'gzip' }, bomb), false);
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.ok(process.memoryUsage().arrayBuffers - before < 16 << 20, 'no large buffer was allocated');
  });
});

describe('fetchWants', () => {
  const id = '0123456789012345678901234567890123456789';
  test('reads the wants of a v2 fetch, plain or gzip; other requests want nothing', async () => {
    assert.deepEqual(await fetchWants(v2, fetchCmd), [id]);
    assert.deepEqual(await fetchWants({ ...v2, 'content-encoding': 'gzip' }, gzipSync(fetchCmd)), [id]);
    assert.deepEqual(await fetchWants(v2, lsRefs), []);
    assert.deepEqual(await fetchWants({}, fetchCmd), [], 'v0/v1 bodies are left to upload-pack');
  });

  test('a body it cannot read is undefined, never an empty list', async () => {
    const pkt = (line: string) => `${(line.length + 4).toString(16).padStart(4, '0')}${line}`;
    const head = `${pkt('command=fetch\n')}0001`;
    assert.deepEqual(await fetchWants(v2, Buffer.from(`${head}${pkt(`want ${id}\n`)}${pkt(`want ${'a'.repeat(64)}\n`)}0000`)), [id, 'a'.repeat(64)], 'control: the helper builds valid bodies');
    assert.equal(await fetchWants(v2, Buffer.from(`${head}${pkt('want --all\n')}0000`)), undefined, 'not an object id');
    assert.equal(await fetchWants(v2, Buffer.from(`${head}zzzz`)), undefined);
    assert.equal(await fetchWants(v2, Buffer.from(`${head}0040want`)), undefined, 'a packet longer than the body');
    assert.equal(await fetchWants({ ...v2, 'content-encoding': 'gzip' }, Buffer.from('not gzip')), undefined);
    assert.equal(await fetchWants({ ...v2, 'content-encoding': 'gzip' }, await gzipBomb(fetchCmd, 64 << 20)), undefined, 'inflation is bounded');
  });
});
