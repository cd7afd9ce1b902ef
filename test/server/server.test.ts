import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import pino from 'pino';
import { startHoardProcess, type HoardProcess } from '../fixtures/hoard-process.js';
import { isAllowed, isLoopbackAddress } from '../../src/server/authz.js';
import { fileCleanups } from '../fixtures/cleanups.js';
import { diskCacheRunningOutOfSpace, serveObjectApi } from '../fixtures/object-api.js';

const { defer, tempDir } = fileCleanups('hoard-srv-');

describe('default authorization policy', () => {
  test('loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopbackAddress(a), a);
    for (const a of ['10.0.0.1', '192.168.1.2', '::ffff:10.0.0.1', 'fe80::1', '', undefined]) assert.equal(isLoopbackAddress(a), false, String(a));
  });
  test('/api and /admin are loopback-only, everything else is open', () => {
    assert.equal(isAllowed('/api/v1/object/x/y', '10.1.2.3'), false);
    assert.equal(isAllowed('/admin/log/level', '192.168.0.5'), false);
    assert.equal(isAllowed('/api', '10.1.2.3'), false);
    assert.equal(isAllowed('/api/v1/stats', '127.0.0.1'), true);
    assert.equal(isAllowed('/git/github.com/a/b/info/refs', '10.1.2.3'), true);
    assert.equal(isAllowed('/_readiness', '10.1.2.3'), true);
    assert.equal(isAllowed('/apiary', '10.1.2.3'), true);
  });
});

describe('storage failures', () => {
  test('ENOSPC on upload → 507 with a clear message, nothing stored, server keeps serving', async () => {
    const root = await tempDir();
    let full = true;
    const cache = await diskCacheRunningOutOfSpace(root, () => full);
    const base = await serveObjectApi(cache, defer);
    const res = await fetch(`${base}/api/v1/object/ns/k`, { method: 'POST', body: 'data' });
    assert.equal(res.status, 507);
    assert.match(await res.text(), /Insufficient storage: cache storage is full \(ENOSPC\)/);
    assert.equal((await fetch(`${base}/api/v1/object/ns/k`)).status, 404);
    full = false;
    assert.equal((await fetch(`${base}/api/v1/object/ns/k`, { method: 'POST', body: 'data' })).status, 200);
    assert.equal(await (await fetch(`${base}/api/v1/object/ns/k`)).text(), 'data');
  });
});

