/**
 * Issue 10 point 1, from outside the process: a real `hoard serve` child, real `curl` requests
 * that hoard answers before reading their whole body (413, 403, 404, 405), and after each one
 * proof that the same process still serves (liveness plus an object written and read back).
 * Before the fix, the first oversized ensure-refs killed the process (the request log read the
 * remote address of a socket already gone).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startHoardOnConfig, type HoardProcess } from '../fixtures/hoard-process.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

let work: string;
let hoard: HoardProcess;

before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-e2e-crash-'));
  hoard = await startHoardOnConfig(
    work,
    `cache memory { limit-mb = 1 }
metadata memory {}
strategy git { allowed-hosts = ["allowed.example"] }
`,
  );
});
after(async () => {
  await hoard?.stop();
  await fs.rm(work, { recursive: true, force: true });
});

/** A file of `bytes` zero bytes (sparse: costs no disk). */
async function zeros(name: string, bytes: number): Promise<string> {
  const file = path.join(work, name);
  const handle = await fs.open(file, 'w');
  await handle.truncate(bytes);
  await handle.close();
  return file;
}

/** One curl request; resolves with the status and body (curl's own exit code is ignored: a refused upload may see its send cut). */
async function curl(method: string, pathAndQuery: string, opts: { file?: string; chunked?: boolean } = {}): Promise<{ status: number; body: string }> {
  const out = path.join(work, `out-${randomBytes(4).toString('hex')}`);
  const args = ['-sS', '--path-as-is', '-o', out, '-w', '%{http_code}', '-X', method];
  if (opts.file) args.push('--data-binary', `@${opts.file}`, '-H', 'Content-Type: application/octet-stream');
  if (opts.chunked) args.push('-H', 'Transfer-Encoding: chunked');
  args.push(`${hoard.url}${pathAndQuery}`);
  const result = await run('curl', args, { maxBuffer: MiB }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  const body = await fs.readFile(out, 'utf8').catch(() => '');
  await fs.rm(out, { force: true });
  return { status: Number(result.stdout), body };
}

/** The process is alive and serves a real request: an object written, then read back intact. */
async function assertStillServing(after: string): Promise<void> {
  assert.equal(hoard.exitCode(), null, `hoard exited after ${after}; its log:\n${hoard.log()}`);
  const live = await curl('GET', '/_liveness');
  assert.equal(live.status, 200, `liveness after ${after}`);
  const key = randomBytes(8).toString('hex');
  const payload = path.join(work, `payload-${key}`);
  const content = randomBytes(4096).toString('hex');
  await fs.writeFile(payload, content);
  assert.equal((await curl('POST', `/api/v1/object/e2e/${key}`, { file: payload })).status, 200, `object write after ${after}`);
  const read = await curl('GET', `/api/v1/object/e2e/${key}`);
  assert.equal(read.status, 200, `object read after ${after}`);
  assert.equal(read.body, content, `object content after ${after}`);
}

const cases: Array<{ name: string; method: string; path: string; bytes: number; chunked?: boolean; status: number; message: RegExp }> = [
  { name: 'ensure-refs over 1 MiB (declared length)', method: 'POST', path: '/git/allowed.example/o/r/ensure-refs', bytes: 2 * MiB, status: 413, message: /too large/ },
  { name: 'ensure-refs over 1 MiB (chunked)', method: 'POST', path: '/git/allowed.example/o/r/ensure-refs', bytes: 2 * MiB, chunked: true, status: 413, message: /too large/ },
  { name: 'git-upload-pack over 64 MiB (declared length)', method: 'POST', path: '/git/allowed.example/o/r/git-upload-pack', bytes: 65 * MiB, status: 413, message: /larger than/ },
  { name: 'git-upload-pack over 64 MiB (chunked)', method: 'POST', path: '/git/allowed.example/o/r/git-upload-pack', bytes: 65 * MiB, chunked: true, status: 413, message: /larger than/ },
  { name: 'object upload larger than the memory tier', method: 'POST', path: '/api/v1/object/e2e/too-big', bytes: 3 * MiB, status: 413, message: /Object too large/ },
  { name: 'object PUT (no such method)', method: 'PUT', path: '/api/v1/object/e2e/put', bytes: 3 * MiB, status: 405, message: /method not allowed/ },
  { name: 'admin log level body over 1 KiB', method: 'POST', path: '/admin/log/level', bytes: 4096, status: 413, message: /too large/ },
  { name: 'upload-pack for a host outside allowed-hosts (403)', method: 'POST', path: '/git/other.example/o/r/git-upload-pack', bytes: 3 * MiB, status: 403, message: /host not allowed/ },
  { name: 'a path no route serves, with a body (404)', method: 'POST', path: '/no/such/route', bytes: 3 * MiB, status: 404, message: /not found/ },
  { name: 'an invalid git path, with a body (400)', method: 'POST', path: '/git/allowed.example/../r/git-upload-pack', bytes: 3 * MiB, status: 400, message: /path segments are not allowed/ },
];

for (const c of cases) {
  test(`after an early answer to ${c.name}, hoard keeps serving`, async () => {
    const file = await zeros(`body-${c.bytes}`, c.bytes);
    const got = await curl(c.method, c.path, { file, ...(c.chunked ? { chunked: true } : {}) });
    assert.equal(got.status, c.status, `${c.name}: ${got.body}`);
    assert.match(got.body, c.message);
    await assertStillServing(c.name);
  });
}

test('a client that disconnects in the middle of its upload leaves hoard serving', async () => {
  for (const route of ['/api/v1/object/e2e/cut-short', '/git/allowed.example/o/r/git-upload-pack', '/git/allowed.example/o/r/ensure-refs', '/no/such/route']) {
    const { hostname, port } = new URL(hoard.url);
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () => {
        socket.write(`POST ${route} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Length: ${MiB}\r\n\r\n`);
        socket.write(Buffer.alloc(1024), () => {
          // Gone before the body is complete, without waiting for an answer.
          socket.destroy();
          resolve();
        });
      });
      socket.on('error', reject);
    });
    await assertStillServing(`a client that left mid-upload to ${route}`);
  }
});

test('no early answer logged a crash or an uncaught error', () => {
  assert.doesNotMatch(hoard.log(), /TypeError|uncaught error/);
});
