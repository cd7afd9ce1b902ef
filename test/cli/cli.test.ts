import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
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

type Run = { code: number | null; stdout: string; stderr: string };

function hoard(args: string[], input?: string): Promise<Run> {
  return hoardWith(['--url', srv.url, ...args], { input });
}

/** The CLI as a child process; `env` is merged over a copy with the client variables (HOARD_URL, CACHEW_URL, …) cleared. */
function hoardWith(args: string[], opts: { input?: string | undefined; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: process.cwd(),
      env: { ...process.env, HOARD_URL: '', CACHEW_URL: '', HOARD_AUTHORIZATION: '', CACHEW_AUTHORIZATION: '', ...opts.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

describe('hoard client CLI', () => {
  test('put (stdin and file), get, stat, namespaces, delete', async () => {
    const put = await hoard(['put', 'cli', 'greeting', '--ttl', '1h', '-H', 'X-Owner=ci'], 'hello\n');
    assert.equal(put.code, 0, put.stderr);
    const got = await hoard(['get', 'cli', 'greeting']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'hello\n');
    assert.match(got.stderr, /^X-Owner: ci$/m);
    const file = path.join(work, 'report.txt');
    await fs.writeFile(file, 'file body');
    assert.equal((await hoard(['put', 'cli', 'file', file])).code, 0);
    const out = path.join(work, 'out.txt');
    assert.equal((await hoard(['get', 'cli', 'file', '-o', out])).code, 0);
    assert.equal(await fs.readFile(out, 'utf8'), 'file body');
    const stat = await hoard(['stat', 'cli', 'file']);
    assert.match(stat.stdout, /^Content-Disposition: attachment; filename="report.txt"$/m);
    assert.match(stat.stdout, /^Content-Length: 9$/m);
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
    assert.match(none.stderr, /either --key or -H\/--hash-files/);
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

describe('hoard client CLI: headers, archives and status lines', () => {
  test('the stored Content-Type is exactly the caller\'s (no "application/octet-stream, …" join)', async () => {
    for (const spelling of ['Content-Type', 'content-type', 'CONTENT-TYPE']) {
      const put = await hoard(['put', 'types', spelling, '-H', `${spelling}=text/plain`], 'typed');
      assert.equal(put.code, 0, put.stderr);
      const stat = await hoard(['stat', 'types', spelling]);
      assert.equal(stat.code, 0, stat.stderr);
      assert.match(stat.stdout, /^Content-Type: text\/plain$/m, spelling);
    }
    assert.equal((await hoard(['put', 'types', 'plain'], 'x')).code, 0);
    assert.match((await hoard(['stat', 'types', 'plain'])).stdout, /^Content-Type: application\/octet-stream$/m);
    // A caller ETag header never overrides the one hoard derives (same as cachew's client).
    assert.equal((await hoard(['put', 'types', 'etag', '-H', 'ETag="mine"'], 'x')).code, 0);
    assert.doesNotMatch((await hoard(['stat', 'types', 'etag'])).stdout, /^Etag: "mine"$/m);
  });

  test('save sends Content-Type and Content-Disposition, prints Saved:/Restored:, --hash-files works', async () => {
    const project = path.join(work, 'project');
    await fs.mkdir(path.join(project, 'node_modules', 'dep'), { recursive: true });
    await fs.writeFile(path.join(project, 'node_modules', 'dep', 'index.js'), 'module.exports = 1;\n');
    await fs.writeFile(path.join(project, 'package-lock.json'), '{"lockfileVersion":3}');
    const lock = path.relative(process.cwd(), path.join(project, 'package-lock.json'));

    const save = await hoard(['save', 'arch', project, 'node_modules', '--hash-files', lock]);
    assert.equal(save.code, 0, save.stderr);
    assert.match(save.stderr, /^Archiving .*project \(node_modules\)$/m);
    const saved = /^Saved: arch\/([0-9a-f]{64})$/m.exec(save.stderr);
    assert.ok(saved, save.stderr);
    const stat = await hoard(['stat', 'arch', saved[1]!]);
    assert.match(stat.stdout, /^Content-Type: application\/zstd$/m);
    assert.match(stat.stdout, /^Content-Disposition: attachment; filename="project\.tar\.zst"$/m);

    // -H and --hash-files name the same key.
    const dest = path.join(work, 'project-restored');
    const restore = await hoard(['restore', 'arch', dest, '-H', lock]);
    assert.equal(restore.code, 0, restore.stderr);
    assert.match(restore.stderr, new RegExp(`^Restored: arch/${saved[1]} into `, 'm'));
    assert.equal(await fs.readFile(path.join(dest, 'node_modules', 'dep', 'index.js'), 'utf8'), 'module.exports = 1;\n');
    // --quiet silences the status lines.
    const quiet = await hoard(['-q', 'restore', 'arch', dest, '--hash-files', lock]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
  });

  test('save: an archiver that fails after writing its output stores nothing and exits 1', async () => {
    const src = path.join(work, 'failing');
    await fs.mkdir(path.join(src, 'data'), { recursive: true });
    await fs.writeFile(path.join(src, 'data', 'f.bin'), Buffer.alloc(300_000, 3));
    // A tar that writes a complete, valid archive, closes its output and only then exits
    // non-zero, as real tar does when a file is unreadable or changed while read: the worst case
    // for the upload, whose body would otherwise end (and be committed) before the exit status
    // is known.
    const realTar = execFileSync('sh', ['-c', 'command -v tar'], { encoding: 'utf8' }).trim();
    const fakeBin = path.join(work, 'fakebin');
    await fs.mkdir(fakeBin, { recursive: true });
    await fs.writeFile(path.join(fakeBin, 'tar'), `#!/bin/sh\n"${realTar}" "$@" || exit $?\nexec 1>&-\nsleep 1\necho "tar: data/f.bin: file changed as we read it" >&2\nexit 1\n`, { mode: 0o755 });
    const env = { PATH: `${fakeBin}${path.delimiter}${process.env['PATH'] ?? ''}` };
    const save = await hoardWith(['--url', srv.url, 'save', 'arch', src, 'data', '--key', 'failed-archive'], { env });
    assert.equal(save.code, 1, save.stderr);
    assert.match(save.stderr, /^hoard: .*file changed as we read it/m);
    assert.doesNotMatch(save.stderr, /^Saved:/m);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const stat = await hoard(['stat', 'arch', 'failed-archive']);
    assert.equal(stat.code, 2, `the failed archive was stored: ${stat.stdout}`);

    // A path that does not exist is refused before anything is archived or sent.
    const missing = await hoard(['save', 'arch', src, 'data', 'no-such-dir', '--key', 'missing-path']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^hoard: no-such-dir does not exist in /m);
    assert.equal((await hoard(['stat', 'arch', 'missing-path'])).code, 2);
  });

  test('key text with slashes and percent signs works (the client sends the hashed key)', async () => {
    assert.equal((await hoard(['put', 'keys', 'refs/heads/main 100%'], 'slashed')).code, 0);
    const got = await hoard(['get', 'keys', 'refs/heads/main 100%']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'slashed');
  });

  test('--platform with --daily: date first, then the Go platform name', async () => {
    const day = keyPrefix({ daily: true });
    const goArch = { x64: 'amd64', ia32: '386', arm64: 'arm64' }[process.arch as string] ?? process.arch;
    const goOs = process.platform === 'win32' ? 'windows' : process.platform;
    assert.equal((await hoard(['--platform', '--daily', 'put', 'prefix', 'mykey'], 'prefixed')).code, 0);
    const got = await hoard(['get', 'prefix', `${day}${goOs}-${goArch}-mykey`]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout, 'prefixed');
  });
});

describe('hoard client CLI: environment, progress and help', () => {
  test('--url, then HOARD_URL, then CACHEW_URL, then the default', async () => {
    const dead = await closedPortUrl();
    assert.equal((await hoardWith(['put', 'env', 'k'], { input: 'v', env: { HOARD_URL: srv.url, CACHEW_URL: dead } })).code, 0);
    const viaCachew = await hoardWith(['get', 'env', 'k'], { env: { CACHEW_URL: srv.url } });
    assert.equal(viaCachew.code, 0, viaCachew.stderr);
    assert.equal(viaCachew.stdout, 'v');
    const hoardWins = await hoardWith(['get', 'env', 'k'], { env: { HOARD_URL: dead, CACHEW_URL: srv.url } });
    assert.equal(hoardWins.code, 1);
    assert.match(hoardWins.stderr, new RegExp(`cannot reach hoard at ${dead.replace(/[.]/g, '\\.')}`));
    const flagWins = await hoardWith(['--url', srv.url, 'get', 'env', 'k'], { env: { HOARD_URL: dead, CACHEW_URL: dead } });
    assert.equal(flagWins.code, 0, flagWins.stderr);
    // An empty variable counts as unset.
    assert.equal((await hoardWith(['get', 'env', 'k'], { env: { HOARD_URL: '', CACHEW_URL: srv.url } })).code, 0);
  });

  test('--authorization, then HOARD_AUTHORIZATION, then CACHEW_AUTHORIZATION; never shown by --help', async () => {
    const seen: Array<string | undefined> = [];
    const recorder = http.createServer((req, res) => {
      seen.push(req.headers['authorization']);
      res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(recorder.address() as net.AddressInfo).port}`;
      const run = (args: string[], env: NodeJS.ProcessEnv) => hoardWith(['--url', url, ...args, 'namespaces'], { env });
      assert.equal((await run([], { CACHEW_AUTHORIZATION: 'Bearer from-cachew' })).code, 0);
      assert.equal((await run([], { HOARD_AUTHORIZATION: 'Bearer from-hoard', CACHEW_AUTHORIZATION: 'Bearer from-cachew' })).code, 0);
      assert.equal((await run(['--authorization', 'Bearer from-flag'], { HOARD_AUTHORIZATION: 'Bearer from-hoard' })).code, 0);
      assert.equal((await run([], {})).code, 0);
      assert.deepEqual(seen, ['Bearer from-cachew', 'Bearer from-hoard', 'Bearer from-flag', undefined]);
    } finally {
      await new Promise((resolve) => recorder.close(resolve));
    }
    const help = await hoardWith(['--help'], { env: { HOARD_AUTHORIZATION: 'Bearer do-not-print' } });
    assert.doesNotMatch(help.stdout, /do-not-print/);
  });

  test('the progress bar draws only on a TTY, and --quiet silences it there', async (t) => {
    const file = path.join(work, 'progress.bin');
    await fs.writeFile(file, Buffer.alloc(2 * 1024 * 1024, 5));
    // Piped stderr (not a TTY): no bar, no escape sequences.
    const piped = await hoard(['put', 'progress', 'k', file]);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '');
    const out = path.join(work, 'progress.out');
    const get = await hoard(['get', 'progress', 'k', '-o', out]);
    assert.doesNotMatch(get.stderr, /\u001b\[|MB\/s/);

    if (spawnSync('script', ['--version']).status !== 0) {
      t.skip('util-linux script(1) not available to give the CLI a terminal');
      return;
    }
    // On a pseudo-terminal (script(1)), the bar is drawn unless --quiet. (Asynchronously: the
    // server under test runs in this process and must keep answering.)
    const onTty = (args: string[]) =>
      new Promise<{ status: number | null; stdout: string }>((resolve) => {
        const cmd = [process.execPath, '--import', 'tsx', 'src/cli/main.ts', '--url', srv.url, ...args].map((a) => `'${a}'`).join(' ');
        const child = spawn('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, HOARD_URL: '', CACHEW_URL: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c));
        child.on('close', (status) => resolve({ status, stdout }));
      });
    const drawn = await onTty(['put', 'progress', 'tty', file]);
    assert.equal(drawn.status, 0, drawn.stdout);
    assert.match(drawn.stdout, /put \[/);
    assert.match(drawn.stdout, /MB\/s/);
    const quiet = await onTty(['--quiet', 'put', 'progress', 'tty', file]);
    assert.equal(quiet.status, 0, quiet.stdout);
    assert.doesNotMatch(quiet.stdout, /put \[|MB\/s/);
  });

  test('--help documents the miss exit code of get, stat and restore', async () => {
    assert.match((await hoard(['--help'])).stdout, /Exit codes: 0 success; 2 the object or snapshot is not in the cache/);
    for (const cmd of ['get', 'stat', 'restore']) {
      const help = await hoard([cmd, '--help']);
      assert.match(help.stdout, /Exit codes: 0 \w+, 2 not in the cache, 1 error\./, cmd);
    }
    assert.match((await hoard(['save', '--help'])).stdout, /-H, --hash-files <glob\.\.\.>/);
    const missStat = await hoard(['stat', 'nowhere', 'nothing']);
    assert.equal(missStat.code, 2);
  });
});

/** A URL on which nothing listens. */
async function closedPortUrl(): Promise<string> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return `http://127.0.0.1:${port}`;
}

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
    assert.equal(keyPrefix({ platform: true, daily: true }, when, 'linux-amd64'), '2026-01-02-linux-amd64-');
  });
});

describe("hoard client CLI: cachew's environment variables and flags", () => {
  test('every flag reads HOARD_<FLAG>, then CACHEW_<FLAG>; the command line wins', async () => {
    const env = { CACHEW_URL: srv.url };
    // CACHEW_PLATFORM (a boolean) prefixes the key just as --platform does.
    assert.equal((await hoardWith(['put', 'envflags', 'pk'], { input: 'platformed', env: { ...env, CACHEW_PLATFORM: 'true' } })).code, 0);
    assert.equal((await hoardWith(['--platform', 'get', 'envflags', 'pk'], { env })).stdout, 'platformed');
    assert.equal((await hoardWith(['get', 'envflags', 'pk'], { env })).code, 2, 'without the prefix the key is different');
    // CACHEW_OUTPUT supplies get's --output; HOARD_OUTPUT wins over it; -o wins over both.
    const a = path.join(work, 'env-a.txt');
    const b = path.join(work, 'env-b.txt');
    const c = path.join(work, 'env-c.txt');
    assert.equal((await hoardWith(['put', 'envflags', 'o'], { input: 'out', env })).code, 0);
    assert.equal((await hoardWith(['get', 'envflags', 'o'], { env: { ...env, CACHEW_OUTPUT: a } })).code, 0);
    assert.equal(await fs.readFile(a, 'utf8'), 'out');
    assert.equal((await hoardWith(['get', 'envflags', 'o'], { env: { ...env, CACHEW_OUTPUT: a, HOARD_OUTPUT: b } })).code, 0);
    assert.equal(await fs.readFile(b, 'utf8'), 'out');
    assert.equal((await hoardWith(['get', 'envflags', 'o', '-o', c], { env: { ...env, CACHEW_OUTPUT: a, HOARD_OUTPUT: b } })).code, 0);
    assert.equal(await fs.readFile(c, 'utf8'), 'out');
    // CACHEW_KEY supplies save/restore's --key.
    const dir = path.join(work, 'envkey');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'f.txt'), 'keyed');
    assert.equal((await hoardWith(['save', 'envflags', dir, 'f.txt'], { env: { ...env, CACHEW_KEY: 'from-env' } })).code, 0);
    const restored = path.join(work, 'envkey-restored');
    const restore = await hoardWith(['restore', 'envflags', restored, '--key', 'from-env'], { env });
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(await fs.readFile(path.join(restored, 'f.txt'), 'utf8'), 'keyed');
  });

  test('bad environment values are errors naming the variable', async () => {
    const badBool = await hoardWith(['namespaces'], { env: { CACHEW_URL: srv.url, CACHEW_PLATFORM: 'maybe' } });
    assert.equal(badBool.code, 1);
    assert.match(badBool.stderr, /^hoard: CACHEW_PLATFORM must be true or false/m);
    const badChoice = await hoardWith(['namespaces'], { env: { CACHEW_URL: srv.url, CACHEW_LOG_LEVEL: 'verbose' } });
    assert.equal(badChoice.code, 1);
    assert.match(badChoice.stderr, /CACHEW_LOG_LEVEL must be one of debug, info, warn, error/);
  });

  test('--log-level debug adds request lines, warn hides status lines, --log-json writes JSON, remap/headers warn', async () => {
    const dir = path.join(work, 'loglevels');
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'x'), 'x');
    const debug = await hoard(['--log-level', 'debug', 'save', 'logs', dir, '--key', 'k']);
    assert.equal(debug.code, 0, debug.stderr);
    assert.match(debug.stderr, /^POST http:\/\/127\.0\.0\.1:\d+\/api\/v1\/object\/logs\/[0-9a-f]{64} -> 200 \(\d+ ms\)$/m);
    assert.match(debug.stderr, /^Saved: /m);
    const warn = await hoardWith(['save', 'logs', dir, '--key', 'k'], { env: { CACHEW_URL: srv.url, CACHEW_LOG_LEVEL: 'warn' } });
    assert.equal(warn.code, 0);
    assert.doesNotMatch(warn.stderr, /Saved:/);
    const json = await hoard(['--log-json', 'save', 'logs', dir, '--key', 'k']);
    const line = json.stderr.split('\n').find((l) => l.includes('Saved:'));
    assert.ok(line, json.stderr);
    const parsed = JSON.parse(line) as { level: string; msg: string };
    assert.equal(parsed.level, 'info');
    assert.match(parsed.msg, /^Saved: /);
    const remap = await hoard(['--log-remap', 'msg=message', 'namespaces']);
    assert.equal(remap.code, 0);
    assert.match(remap.stderr, /warning: --log-remap has no effect in hoard's client/);
  });

  test("git restore takes cachew's --download-concurrency and --download-chunk-size-mb, validated", async () => {
    const bad = await hoard(['git', 'restore', 'https://github.com/org/repo', path.join(work, 'gr'), '--download-concurrency', '0']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--download-concurrency must be a whole number from 1 to 64/);
    const badChunk = await hoard(['git', 'restore', 'https://github.com/org/repo', path.join(work, 'gr'), '--download-chunk-size-mb', 'lots']);
    assert.match(badChunk.stderr, /--download-chunk-size-mb must be a whole number of MiB/);
    const both = await hoard(['git', 'restore', 'https://github.com/org/repo', path.join(work, 'gr'), '--concurrency', '2', '--download-concurrency', '3']);
    assert.match(both.stderr, /either --concurrency or --download-concurrency/);
    // Accepted and used: the server has no snapshot for it, which is the documented exit 2.
    const ok = await hoardWith(['git', 'restore', 'https://github.com/org/repo', path.join(work, 'gr'), '--download-chunk-size-mb', '4'], { env: { CACHEW_URL: srv.url, CACHEW_DOWNLOAD_CONCURRENCY: '2' } });
    assert.equal(ok.code, 2, ok.stderr);
  });
});
