// Who may call POST /git/{host}/{repo}/refresh: trusted callers under the built-in policy (in
// TypeScript and in its Rego form), whoever a configured OPA policy allows otherwise. Requests
// come from 127.0.0.2, which policies written for cachew (trusting "127.0.0.1:" only) treat as remote.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

const haveOpa = !spawnSync('opa', ['version']).error;
const skipReason = haveOpa ? false : 'the opa binary is not on PATH (.ci/run installs it)';
if (!haveOpa && process.env['CI']) throw new Error(`CI: ${skipReason}`);

const BASE = 'cache memory {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy git {}\n';
const servers: TestServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});

async function serve(hcl: string, opts: { trustedRemote?: (a: string | undefined) => boolean } = {}): Promise<TestServer> {
  const s = await startTestServer({ hcl: BASE + hcl, ...opts });
  servers.push(s);
  return s;
}

function post(server: TestServer, urlPath: string, from: string): Promise<{ status: number; text: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: urlPath, method: 'POST', localAddress: from }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

// Nothing is mirrored: an allowed refresh answers 200 "not mirrored" and contacts no upstream.
const REFRESH = '/git/example.invalid/org/repo/refresh';

describe('refresh route policy', () => {
  test('built-in policy: loopback may refresh, an untrusted caller gets 403, the webhook stays open', async () => {
    const local = await serve('');
    assert.equal((await post(local, REFRESH, '127.0.0.1')).status, 200);
    const remote = await serve('', { trustedRemote: () => false });
    assert.equal((await post(remote, REFRESH, '127.0.0.1')).status, 403);
    // Another spelling of the same path is judged on its decoded form.
    assert.equal((await post(remote, '/git/example.invalid/org/repo/refres%68', '127.0.0.1')).status, 403);
    assert.equal((await post(remote, '/git/webhook/github', '127.0.0.1')).status, 404, 'the webhook route is not gated (its signature is its guard)');
  });

  test('the built-in policy in Rego (a test module without a policy) gates the refresh the same way', { skip: skipReason }, async () => {
    const s = await serve(`opa {
  test = <<EOF
  package cachew.authz_test
  import data.cachew.authz
  test_remote_refresh_denied if not authz.allow with input as {"method": "POST", "remote_addr": "10.0.0.1:1", "path": ["git", "h", "o", "r", "refresh"]}
  test_local_refresh_allowed if authz.allow with input as {"method": "POST", "remote_addr": "127.0.0.1:1", "path": ["git", "h", "o", "r", "refresh"]}
  test_remote_read_allowed if authz.allow with input as {"method": "GET", "remote_addr": "10.0.0.1:1", "path": ["git", "h", "o", "r", "info", "refs"]}
  EOF
}
`);
    // The module's tests ran at start-up (a failing one stops it); every 127.* address is loopback
    // to this policy, so over loopback only the allowed side can be tried for real.
    assert.equal((await post(s, REFRESH, '127.0.0.2')).status, 200);
  });

  test('a configured OPA policy decides alone: one that allows everyone under /git lets a remote caller refresh', { skip: skipReason }, async () => {
    const s = await serve(`opa {
  policy = <<EOF
  package cachew.authz
  default allow := false
  allow if startswith(input.remote_addr, "127.0.0.1:")
  allow if not input.path[0] in {"api", "admin"}
  EOF
}
`);
    assert.equal((await post(s, REFRESH, '127.0.0.2')).status, 200);
  });
});
