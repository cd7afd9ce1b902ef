import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { holdingConnection } from '../../src/http/hold-connection.js';

/** A server that closes idle sockets after 200 ms and answers after 600 ms of silent work. */
async function serve(hold: boolean): Promise<{ status: number | undefined; error: string | undefined }> {
  const server = http.createServer(async (_req, res) => {
    const work = () => sleep(600);
    await (hold ? holdingConnection(res, work) : work());
    if (!res.destroyed) res.end('done');
  });
  server.setTimeout(200);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    return await new Promise((resolve) => {
      http
        .get(`http://127.0.0.1:${port}/`, (res) => {
          res.resume();
          res.once('end', () => resolve({ status: res.statusCode, error: undefined }));
        })
        .once('error', (err) => resolve({ status: undefined, error: err.message }));
    });
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

test('a long silent wait is cut by the idle timeout unless the connection is held', async () => {
  assert.ok((await serve(false)).error, 'without holding, the idle timeout closes the socket');
  assert.deepEqual(await serve(true), { status: 200, error: undefined });
});
