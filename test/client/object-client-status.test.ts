import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { ObjectClient } from '../../src/client/object-client.js';

describe('object client status surfacing (tiny server)', () => {
  let server: http.Server;
  let url = '';
  before(async () => {
    server = http.createServer((req, res) => {
      if (req.method === 'POST') {
        // Refuse at once without reading the body: the client must still report 403 and its message.
        res.writeHead(403, { 'content-type': 'text/plain', connection: 'close' });
        res.end('read-only namespace');
        return;
      }
      res.writeHead(501, { 'content-type': 'text/plain' });
      res.end('stats not supported');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('an upload refused mid-stream surfaces 403 and the server message', async () => {
    let n = 0;
    const body = new Readable({
      read() {
        this.push(n++ < 256 ? Buffer.alloc(64 * 1024, 2) : null);
      },
    });
    await assert.rejects(new ObjectClient({ url }).create('ns', 'k', body), /403.*read-only namespace/);
  });

  test('501 maps to stats-unavailable', async () => {
    await assert.rejects(new ObjectClient({ url }).stats(), (e: Error & { code?: string }) => e.code === 'stats-unavailable');
  });
});
