import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { isAllowed } from '../../src/server/authz.js';
import { normaliseRequestPath } from '../../src/http/request-path.js';
import { allProviderSpecs, startServer, type RunningServer } from '../../src/app/wiring.js';
import { fileCleanups } from '../fixtures/cleanups.js';

/**
 * How a remote caller is exercised from a test that can only reach loopback:
 *  1. the full server (startServer → createHttpServer → real policy and router) is started with
 *     `trustedRemote: () => false`, so a 127.0.0.1 caller is judged exactly as a remote one — the
 *     same code path, only the "is this address trusted" answer differs;
 *  2. when the machine has a non-loopback interface, the server also listens on it with the
 *     default trust, and the test connects to that address: the peer address the server sees is
 *     then genuinely not loopback.
 */

const { defer } = fileCleanups();

async function boot(opts: { host: string; trustedRemote?: (a: string | undefined) => boolean }): Promise<RunningServer> {
  const state = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-authz-'));
  const cfg = loadConfig({
    text: `state = "${state}"\ncache memory {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy gomod {}\n`,
    env: {},
    cwd: state,
    specs: allProviderSpecs(),
    source: 'authz.hcl',
  });
  const server = await startServer(cfg, { logger: pino({ level: 'silent' }), listen: { host: opts.host, port: 0 }, ...(opts.trustedRemote ? { trustedRemote: opts.trustedRemote } : {}) });
  defer(async () => {
    await server.close();
    await fs.rm(state, { recursive: true, force: true });
  });
  return server;
}

/** A request with the path sent byte-for-byte (fetch would normalise some of these). */
function raw(host: string, port: number, method: string, rawPath: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path: rawPath, agent: false, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('path decoding and the loopback-only policy', () => {
  let untrusted: RunningServer;
  let trusted: RunningServer;
  before(async () => {
    untrusted = await boot({ host: '127.0.0.1', trustedRemote: () => false });
    trusted = await boot({ host: '127.0.0.1' });
  });

  test('the profiling endpoints are admin routes: refused to untrusted callers', async () => {
    for (const p of ['/admin/pprof/heap', '/admin/pprof/profile?seconds=1']) {
      assert.equal((await raw('127.0.0.1', untrusted.port, 'GET', p)).status, 403, p);
    }
  });

  test('percent-encoded /api and /admin are forbidden to a remote caller', async () => {
    const r = (method: string, p: string, body?: string) => raw('127.0.0.1', untrusted.port, method, p, body);
    for (const p of ['/%61pi/v1/object/ns/k', '/%61pi/v1/stats', '/%41PI/v1/stats', '/a%70i/v1/namespaces', '/%61dmin/log/level', '/%61%64%6d%69%6e/log/level', '/api/v1/stats', '//api/v1/stats', '/admin/log/level']) {
      const got = await r('GET', p);
      assert.equal(got.status, 403, p);
      assert.equal(got.body, 'forbidden\n', p);
    }
    assert.equal((await r('POST', '/%61pi/v1/object/ns/k', 'payload')).status, 403);
    assert.equal((await r('PUT', '/%61dmin/log/level?level=debug')).status, 403);
    // Nothing was written or changed through the encoded spellings.
    assert.equal((await raw('127.0.0.1', trusted.port, 'GET', '/api/v1/object/ns/k')).status, 404);
    // Open surfaces stay open.
    assert.equal((await r('GET', '/_liveness')).status, 200);
    // An escaped route prefix is refused outright rather than routed (handlers read the raw URL).
    assert.equal((await r('GET', '/%5fliveness')).status, 400);
  });

  test('the router sees the same decoded path the policy judged', async () => {
    const r = (method: string, p: string, body?: string) => raw('127.0.0.1', trusted.port, method, p, body);
    // A trusted caller using an encoded spelling of a route prefix is refused (400), never routed
    // somewhere the raw URL does not say; escapes after the prefix are decoded exactly once.
    assert.equal((await r('POST', '/%61pi/v1/object/ns/enc', 'via encoded path')).status, 400);
    assert.equal((await r('GET', '/api/v1/object/ns/enc')).status, 404);
    assert.equal((await r('POST', '/api/v1/object/ns/%65nc', 'via encoded key')).status, 200);
    assert.equal((await r('GET', '/api/v1/object/ns/enc')).body, 'via encoded key');
    // Decoded once, not twice: %2561 is a literal "%61", which is not "a".
    assert.equal((await raw('127.0.0.1', untrusted.port, 'GET', '/%2561pi/v1/stats')).status, 404);
    // A key containing characters the router treats specially survives the round trip.
    assert.equal((await r('POST', '/api/v1/object/ns/50%25%3Foff%23x', 'odd key')).status, 200);
    assert.equal((await r('GET', '/api/v1/object/ns/50%25%3Foff%23x')).body, 'odd key');
  });

  test('invalid encodings, encoded slashes and dot segments are 400', async () => {
    for (const p of ['/api%2Fv1/stats', '/api/v1/object/ns/a%2fb', '/%zz', '/gomod/%E0%A4%A', '/gomod/%C3%28', '/gomod/a/%2e%2e/b', '/gomod/../api/v1/stats', '/x/%00']) {
      const got = await raw('127.0.0.1', untrusted.port, 'GET', p);
      assert.equal(got.status, 400, p);
      assert.match(got.body, /^bad request: /, p);
    }
  });

  test('a genuinely non-loopback peer is refused too', async (t) => {
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === 'IPv4');
    if (!external) {
      t.skip('no non-loopback IPv4 interface on this machine');
      return;
    }
    const srv = await boot({ host: external.address });
    for (const p of ['/%61pi/v1/object/ns/k', '/%61dmin/log/level', '/api/v1/stats']) {
      assert.equal((await raw(external.address, srv.port, 'GET', p)).status, 403, p);
    }
    assert.equal((await raw(external.address, srv.port, 'GET', '/_readiness')).status, 200);
  });
});

describe('policy and normalisation units', () => {
  test('isAllowed judges the first segment after leading slashes, any case', () => {
    const remote = '10.0.0.1';
    for (const p of ['/api', '/api/', '/api/v1/stats', '//api/x', '/API/v1/stats', '/Admin/log/level']) assert.equal(isAllowed(p, remote), false, p);
    for (const p of ['/apiary', '/_liveness', '/git/github.com/a/b/info/refs', '/x/api/y']) assert.equal(isAllowed(p, remote), true, p);
    assert.equal(isAllowed('/api/v1/stats', '127.0.0.1'), true);
    assert.equal(isAllowed('/api/v1/stats', '127.0.0.1', () => false), false);
  });

  test('normaliseRequestPath decodes once and re-encodes only what the router would misread', () => {
    assert.deepEqual(normaliseRequestPath('/%61pi/v1'), { ok: true, path: '/api/v1', routable: '/api/v1' });
    assert.deepEqual(normaliseRequestPath('/k/50%25%3F%23'), { ok: true, path: '/k/50%?#', routable: '/k/50%25%3F%23' });
    assert.equal(normaliseRequestPath('/api/v1/object/ns/a%2Fb').ok, false);
    assert.equal(normaliseRequestPath('//GIT/github.com/a%2fb/info/refs').ok, false);
    assert.deepEqual(normaliseRequestPath('/registry.example/api/v4/projects/a%2Fb'), { ok: true, path: '/registry.example/api/v4/projects/a/b', routable: '/registry.example/api/v4/projects/a/b' });
    assert.equal(normaliseRequestPath('/%G1').ok, false);
    assert.equal(normaliseRequestPath('/a/%2E/b').ok, false);
  });
});
