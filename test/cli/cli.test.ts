import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ObjectClient } from '../../src/client/object-client.js';
import { hashFiles, keyPrefix } from '../../src/client/hash-files.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

let srv: TestServer;
let work: string;
before(async () => {
  srv = await startTestServer();
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-cli-'));
});
after(async () => {
  await srv.close();
  await fs.rm(work, { recursive: true, force: true });
});

function hoard(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--url', srv.url, ...args], {
      cwd: process.cwd(),
      env: { ...process.env, HOARD_URL: '', CACHEW_URL: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('hoard client CLI', () => {
  test('put (stdin and file), get, stat, namespaces, delete', async () => {
    const put = await hoard(['put', 'cli', 'greeting', '--ttl', '1h', '-H', 'X-Owner=ci'], 'hello\n');
    assert.equal(put.code, 0, put.stderr);
    const got = await hoard(['get', 'cli', 'greeting']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'hello\n');
    assert.match(got.stderr, /x-owner: ci/);
    const file = path.join(work, 'report.txt');
    await fs.writeFile(file, 'file body');
    assert.equal((await hoard(['put', 'cli', 'file', file])).code, 0);
    const out = path.join(work, 'out.txt');
    assert.equal((await hoard(['get', 'cli', 'file', '-o', out])).code, 0);
    assert.equal(await fs.readFile(out, 'utf8'), 'file body');
    const stat = await hoard(['stat', 'cli', 'file']);
    assert.match(stat.stdout, /content-disposition: attachment; filename="report.txt"/);
    assert.match(stat.stdout, /content-length: 9/);
    assert.match((await hoard(['namespaces'])).stdout, /^cli$/m);
    assert.equal((await hoard(['delete', 'cli', 'file'])).code, 0);
    const miss = await hoard(['get', 'cli', 'file']);
    assert.equal(miss.code, 2);
    assert.match(miss.stderr, /Cache miss: cli\/file/);
    const bad = await hoard(['put', 'cli', 'x', path.join(work, 'does-not-exist')]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^hoard: .*no such file/m);
  });

  test('save/restore round trip with --key and -H; restore miss exits 2; archive readable by tar --zstd', async () => {
    const src = path.join(work, 'src');
    await fs.mkdir(path.join(src, 'deps', 'nested'), { recursive: true });
    await fs.writeFile(path.join(src, 'deps', 'a.txt'), 'A');
    await fs.writeFile(path.join(src, 'deps', 'nested', 'b.bin'), Buffer.alloc(100_000, 7));
    await fs.writeFile(path.join(src, 'deps', 'skip.log'), 'x');
    await fs.writeFile(path.join(src, 'lock.json'), '{"v":1}');
    const save = await hoard(['save', 'deps', src, 'deps', '--key', 'k1', '--exclude', '*.log']);
    assert.equal(save.code, 0, save.stderr);
    const dest = path.join(work, 'dest');
    const restore = await hoard(['restore', 'deps', dest, '--key', 'k1']);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(await fs.readFile(path.join(dest, 'deps', 'a.txt'), 'utf8'), 'A');
    assert.equal((await fs.stat(path.join(dest, 'deps', 'nested', 'b.bin'))).size, 100_000);
    await assert.rejects(fs.stat(path.join(dest, 'deps', 'skip.log')));

    const miss = await hoard(['restore', 'deps', dest, '--key', 'nope']);
    assert.equal(miss.code, 2);
    assert.match(miss.stderr, /Cache miss/);

    const cwdRel = path.relative(process.cwd(), path.join(src, 'lock.json'));
    assert.equal((await hoard(['save', 'deps', src, 'deps', '-H', cwdRel])).code, 0);
    const dest2 = path.join(work, 'dest2');
    assert.equal((await hoard(['restore', 'deps', dest2, '-H', cwdRel])).code, 0);
    assert.equal(await fs.readFile(path.join(dest2, 'deps', 'a.txt'), 'utf8'), 'A');

    const archive = path.join(work, 'a.tar.zst');
    assert.equal((await hoard(['get', 'deps', 'k1', '-o', archive])).code, 0);
    const listing = spawnSync('tar', ['--zstd', '-tf', archive], { encoding: 'utf8' });
    assert.equal(listing.status, 0, listing.stderr);
    assert.match(listing.stdout, /deps\/nested\/b\.bin/);

    const none = await hoard(['save', 'deps', src, '--key', 'a', '-H', 'x']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /either --key or -H/);
    const nomatch = await hoard(['restore', 'deps', dest, '-H', 'no/such/*.lock']);
    assert.equal(nomatch.code, 1);
    assert.match(nomatch.stderr, /no files match/);
  });

  test('--version and --help', async () => {
    const v = await hoard(['--version']);
    assert.match(v.stdout, /^hoard \d+\.\d+\.\d+/);
    const h = await hoard(['--help']);
    assert.match(h.stdout, /Examples:/);
    const both = await hoard(['--daily', '--hourly', 'namespaces']);
    assert.equal(both.code, 1);
  });
});

describe('object client', () => {
  test('a failing source aborts the upload and nothing is stored', async () => {
    const client = new ObjectClient({ url: srv.url });
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent++ < 20) this.push(Buffer.alloc(64 * 1024, 1));
        else this.destroy(new Error('disk read failed'));
      },
    });
    await assert.rejects(client.create('client', 'broken', source), /upload aborted, nothing stored: disk read failed/);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await assert.rejects(client.stat('client', 'broken'), /not found/);
  });

  test('typed outcomes: 404, 304, 412, 416', async () => {
    const client = new ObjectClient({ url: `${srv.url}///` });
    await client.create('client', 'k', Readable.from([Buffer.from('0123456789')]), { etag: 'e1' });
    await assert.rejects(client.open('client', 'missing'), (e: Error & { code?: string }) => e.code === 'not-found');
    await assert.rejects(client.open('client', 'k', { ifNoneMatch: '"e1"' }), (e: Error & { code?: string }) => e.code === 'not-modified');
    await assert.rejects(client.open('client', 'k', { ifMatch: '"x"' }), (e: Error & { code?: string }) => e.code === 'precondition-failed');
    await assert.rejects(client.open('client', 'k', { range: 'bytes=50-' }), (e: Error & { code?: string; size?: number }) => e.code === 'range-not-satisfiable' && e.size === 10);
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const unreachable = new ObjectClient({ url: `http://127.0.0.1:${closedPort}` });
    await assert.rejects(unreachable.stats(), /cannot reach hoard at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
  });

  test('hash keys and prefixes', async () => {
    const dir = path.join(work, 'hash');
    await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fs.writeFile(path.join(dir, 'a.lock'), '1');
    await fs.writeFile(path.join(dir, 'sub', 'b.lock'), '2');
    const k1 = await hashFiles(['**/*.lock'], dir);
    await fs.writeFile(path.join(dir, 'sub', 'b.lock'), '3');
    assert.notEqual(await hashFiles(['**/*.lock'], dir), k1);
    await assert.rejects(hashFiles([], dir), /no file patterns/);
    const when = new Date(2026, 0, 2, 3);
    assert.equal(keyPrefix({ daily: true }, when), '2026-01-02-');
    assert.equal(keyPrefix({ hourly: true }, when), '2026-01-02-03-');
    assert.equal(keyPrefix({ platform: true }, when), `${process.platform}-${process.arch}-`);
  });
});
