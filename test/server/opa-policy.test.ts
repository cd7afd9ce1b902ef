// The `opa` block enforced with the real OPA toolchain: Rego compiled by `opa build -t wasm`,
// tests run by `opa test`, decisions evaluated by @open-policy-agent/opa-wasm. Requests come from
// 127.0.0.2 to look remote to cachew's policy (which trusts only "127.0.0.1:").
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const haveOpa = !spawnSync('opa', ['version']).error;
const skipReason = haveOpa ? false : 'the opa binary is not on PATH (.ci/run installs it: go install github.com/open-policy-agent/opa@v1.22.3)';
// CI must never silently skip these: there, a missing opa is a failure.
if (!haveOpa && process.env['CI']) throw new Error(`CI: ${skipReason}`);

const BASE = 'cache memory {}\nmetadata memory {}\nmetrics { port = 0 }\n';
const servers: TestServer[] = [];
const dirs: string[] = [];
after(async () => {
  for (const s of servers) await s.close();
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

async function serve(hcl: string, env: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  const s = await startTestServer({ hcl: BASE + hcl, env });
  servers.push(s);
  return s;
}

/** One request from `from` (a loopback address); returns the status. */
function request(server: TestServer, urlPath: string, opts: { from?: string; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<number> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: urlPath, method: opts.method ?? 'GET', localAddress: opts.from ?? '127.0.0.1', headers: opts.headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

// cachew's own policy and test module: the opa block of its cachew.hcl, read from the fixture.
const CACHEW_OPA = /^opa \{\n[\s\S]*?^\}\n/m.exec(readFileSync(path.resolve(import.meta.dirname, '../fixtures/cachew-configs/cachew.hcl'), 'utf8'))?.[0] ?? '';

describe('opa policies', { skip: skipReason }, () => {
  test("cachew's default policy and its test module: tests pass at start-up, /api is local-only", async () => {
    assert.match(CACHEW_OPA, /policy = <<EOF[\s\S]*test = <<EOF/, 'the fixture holds cachew\'s policy and test module');
    const s = await serve(CACHEW_OPA);
    assert.equal(await request(s, '/api/v1/namespaces'), 200);
    assert.equal(await request(s, '/api/v1/namespaces', { from: '127.0.0.2' }), 403);
    assert.equal(await request(s, '/admin/log/level', { from: '127.0.0.2' }), 403);
    assert.equal(await request(s, '/_liveness', { from: '127.0.0.2' }), 200);
  });

  test('a deny-all policy denies every request, health checks included', async () => {
    const s = await serve('opa { policy = "package cachew.authz\\ndefault allow := false\\n" }\n');
    for (const p of ['/_liveness', '/api/v1/namespaces', '/gomod/example.com/@v/list', '/']) assert.equal(await request(s, p), 403, p);
  });

  test('a policy without an allow rule denies everything', async () => {
    const s = await serve('opa { policy = "package cachew.authz\\nother := true\\n" }\n');
    assert.equal(await request(s, '/_liveness'), 403);
  });

  test('a header-based rule with data documents: inline data and data-file', async () => {
    const policy = `package cachew.authz
default allow := false
allow if input.headers["x-ci-token"] in data.tokens
allow if { input.method == "GET"; input.path == ["_liveness"] }`;
    const inline = await serve(`opa {\n  policy = <<EOF\n${policy}\nEOF\n  data = "{\\"tokens\\": [\\"t-1\\"]}"\n}\n`);
    assert.equal(await request(inline, '/_liveness'), 200);
    assert.equal(await request(inline, '/api/v1/namespaces'), 403);
    assert.equal(await request(inline, '/api/v1/namespaces', { headers: { 'X-CI-Token': 't-1' } }), 200);
    assert.equal(await request(inline, '/api/v1/namespaces', { headers: { 'X-CI-Token': 't-2' } }), 403);

    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-opa-test-'));
    dirs.push(dir);
    await fs.writeFile(path.join(dir, 'policy.rego'), policy);
    await fs.writeFile(path.join(dir, 'data.json'), JSON.stringify({ tokens: ['file-token'] }));
    const fromFiles = await serve(`opa {\n  policy-file = "${dir}/policy.rego"\n  data-file = "${dir}/data.json"\n}\n`);
    assert.equal(await request(fromFiles, '/api/v1/namespaces', { headers: { 'x-ci-token': 'file-token' } }), 200);
    assert.equal(await request(fromFiles, '/api/v1/namespaces', { headers: { 'x-ci-token': 't-1' } }), 403);
  });

  test('the input document: method, split path, lower-cased headers without host, remote_addr ip:port', async () => {
    const policy = `package cachew.authz
default allow := false
allow if {
  input.method == "PUT"
  input.path == ["admin", "log", "level"]
  input.headers["x-who"] == "ci"
  not input.headers.host
  regex.match("^127\\\\.0\\\\.0\\\\.2:[0-9]+$", input.remote_addr)
}`;
    const s = await serve(`opa {\n  policy = <<EOF\n${policy}\nEOF\n}\n`);
    assert.equal(await request(s, '/admin/log/level', { from: '127.0.0.2', method: 'PUT', headers: { 'X-Who': 'ci' }, body: 'info' }), 200);
    assert.equal(await request(s, '/admin/log/level', { from: '127.0.0.1', method: 'PUT', headers: { 'X-Who': 'ci' }, body: 'info' }), 403);
  });

  test('${VAR} in the policy is expanded from the environment before compilation', async () => {
    const s = await serve('opa { policy = "package cachew.authz\\nallow if input.headers[\\"x-token\\"] == \\"${HOARD_TEST_OPA_TOKEN}\\"\\n" }\n', { HOARD_TEST_OPA_TOKEN: 'expanded-secret' });
    assert.equal(await request(s, '/_liveness', { headers: { 'x-token': 'expanded-secret' } }), 200);
    assert.equal(await request(s, '/_liveness', { headers: { 'x-token': '${HOARD_TEST_OPA_TOKEN}' } }), 403);
  });

  test('a failing test module fails the start, naming the failing test', async () => {
    const hcl = `opa {
  policy = "package cachew.authz\\ndefault allow := false\\n"
  test = <<EOF
  package cachew.authz_test
  import data.cachew.authz
  test_everyone_allowed if authz.allow with input as {"remote_addr": "10.0.0.1:1", "path": []}
  EOF
}
`;
    await assert.rejects(startTestServer({ hcl: BASE + hcl }), /test_everyone_allowed/);
  });

  test('a test module without a policy runs against the built-in default policy, which is then enforced', async () => {
    const hcl = `opa {
  test = <<EOF
  package cachew.authz_test
  import data.cachew.authz
  test_v6_loopback_api if authz.allow with input as {"remote_addr": "[::1]:1", "path": ["api"]}
  test_remote_api_denied if not authz.allow with input as {"remote_addr": "10.0.0.1:1", "path": ["API"]}
  test_remote_git if authz.allow with input as {"remote_addr": "10.0.0.1:1", "path": ["git"]}
  EOF
}
`;
    const s = await serve(hcl);
    assert.equal(await request(s, '/api/v1/namespaces'), 200);
    assert.equal(await request(s, '/_liveness', { from: '127.0.0.2' }), 200);
  });

  test('a precompiled bundle or policy.wasm is enforced without the opa binary on PATH', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-opa-test-'));
    dirs.push(dir);
    await fs.writeFile(path.join(dir, 'p.rego'), 'package cachew.authz\ndefault allow := false\nallow if input.path[0] == "_liveness"\n');
    const built = spawnSync('opa', ['build', '-t', 'wasm', '-e', 'cachew/authz/allow', '-o', 'bundle.tar.gz', 'p.rego'], { cwd: dir, encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    assert.equal(spawnSync('tar', ['-xzf', 'bundle.tar.gz', '/policy.wasm'], { cwd: dir }).status, 0);
    await withoutOpaOnPath(async () => {
      for (const attr of [`bundle = "${dir}/bundle.tar.gz"`, `policy-wasm = "${dir}/policy.wasm"`]) {
        const s = await serve(`opa { ${attr} }\n`);
        assert.equal(await request(s, '/_liveness'), 200, attr);
        assert.equal(await request(s, '/api/v1/namespaces'), 403, attr);
      }
    });
  });

  test('an inline policy with no opa binary fails the start and says how to fix it', async () => {
    await withoutOpaOnPath(() =>
      assert.rejects(startTestServer({ hcl: `${BASE}opa { policy = "package cachew.authz\\nallow := true\\n" }\n` }), /opa binary, which is not on PATH.*policy-wasm/s),
    );
  });

  test('conflicting attributes and data that is not an object are refused', async () => {
    await assert.rejects(startTestServer({ hcl: `${BASE}opa {\n  policy = "package cachew.authz"\n  policy-file = "/x.rego"\n}\n` }), /only one of policy and policy-file/);
    await assert.rejects(startTestServer({ hcl: `${BASE}opa {\n  policy = "package cachew.authz"\n  data = "[1, 2]"\n}\n` }), /must be a JSON object/);
  });
});

/** Runs `fn` with every PATH directory holding an `opa` removed (hoard spawns opa by name). */
async function withoutOpaOnPath(fn: () => Promise<unknown>): Promise<void> {
  const original = process.env['PATH'];
  process.env['PATH'] = (original ?? '').split(':').filter((d) => spawnSync('test', ['-x', `${d}/opa`]).status !== 0).join(':');
  try {
    await fn();
  } finally {
    process.env['PATH'] = original;
  }
}
