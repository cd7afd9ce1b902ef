/**
 * S3 stopped in the middle of a read (issue 10 point 9). A fault proxy between hoard and s3rver
 * cuts object bodies after a few hundred KiB, or cuts one and then refuses everything (S3 gone).
 * The client must get the whole body or a clean abort (a response that is not complete), never
 * a complete-looking 200 with fewer bytes; and the server keeps serving once S3 is back.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { s3ConfigBlock, type S3rverHandle, startS3rver } from '../../fixtures/s3rver.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

const MiB = 1024 * 1024;
const CUT_AFTER = 300 * 1024;
type Mode = 'pass' | 'cut-once' | 'cut-then-down';
let mode: Mode = 'pass';
let cuts = 0;
let s3: S3rverHandle;
let proxy: http.Server;
let hoard: TestServer;

/** Forwards to s3rver; in a cutting mode, destroys a large GET response after CUT_AFTER bytes. */
function startFaultProxy(target: URL): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (mode === 'cut-then-down' && cuts > 0) {
      req.socket.destroy();
      return;
    }
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      const length = Number(answer.headers['content-length'] ?? 0);
      if (req.method !== 'GET' || mode === 'pass' || length <= MiB) {
        answer.pipe(res);
        return;
      }
      if (mode === 'cut-once') mode = 'pass';
      cuts++;
      let sent = 0;
      answer.on('data', (chunk: Buffer) => {
        if (sent >= CUT_AFTER) return;
        const part = chunk.subarray(0, CUT_AFTER - sent);
        sent += part.length;
        res.write(part);
        if (sent >= CUT_AFTER) {
          answer.destroy();
          res.socket?.destroy();
        }
      });
    });
    upstream.once('error', () => res.socket?.destroy());
    req.pipe(upstream);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

before(async () => {
  s3 = await startS3rver();
  proxy = await startFaultProxy(new URL(s3.endpoint));
  const endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  hoard = await startTestServer({
    hcl: `${s3ConfigBlock(endpoint)}
cache s3 {
  bucket = "${s3.bucket}"
  download-part-size-mb = 4
}
metadata memory {}
metrics { port = 0 }
`,
  });
});
after(async () => {
  await hoard.close();
  proxy.closeAllConnections();
  await new Promise((r) => proxy.close(r));
  await s3.stop();
});

interface Received {
  status: number;
  /** True only when the whole message arrived (framing satisfied, no abort). */
  complete: boolean;
  body: Buffer;
}

/** A GET that reports whether the response really completed. */
function get(url: string): Promise<Received> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const req = http.get(url, (res) => {
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = () => resolve({ status: res.statusCode ?? 0, complete: res.complete, body: Buffer.concat(chunks) });
      res.once('end', done);
      res.once('aborted', done);
      res.once('error', done);
    });
    req.once('error', () => resolve({ status: 0, complete: false, body: Buffer.concat(chunks) }));
  });
}

function assertWholeOrAborted(got: Received, expected: Buffer, what: string): void {
  if (got.status === 200 && got.complete) {
    assert.equal(got.body.length, expected.length, `${what}: a complete 200 carries every byte`);
    assert.ok(got.body.equals(expected), `${what}: a complete 200 carries the right bytes`);
  } else {
    assert.ok(!got.complete || got.status !== 200, `${what}: anything short of the whole body is an abort or an error status`);
  }
}

async function put(key: string, body: Buffer<ArrayBuffer>): Promise<void> {
  const res = await fetch(`${hoard.url}/api/v1/object/s3fault/${key}`, { method: 'POST', body });
  assert.equal(res.status, 200, await res.text());
}

for (const [name, size] of [
  ['a single-GET object', 3 * MiB],
  ['a parallel-range object', 12 * MiB],
] as const) {
  test(`S3 cut mid-read of ${name}: whole body or clean abort, never a truncated 200; serving resumes`, async () => {
    const key = `obj-${size}`;
    const body = randomBytes(size);
    await put(key, body);
    const url = `${hoard.url}/api/v1/object/s3fault/${key}`;

    // One body GET cut short: hoard may recover by itself, or must abort the response.
    mode = 'cut-once';
    cuts = 0;
    assertWholeOrAborted(await get(url), body, 'one cut');
    assert.equal(cuts, 1, 'the proxy cut a body read');

    // S3 goes away in the middle of the read and stays away.
    mode = 'cut-then-down';
    cuts = 0;
    assertWholeOrAborted(await get(url), body, 'S3 gone mid-read');
    const whileDown = await get(url);
    assert.notEqual(whileDown.status, 200, 'nothing is served as a success while S3 is down');
    assert.equal((await get(`${hoard.url}/_liveness`)).status, 200, 'the server is alive while S3 is down');

    // S3 is back: the object is served whole again.
    mode = 'pass';
    const back = await get(url);
    assert.equal(back.status, 200);
    assert.ok(back.complete && back.body.equals(body), 'served whole once S3 is back');
  });
}
