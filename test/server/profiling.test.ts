import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTestServer, type TestServer } from '../fixtures/server.js';

let srv: TestServer;
before(async () => {
  srv = await startTestServer();
});
after(async () => {
  await srv.close();
});

/** A GET on loopback (trusted by the default policy; test/server/authz-path covers untrusted callers). */
function get(path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${srv.url}${path}`, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

describe('profiling endpoints (/admin/pprof)', () => {
  test('a timed CPU profile comes back as a .cpuprofile DevTools can open', async () => {
    const res = await get('/admin/pprof/profile?seconds=0.3');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-disposition']), /\.cpuprofile"$/);
    const profile = JSON.parse(res.body) as { nodes: unknown[]; startTime: number; endTime: number };
    assert.ok(profile.nodes.length > 0);
    assert.ok(profile.endTime - profile.startTime >= 250_000, 'about 0.3 s in microseconds');
  });

  test('bad durations are refused and profiles do not overlap', async () => {
    assert.equal((await get('/admin/pprof/profile?seconds=0')).status, 400);
    assert.equal((await get('/admin/pprof/profile?seconds=1000')).status, 400);
    const first = get('/admin/pprof/profile?seconds=0.5');
    await new Promise((r) => setTimeout(r, 100));
    const second = await get('/admin/pprof/profile?seconds=0.1');
    assert.equal(second.status, 409);
    assert.equal((await first).status, 200);
  });

  test('a heap snapshot streams as a .heapsnapshot', async () => {
    const res = await get('/admin/pprof/heap');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-disposition']), /\.heapsnapshot"$/);
    const head = JSON.parse(res.body) as { snapshot: { meta: unknown } };
    assert.ok(head.snapshot.meta);
  });
});
