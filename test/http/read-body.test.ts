import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { BodyIncompleteError, BodyTooLargeError, readBoundedBody } from '../../src/http/read-body.js';

/** A real server whose handler reads the body with `limit` and reports what happened. */
async function withServer(limit: number, fn: (port: number, outcome: Promise<Buffer | Error>) => Promise<void>): Promise<void> {
  let report!: (v: Buffer | Error) => void;
  const outcome = new Promise<Buffer | Error>((resolve) => (report = resolve));
  const server = http.createServer((req, res) => {
    readBoundedBody(req, limit).then(
      (body) => {
        report(body);
        res.end(`got ${body.length}`);
      },
      (err: Error) => {
        report(err);
        if (err instanceof BodyTooLargeError) res.writeHead(413, { connection: 'close' }).end(err.message);
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await fn((server.address() as AddressInfo).port, outcome);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

function post(port: number, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ port, host: '127.0.0.1', method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a body within the limit is read whole, declared length or chunked', async () => {
  await withServer(1024, async (port, outcome) => {
    const res = await post(port, Buffer.alloc(1000, 'a'));
    assert.deepEqual(res, { status: 200, text: 'got 1000' });
    assert.equal(((await outcome) as Buffer).length, 1000);
  });
  await withServer(1024, async (port) => {
    assert.equal((await post(port, Buffer.alloc(900, 'b'), { 'transfer-encoding': 'chunked' })).text, 'got 900');
  });
});

test('a declared Content-Length over the limit is refused before any byte is read; the client gets the 413', async () => {
  await withServer(100, async (port, outcome) => {
    const res = await post(port, Buffer.alloc(5000, 'x'));
    assert.equal(res.status, 413);
    assert.match(res.text, /larger than 100 bytes/);
    assert.ok((await outcome) instanceof BodyTooLargeError);
  });
});

test('a chunked body that grows past the limit is refused mid-way with a 413, not a reset', async () => {
  await withServer(100, async (port, outcome) => {
    const res = await post(port, Buffer.alloc(5000, 'y'), { 'transfer-encoding': 'chunked' });
    assert.equal(res.status, 413);
    const err = await outcome;
    assert.ok(err instanceof BodyTooLargeError);
    assert.equal(err.limit, 100);
  });
});

test('a client that leaves mid-body gives BodyIncompleteError', async () => {
  await withServer(1 << 20, async (port, outcome) => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\nonly a part');
    await new Promise((r) => setTimeout(r, 50));
    socket.destroy();
    assert.ok((await outcome) instanceof BodyIncompleteError);
  });
});
