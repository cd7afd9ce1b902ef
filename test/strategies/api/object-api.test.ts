import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

let srv: TestServer;
before(async () => {
  srv = await startTestServer();
});
after(async () => {
  await srv.close();
});

const obj = (ns: string, key: string) => `${srv.url}/api/v1/object/${ns}/${key}`;

async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', body, headers });
}

describe('object API v1', () => {
  test('POST then GET returns the body with allowlisted headers only', async () => {
    const res = await post(obj('api', 'k1'), 'hello world', {
      'Content-Type': 'text/plain',
      'X-Build-Id': '42',
      Authorization: 'Bearer secret',
      Cookie: 'session=1',
      'X-Forwarded-For': '1.2.3.4',
      'X-Amz-Date': 'x',
      'Time-To-Live': '1h',
      ETag: '"v1"',
    });
    assert.equal(res.status, 200);
    const got = await fetch(obj('api', 'k1'));
    assert.equal(got.status, 200);
    assert.equal(await got.text(), 'hello world');
    assert.equal(got.headers.get('content-type'), 'text/plain');
    assert.equal(got.headers.get('x-build-id'), '42');
    assert.equal(got.headers.get('etag'), '"v1"');
    assert.equal(got.headers.get('accept-ranges'), 'bytes');
    assert.equal(got.headers.get('content-length'), '11');
    for (const name of ['authorization', 'cookie', 'x-forwarded-for', 'x-amz-date', 'time-to-live']) assert.equal(got.headers.get(name), null, name);
  });

  test('conditional requests: If-None-Match, If-Match, If-Range, HEAD', async () => {
    await post(obj('api', 'cond'), '0123456789', { ETag: '"c1"' });
    assert.equal((await fetch(obj('api', 'cond'), { headers: { 'If-None-Match': '"c1"' } })).status, 304);
    assert.equal((await fetch(obj('api', 'cond'), { headers: { 'If-None-Match': '"a", "c1"' } })).status, 304);
    assert.equal((await fetch(obj('api', 'cond'), { headers: { 'If-None-Match': '*' } })).status, 304);
    const nm = await fetch(obj('api', 'cond'), { headers: { 'If-None-Match': '"other"' } });
    assert.equal(nm.status, 200);
    await nm.text();
    assert.equal((await fetch(obj('api', 'cond'), { headers: { 'If-Match': '"nope"' } })).status, 412);
    const im = await fetch(obj('api', 'cond'), { headers: { 'If-Match': '"c1"' } });
    assert.equal(im.status, 200);
    await im.text();
    const stale = await fetch(obj('api', 'cond'), { headers: { Range: 'bytes=0-1', 'If-Range': '"old"' } });
    assert.equal(stale.status, 200);
    assert.equal(await stale.text(), '0123456789');
    const head = await fetch(obj('api', 'cond'), { method: 'HEAD', headers: { Range: 'bytes=0-1' } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '10');
    assert.equal(await head.text(), '');
    assert.equal((await fetch(obj('api', 'cond'), { method: 'HEAD', headers: { 'If-None-Match': '"c1"' } })).status, 304);
  });

  test('secret-looking X-* headers are never stored or replayed', async () => {
    const secretish = ['X-Api-Key', 'X-Auth-Token', 'X-GitHub-Token', 'X-Session-Id', 'X-Client-Secret', 'X-Cookie', 'X-Db-Password', 'X-Authorization', 'X-AMZ-SECURITY-TOKEN'];
    const headers: Record<string, string> = { 'X-Build-Id': '7', 'X-Commit': 'abc' };
    for (const name of secretish) headers[name] = 'hunter2';
    assert.equal((await post(obj('api', 'secrets'), 'x', headers)).status, 200);
    for (const method of ['GET', 'HEAD']) {
      const got = await fetch(obj('api', 'secrets'), { method });
      await got.text();
      assert.equal(got.headers.get('x-build-id'), '7');
      assert.equal(got.headers.get('x-commit'), 'abc');
      for (const name of secretish) assert.equal(got.headers.get(name), null, `${method} replayed ${name}`);
      for (const [, value] of got.headers) assert.notEqual(value, 'hunter2');
    }
  });

  test('304, 412 and 416 carry exactly what §2.7/§2.8 say', async () => {
    await post(obj('api', 'wire'), '0123456789', {
      ETag: '"w1"',
      'Content-Type': 'text/plain',
      'Content-Disposition': 'attachment; filename="w.txt"',
      'Cache-Control': 'max-age=60',
      'X-Build-Id': '9',
    });
    for (const method of ['GET', 'HEAD']) {
      // 304: the stored headers, minus those describing a body; no body.
      const nm = await fetch(obj('api', 'wire'), { method, headers: { 'If-None-Match': '"w1"' } });
      assert.equal(nm.status, 304, method);
      assert.equal(nm.headers.get('etag'), '"w1"');
      assert.ok(nm.headers.get('last-modified'), 'last-modified replayed');
      assert.equal(nm.headers.get('cache-control'), 'max-age=60');
      assert.equal(nm.headers.get('content-disposition'), 'attachment; filename="w.txt"');
      assert.equal(nm.headers.get('x-build-id'), '9');
      assert.equal(nm.headers.get('content-type'), null);
      assert.equal(nm.headers.get('content-length'), null);
      assert.equal(await nm.text(), '');
      // 412: no body, no stored headers.
      const pf = await fetch(obj('api', 'wire'), { method, headers: { 'If-Match': '"other"' } });
      assert.equal(pf.status, 412, method);
      assert.equal(await pf.text(), '');
      for (const name of ['etag', 'content-type', 'x-build-id', 'accept-ranges', 'content-disposition']) assert.equal(pf.headers.get(name), null, `412 ${name}`);
    }
    // 416: Content-Range with the size and Accept-Ranges; no body, no object length, no stored headers.
    const rs = await fetch(obj('api', 'wire'), { headers: { Range: 'bytes=10-20' } });
    assert.equal(rs.status, 416);
    assert.equal(rs.headers.get('content-range'), 'bytes */10');
    assert.equal(rs.headers.get('accept-ranges'), 'bytes');
    assert.notEqual(rs.headers.get('content-length'), '10');
    assert.equal(rs.headers.get('etag'), null);
    assert.equal(await rs.text(), '');
  });

  test('ranges: 206, suffix, malformed → full body, unsatisfiable → 416 with size', async () => {
    await post(obj('api', 'range'), 'abcdefghij');
    const part = await fetch(obj('api', 'range'), { headers: { Range: 'bytes=2-4' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 2-4/10');
    assert.equal(await part.text(), 'cde');
    const suffix = await fetch(obj('api', 'range'), { headers: { Range: 'bytes=-2' } });
    assert.equal(await suffix.text(), 'ij');
    for (const bad of ['bytes=abc', 'bytes=5-2', 'bytes=0-1,3-4', 'items=0-1']) {
      const full = await fetch(obj('api', 'range'), { headers: { Range: bad } });
      assert.equal(full.status, 200, bad);
      assert.equal(await full.text(), 'abcdefghij');
    }
    const unsat = await fetch(obj('api', 'range'), { headers: { Range: 'bytes=10-' } });
    assert.equal(unsat.status, 416);
    assert.equal(unsat.headers.get('content-range'), 'bytes */10');
    await unsat.text();
  });

  test('bad input: namespace, TTL, ETag → 400 with a clear message', async () => {
    const ns = await fetch(`${srv.url}/api/v1/object/.hidden/k`);
    assert.equal(ns.status, 400);
    assert.equal((await ns.text()).trim(), 'Invalid namespace');
    const dash = await post(`${srv.url}/api/v1/object/-x/k`, 'x');
    assert.equal(dash.status, 400);
    await dash.text();
    const ttl = await post(obj('api', 'ttl'), 'x', { 'Time-To-Live': 'forever' });
    assert.equal(ttl.status, 400);
    assert.match(await ttl.text(), /Invalid Time-To-Live header format/);
    const weak = await post(obj('api', 'etag'), 'x', { ETag: 'W/"weak"' });
    assert.equal(weak.status, 400);
    assert.match(await weak.text(), /Invalid ETag header/);
    const unquoted = await post(obj('api', 'etag'), 'x', { ETag: 'bare' });
    assert.equal(unquoted.status, 400);
    await unquoted.text();
    assert.equal((await fetch(obj('api', 'etag'))).status, 404);
  });

  test('DELETE, invalidate, stats and namespaces', async () => {
    await post(obj('gone', 'k'), 'x');
    assert.equal((await fetch(obj('gone', 'k'), { method: 'DELETE' })).status, 200);
    const missing = await fetch(obj('gone', 'k'), { method: 'DELETE' });
    assert.equal(missing.status, 404);
    assert.equal((await missing.text()).trim(), 'Cache object not found');
    assert.equal((await fetch(`${obj('gone', 'k')}/invalidate`, { method: 'POST' })).status, 200);
    const stats = (await (await fetch(`${srv.url}/api/v1/stats`)).json()) as { objects: number; size: number; capacity: number };
    assert.ok(stats.objects >= 1 && stats.capacity > 0);
    const names = (await (await fetch(`${srv.url}/api/v1/namespaces`)).json()) as string[];
    assert.ok(names.includes('api'));
    assert.ok(!names.includes('gone'));
  });

  test('an upload cut off mid-body stores nothing and the server keeps working', async () => {
    const url = new URL(obj('api', 'cut'));
    await new Promise<void>((resolve) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-length': '100000' } });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(50_000, 1), () => {
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 50);
      });
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await fetch(obj('api', 'cut'))).status, 404);
    assert.equal((await post(obj('api', 'cut'), 'complete')).status, 200);
    assert.equal(await (await fetch(obj('api', 'cut'))).text(), 'complete');
  });
});

describe('server surface', () => {
  test('health, readiness, 404 and 405', async () => {
    assert.equal(await (await fetch(`${srv.url}/_liveness`)).text(), 'OK\n');
    assert.equal((await fetch(`${srv.url}/_readiness`)).status, 200);
    assert.equal((await fetch(`${srv.url}/nope`)).status, 404);
    const wrong = await fetch(`${srv.url}/api/v1/stats`, { method: 'DELETE' });
    assert.equal(wrong.status, 405);
    assert.match(wrong.headers.get('allow') ?? '', /GET/);
  });

  test('admin log level can be read and changed; bad levels are rejected', async () => {
    assert.equal((await (await fetch(`${srv.url}/admin/log/level`)).text()).trim(), 'silent');
    const bad = await fetch(`${srv.url}/admin/log/level?level=loud`, { method: 'PUT' });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /invalid level: "loud"/);
    assert.equal((await fetch(`${srv.url}/admin/log/level`, { method: 'PUT', body: 'level=warn' })).status, 200);
    assert.equal((await (await fetch(`${srv.url}/admin/log/level`)).text()).trim(), 'warn');
  });
});
