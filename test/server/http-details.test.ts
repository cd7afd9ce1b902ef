/**
 * Issue 10 point 7: HTTP details clients rely on, driven over real sockets: weak If-None-Match,
 * an empty object key, two Host headers, CONNECT, malformed git-upload-pack bodies (v0 and v2,
 * plain and gzip, against a real mirror), ensure-refs for a repository the upstream lacks, and
 * the object API while the authoritative S3 tier is down (real AWS SDK, s3rver stopped).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { checkConditions, resolveRange } from '../../src/cache/conditional.js';
import { isCacheError } from '../../src/cache/errors.js';
import { startGitRig, type GitRig } from '../fixtures/git-hoard.js';
import { gitClientEnv, type GitUpstream } from '../fixtures/git-upstream.js';
import { s3ConfigBlock, startS3rver } from '../fixtures/s3rver.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const run = promisify(execFile);

/** Sends `request` verbatim on a fresh socket and resolves with everything the server sent until it closed. */
function rawExchange(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(request));
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      // Keep-alive answers do not close: stop once a whole response (head and declared body) is in.
      const headEnd = received.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: *(\d+)/i.exec(received.slice(0, headEnd));
      if (headEnd !== -1 && length && received.length >= headEnd + 4 + Number(length[1])) socket.end();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
  });
}

describe('entity-tag comparison (RFC 9110 §8.8.3.2)', () => {
  const headers = { etag: '"v1"' };
  const outcome = (cond: Parameters<typeof checkConditions>[0]) => {
    try {
      checkConditions(cond, headers);
      return 'serve';
    } catch (err) {
      return isCacheError(err) ? err.code : 'other';
    }
  };
  test('If-None-Match is weak, If-Match and If-Range are strong', () => {
    assert.equal(outcome({ ifNoneMatch: 'W/"v1"' }), 'not-modified');
    assert.equal(outcome({ ifNoneMatch: '"x", W/"v1"' }), 'not-modified');
    assert.equal(outcome({ ifNoneMatch: 'W/"v2"' }), 'serve');
    assert.equal(outcome({ ifMatch: 'W/"v1"' }), 'precondition-failed');
    assert.equal(outcome({ ifMatch: '"v1"' }), 'serve');
    assert.equal(outcome({ ifMatch: 'W/"v1"' }), 'precondition-failed');
    try {
      checkConditions({ ifMatch: 'W/"w"' }, { etag: 'W/"w"' });
      assert.fail('a weak stored tag never matches If-Match');
    } catch (err) {
      assert.ok(isCacheError(err, 'precondition-failed'));
    }
    assert.deepEqual(resolveRange({ range: 'bytes=0-1', ifRange: '"v1"' }, '"v1"', 10), { start: 0, end: 1 });
    assert.equal(resolveRange({ range: 'bytes=0-1', ifRange: 'W/"v1"' }, '"v1"', 10), undefined);
    assert.equal(resolveRange({ range: 'bytes=0-1', ifRange: 'W/"v1"' }, 'W/"v1"', 10), undefined);
  });
});