describe('hoard serve as a real process', () => {
  test('config errors exit 1 naming file:line; --schema prints the schema', async () => {
    const dir = await tempDir();
    const bad = path.join(dir, 'bad.hcl');
    await fs.writeFile(bad, 'cache disk {}\nmetadata memory {}\nstrategy nonsense {}\n');
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: process.cwd(), env: { ...process.env, HOARD_CONFIG: '' } });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c));
        child.stderr.on('data', (c: Buffer) => (stderr += c));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    const failed = await run(['serve', '--config', bad]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, new RegExp(`${bad.replace(/[.]/g, '\\.')}:3:1: unknown strategy "nonsense"`));
    const schema = await run(['serve', '--schema']);
    assert.equal(schema.code, 0);
    assert.match(schema.stdout, /cache disk \{/);
    assert.match(schema.stdout, /shutdown-timeout = "2m30s"/);
  });

  test('SIGTERM: readiness goes 503, the in-flight request finishes, the process exits 0', async () => {
    const dir = await tempDir();
    const config = path.join(dir, 'hoard.hcl');
    await fs.writeFile(
      config,
      `state = "${dir}/state"\nbind = "127.0.0.1:0"\nshutdown-readiness-delay = "1s"\ncache disk {}\nmetadata memory {}\nmetrics { port = 0 }\n`,
    );
    const srv = await serveProcess(['--config', config]);
    const port = srv.port;
    assert.ok(port > 0, `port from: ${srv.log()}`);
    const base = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${base}/_readiness`)).status, 200);

    // A slow upload that is still in flight when SIGTERM arrives.
    const upload = new Promise<number>((resolve, reject) => {
      const req = http.request(`${base}/api/v1/object/slow/k`, { method: 'POST', headers: { 'content-length': '6' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write('abc');
      setTimeout(() => req.end('def'), 1500);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    srv.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ready = await fetch(`${base}/_readiness`);
    assert.equal(ready.status, 503);
    assert.equal((await ready.text()).trim(), 'shutting down');
    assert.equal(await upload, 200);
    assert.equal(await srv.exited, 0);
  });
});

/**
 * `hoard serve` from the sources as a child process, never with a config found by HOARD_CONFIG;
 * resolves once it printed its listening URL, and is killed with its group after the tests.
 */
async function serveProcess(args: string[], env: NodeJS.ProcessEnv = {}, cwd = process.cwd()): Promise<HoardProcess> {
  const srv = await startHoardProcess({ args, env: { HOARD_CONFIG: '', ...env }, cwd, run: 'sources', startTimeoutMs: 30_000 });
  defer(() => srv.stop());
  return srv;
}

describe('hoard serve start-up and logs', () => {
  test('a missing system tool is named in one clear line and the exit status is 1', async () => {
    const dir = await tempDir();
    const bin = path.join(dir, 'bin');
    await fs.mkdir(bin);
    // A PATH with git and tar but no zstd.
    for (const tool of ['git', 'tar']) {
      const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      assert.ok(found, `${tool} must be installed for this test`);
      await fs.symlink(found, path.join(bin, tool));
    }
    const config = path.join(dir, 'hoard.hcl');
    await fs.writeFile(config, `state = "${dir}/state"\nbind = "127.0.0.1:0"\ncache memory {}\nmetadata memory {}\nmetrics { port = 0 }\n`);
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--config', config], { encoding: 'utf8', env: { ...process.env, PATH: bin }, timeout: 30_000 });
    assert.equal(run.status, 1, run.stderr);
    assert.equal(run.stderr, 'hoard: zstd was not found on PATH (hoard runs it for snapshots and archives); install it, e.g. apt-get install -y zstd\n');
    assert.doesNotMatch(run.stderr, /hoard: hoard/);
  });

  test('the embedded default honours HOARD_BIND and HOARD_STATE', async () => {
    const dir = await tempDir();
    const state = path.join(dir, 'state-from-env');
    const srv = await serveProcess([], { HOARD_BIND: '127.0.0.1:0', HOARD_STATE: state, HOARD_METRICS_PORT: '0' }, dir);
    assert.match(srv.log(), /\(config: embedded default\)/);
    const base = `http://127.0.0.1:${srv.port}`;
    assert.equal((await fetch(`${base}/_liveness`)).status, 200);
    assert.equal((await fetch(`${base}/api/v1/object/envns/k`, { method: 'POST', body: 'x' })).status, 200);
    // The disk cache lives under the injected state directory, not ./state.
    assert.ok((await fs.stat(path.join(state, 'cache'))).isDirectory());
    await assert.rejects(fs.stat(path.join(dir, 'state')));
    srv.child.kill('SIGTERM');
    assert.equal(await srv.exited, 0);
  });

  test('each request is logged with method, path, status and duration; credentials never are', async () => {
    const dir = await tempDir();
    const config = path.join(dir, 'hoard.hcl');
    await fs.writeFile(config, `state = "${dir}/state"\nbind = "127.0.0.1:0"\nshutdown-readiness-delay = "0s"\nlog {\n  level = "info"\n  json = true\n}\ncache memory {}\nmetadata memory {}\nmetrics { port = 0 }\n`);
    const srv = await serveProcess(['--config', config]);
    const base = `http://127.0.0.1:${srv.port}`;
    const secrets = { authorization: 'Bearer tok-SECRET-1234', cookie: 'session=COOKIE-SECRET-5678', 'x-api-key': 'KEY-SECRET-9012' };
    assert.equal((await fetch(`${base}/api/v1/object/logs/k`, { method: 'POST', body: 'hello', headers: secrets })).status, 200);
    const got = await fetch(`${base}/api/v1/object/logs/k?probe=1`, { headers: secrets });
    assert.equal(await got.text(), 'hello');
    assert.equal((await fetch(`${base}/no/such/route`, { headers: secrets })).status, 404);
    srv.child.kill('SIGTERM');
    assert.equal(await srv.exited, 0);

    const records = srv.records();
    const requests = records.filter((r) => r['msg'] === 'request');
    const find = (method: string, uri: string) => requests.find((r) => r['method'] === method && r['uri'] === uri);
    const post = find('POST', '/api/v1/object/logs/k');
    assert.ok(post, `no request line for the POST in:\n${srv.log()}`);
    assert.equal(post['status'], 200);
    assert.equal(typeof post['ms'], 'number');
    assert.equal(post['level'], 'info');
    assert.equal(post['client'], '127.0.0.1');
    const get = find('GET', '/api/v1/object/logs/k');
    assert.ok(get, 'the GET is logged by path, without its query string');
    assert.equal(get['status'], 200);
    assert.equal(find('GET', '/no/such/route')?.['status'], 404);
    for (const value of Object.values(secrets)) assert.ok(!srv.log().includes(value.split(' ').pop()!), `logs contain ${value}`);
    assert.doesNotMatch(srv.log(), /authorization|cookie/i);
  });

  test('log { remap, headers } rename JSON fields and add header attributes; text mode writes text', async () => {
    const dir = await tempDir();
    const config = path.join(dir, 'hoard.hcl');
    await fs.writeFile(
      config,
      `state = "${dir}/state"\nbind = "127.0.0.1:0"\nshutdown-readiness-delay = "0s"\nlog {\n  json = true\n  remap = { msg = "message", time = "timestamp", uri = "path" }\n  headers = { "X-Request-Id" = "request_id" }\n}\ncache memory {}\nmetadata memory {}\nmetrics { port = 0 }\n`,
    );
    const srv = await serveProcess(['--config', config]);
    assert.equal((await fetch(`http://127.0.0.1:${srv.port}/no/such/route`, { headers: { 'x-request-id': 'req-42' } })).status, 404);
    srv.child.kill('SIGTERM');
    assert.equal(await srv.exited, 0);
    const records = srv.records();
    const line = records.find((r) => r['message'] === 'request' && r['path'] === '/no/such/route');
    assert.ok(line, srv.log());
    assert.equal(line['request_id'], 'req-42');
    assert.equal(typeof line['timestamp'], 'string');
    assert.equal(line['msg'], undefined);
    assert.equal(line['uri'], undefined);

    const textConfig = path.join(dir, 'text.hcl');
    await fs.writeFile(textConfig, `state = "${dir}/state2"\nbind = "127.0.0.1:0"\nshutdown-readiness-delay = "0s"\ncache memory {}\nmetadata memory {}\nmetrics { port = 0 }\n`);
    const text = await serveProcess(['--config', textConfig]);
    assert.equal((await fetch(`http://127.0.0.1:${text.port}/no/such/route`)).status, 404);
    text.child.kill('SIGTERM');
    assert.equal(await text.exited, 0);
    assert.match(text.log(), /INFO: request/);
    assert.doesNotMatch(text.log(), /^\{/m, 'json = false (the default) writes no JSON lines');
  });

  test('log { headers } naming a credential header is refused at start-up', async () => {
    const dir = await tempDir();
    const config = path.join(dir, 'hoard.hcl');
    await fs.writeFile(config, `state = "${dir}/state"\nbind = "127.0.0.1:0"\nlog {\n  headers = { "Authorization" = "auth" }\n}\ncache memory {}\nmetadata memory {}\nmetrics { port = 0 }\n`);
    const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--config', config], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /log \{ headers \}: Authorization carries credentials/);
  });
});
