import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { startTestServer, type TestServer } from '../../fixtures/server.js';
import { generateAppKey, keyDir, startFakeGitHub, writeKeyFile, type FakeGitHub } from '../../fixtures/fake-github.js';

let github: FakeGitHub;
let hoard: TestServer;
let keys: string;
const logs: Array<Record<string, unknown>> = [];
const asset = randomBytes(64 * 1024);
const other = randomBytes(1024);

before(async () => {
  keys = await keyDir();
  const key = generateAppKey();
  const keyFile = await writeKeyFile(keys, 'app.pem', key.pkcs8Pem);
  github = await startFakeGitHub([{ id: '9001', publicKey: key.publicKey, orgs: { acme: 5 } }]);
  github.addReleaseAsset('acme', 'tool', 'v1.2.3', 'tool-linux-amd64.tar.gz', asset);
  github.addReleaseAsset('other', 'tool', 'v1', 'x.bin', other);
  hoard = await startTestServer({
    logs,
    hcl: `cache memory {}
metadata memory {}
metrics { port = 0 }
github-app {
  app-id = "9001"
  private-key-path = "${keyFile}"
  api-url = "${github.url}"
  git-host = "github.com"
}
strategy github-releases {
  private-orgs = ["acme", "other"]
  token = "static-token-for-orgs-without-app"
  api-url = "${github.url}"
}
`,
  });
});
after(async () => {
  await hoard?.close();
  await github?.close();
  await fs.rm(keys, { recursive: true, force: true });
});

describe('github-releases with a GitHub App', () => {
  test('a private asset is fetched with the installation token of its org, which the client never sees', async () => {
    const res = await fetch(`${hoard.url}/github.com/acme/tool/releases/download/v1.2.3/tool-linux-amd64.tar.gz`);
    const body = Buffer.from(await res.arrayBuffer());
    assert.equal(res.status, 200, body.toString().slice(0, 200));
    assert.ok(body.equals(asset));
    const token = github.minted.find((t) => t.installation === 5)?.token;
    assert.ok(token, 'an installation token was minted for acme');
    assert.deepEqual(
      github.assetRequests.map((r) => `${r.path} ${r.authorization}`),
      [`/repos/acme/tool/releases/tags/v1.2.3 Bearer ${token}`, `/repos/acme/tool/releases/assets/1 Bearer ${token}`],
    );
    assert.deepEqual(github.rejectedJwts, []);
    assert.ok(!JSON.stringify([...res.headers]).includes(token));
    assert.ok(!JSON.stringify(logs).includes(token), 'the token is never logged');

    // Cached: a second download goes nowhere upstream.
    const again = await fetch(`${hoard.url}/github.com/acme/tool/releases/download/v1.2.3/tool-linux-amd64.tar.gz`);
    assert.ok(Buffer.from(await again.arrayBuffer()).equals(asset));
    assert.equal(github.assetRequests.length, 2);
  });

  test('an org the app is not installed on falls back to the static token', async () => {
    const res = await fetch(`${hoard.url}/github.com/other/tool/releases/download/v1/x.bin`);
    await res.arrayBuffer();
    // The fake accepts only tokens it minted, so the static token gets a 404 from the API.
    assert.equal(res.status, 404);
    assert.ok(github.requests.some((r) => r.path === '/orgs/other/installation'));
    assert.ok(!github.minted.some((t) => t.installation !== 5));
    assert.deepEqual(github.assetRequests.filter((r) => r.path.startsWith('/repos/other/')).map((r) => r.authorization), ['Bearer static-token-for-orgs-without-app']);
  });
});