describe('object API and request framing', () => {
  let hoard: TestServer;
  before(async () => {
    hoard = await startTestServer();
  });
  after(async () => {
    await hoard.close();
  });

  test('If-None-Match with a weak tag gets 304 for the strong stored tag; If-Match stays strong', async () => {
    const url = `${hoard.url}/api/v1/object/details/tagged`;
    assert.equal((await fetch(url, { method: 'POST', body: 'payload', headers: { etag: '"v1"' } })).status, 200);
    const weak = await fetch(url, { headers: { 'if-none-match': 'W/"v1"' } });
    assert.equal(weak.status, 304);
    assert.equal(weak.headers.get('etag'), '"v1"');
    assert.equal((await fetch(url, { headers: { 'if-none-match': 'W/"other"' } })).status, 200);
    assert.equal((await fetch(url, { headers: { 'if-match': 'W/"v1"' } })).status, 412);
    assert.equal((await fetch(url, { headers: { 'if-match': '"v1"' } })).status, 200);
    const ranged = await fetch(url, { headers: { range: 'bytes=0-2', 'if-range': 'W/"v1"' } });
    assert.equal(ranged.status, 200, 'a weak If-Range never yields a partial answer');
    assert.equal(await ranged.text(), 'payload');
  });

  test('an empty object key answers 400 with a message, for every method', async () => {
    for (const [method, route] of [
      ['GET', '/api/v1/object/details/'],
      ['HEAD', '/api/v1/object/details/'],
      ['POST', '/api/v1/object/details/'],
      ['DELETE', '/api/v1/object/details/'],
      ['POST', '/api/v1/object/details//invalidate'],
    ] as const) {
      const res = await fetch(`${hoard.url}${route}`, { method, ...(method === 'POST' ? { body: 'x' } : {}) });
      assert.equal(res.status, 400, `${method} ${route}`);
      if (method !== 'HEAD') assert.match(await res.text(), /key must not be empty/, `${method} ${route}`);
    }
  });

  test('a request with two Host headers answers 400', async () => {
    const answer = await rawExchange(hoard.url, 'GET /_liveness HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.match(answer, /more than one Host header/);
    // One Host header is fine on the same path.
    assert.match(await rawExchange(hoard.url, 'GET /_liveness HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200 /);
  });

  test('CONNECT answers 405 with Allow and a body instead of closing the socket', async () => {
    const answer = await rawExchange(hoard.url, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(answer, /\r\nAllow: GET, HEAD, POST, PUT, DELETE\r\n/i);
    assert.match(answer, /CONNECT is not supported/);
    // And curl, as a client would use it through `-p` (tunnel through hoard as a proxy).
    const viaCurl = await run('curl', ['-sS', '-p', '-x', hoard.url, 'https://example.invalid/', '-o', '/dev/null', '-w', '%{http_connect}'], { env: gitClientEnv }).catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }));
    assert.equal(viaCurl.stdout, '405');
  });
});

describe('git: malformed upload-pack bodies and missing repositories', () => {
  let rig: GitRig;
  let upstream: GitUpstream;
  let hoard: TestServer;
  let work: string;
  before(async () => {
    rig = await startGitRig({ workPrefix: 'hoard-details-' });
    ({ upstream, hoard, work } = rig);
    await upstream.createRepo('org/framed.git', { files: 3 });
    // A first clone through hoard builds the mirror, so later requests reach `git upload-pack`.
    await run('git', ['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/org/framed`, path.join(work, 'first')], { env: gitClientEnv });
    const mirror = path.join(hoard.stateDir, 'git-mirrors', upstream.hostPort, 'org/framed.git', 'HEAD');
    for (let i = 0; i < 600 && !(await fs.stat(mirror).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 50));
  });
  after(() => rig.close());

  const sha = '0123456789abcdef0123456789abcdef01234567';
  const pkt = (line: string) => `${(line.length + 4).toString(16).padStart(4, '0')}${line}`;
  const v0Valid = `${pkt(`want ${sha}\n`)}0000${pkt('done\n')}`;
  const v2Valid = `${pkt('command=ls-refs\n')}0001${pkt('peel\n')}0000`;
  const malformed: Array<{ name: string; body: string; v2?: boolean }> = [
    { name: 'garbage', body: 'hello, this is not git' },
    { name: 'a non-hex length', body: `zz${v0Valid}` },
    { name: 'a truncated pkt-line', body: v0Valid.slice(0, 20) },
    { name: 'no final flush or done', body: pkt(`want ${sha}\n`) },
    { name: 'a reserved length (0003)', body: `0003${v0Valid}` },
    { name: 'a v2 delimiter in v0', body: `${pkt(`want ${sha}\n`)}00010000` },
    { name: 'an empty body', body: '' },
    { name: 'v2 garbage', body: 'GET / HTTP/1.1\r\n', v2: true },
    { name: 'v2 truncated', body: v2Valid.slice(0, v2Valid.length - 2), v2: true },
    { name: 'v2 without a command', body: `${pkt('peel\n')}0000`, v2: true },
    { name: 'v2 without its final flush', body: v2Valid.slice(0, -4), v2: true },
  ];

  for (const repo of ['org/framed', 'org/cold-never-cloned']) {
    for (const gzip of [false, true]) {
      test(`malformed upload-pack bodies answer 400 with a message (${repo}, ${gzip ? 'gzip' : 'plain'})`, async () => {
        const before = upstream.requests.length;
        for (const c of malformed) {
          const headers: Record<string, string> = { 'content-type': 'application/x-git-upload-pack-request' };
          if (c.v2) headers['git-protocol'] = 'version=2';
          if (gzip) headers['content-encoding'] = 'gzip';
          const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/${repo}/git-upload-pack`, { method: 'POST', headers, body: gzip ? gzipSync(c.body) : c.body });
          const text = await res.text();
          assert.equal(res.status, 400, `${c.name}: ${res.status} ${text}`);
          assert.match(text, /^malformed git-upload-pack request: \S/, c.name);
        }
        assert.deepEqual(upstream.requests.slice(before), [], 'nothing malformed went upstream (nor started a clone)');
      });
    }
  }

  test('gzip that is not gzip answers 400', async () => {
    const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/framed/git-upload-pack`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: v0Valid });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /not valid gzip/);
  });

  test('well-framed bodies still work: a v2 ls-refs body answers 200 and real v0/v2 clones succeed', async () => {
    const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/framed/git-upload-pack`, {
      method: 'POST',
      headers: { 'git-protocol': 'version=2', 'content-type': 'application/x-git-upload-pack-request', 'content-encoding': 'gzip' },
      body: gzipSync(v2Valid),
    });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /refs\/heads\/main/);
    for (const version of ['0', '2']) {
      await run('git', ['-c', `protocol.version=${version}`, 'clone', '-q', `${hoard.url}/git/${upstream.hostPort}/org/framed`, path.join(work, `v${version}`)], { env: gitClientEnv });
    }
  });

  test('ensure-refs for a repository the upstream does not have answers 404 with a message', async () => {
    const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/does-not-exist/ensure-refs`, { method: 'POST', body: JSON.stringify({ refs: { 'refs/heads/main': '' } }) });
    const text = await res.text();
    assert.equal(res.status, 404, text);
    assert.match(text, /repository not found: .*org\/does-not-exist/);
  });
});

describe('object API while the authoritative S3 tier is down', () => {
  test('writes and reads answer 503 naming the tier; a local hit still serves', async () => {
    const s3 = await startS3rver();
    const hoard = await startTestServer({
      hcl: `${s3ConfigBlock(s3.endpoint)}
cache disk {}
cache s3 { bucket = "${s3.bucket}" }
metadata memory {}
metrics { port = 0 }
`,
    });
    try {
      assert.equal((await fetch(`${hoard.url}/api/v1/object/down/kept`, { method: 'POST', body: 'kept' })).status, 200);
      await s3.stop();
      const tier = /^cache tier s3 \(bucket hoard-test\) unavailable: .*ECONNREFUSED/;
      const write = await fetch(`${hoard.url}/api/v1/object/down/new`, { method: 'POST', body: 'x' });
      assert.equal(write.status, 503);
      assert.match(await write.text(), tier);
      for (const method of ['GET', 'DELETE'] as const) {
        const res = await fetch(`${hoard.url}/api/v1/object/down/new`, { method });
        assert.equal(res.status, 503, method);
        assert.match(await res.text(), tier, method);
      }
      const head = await fetch(`${hoard.url}/api/v1/object/down/new`, { method: 'HEAD' });
      assert.equal(head.status, 503);
      const kept = await fetch(`${hoard.url}/api/v1/object/down/kept`);
      assert.equal(kept.status, 200, 'the disk tier still serves what it holds');
      assert.equal(await kept.text(), 'kept');
    } finally {
      await hoard.close();
      await s3.stop().catch(() => undefined);
    }
  });
});
