import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { waitFor as poll } from '../fixtures/poll.js';
import { createGitHubAppTokens, type GitHubAppBlock } from '../../src/github/app-tokens.js';
import { startTestServer } from '../fixtures/server.js';
import { generateAppKey, keyDir, startFakeGitHub, writeKeyFile, type FakeApp, type FakeGitHub, type TestAppKey } from '../fixtures/fake-github.js';

let dir: string;
let keyA: TestAppKey;
let keyB: TestAppKey;
let pkcs1A: string;
let pkcs8B: string;

const quiet = pino({ level: 'silent' });

/** A logger whose records land in `sink`. */
function capture(sink: Array<Record<string, unknown>>) {
  return pino({ level: 'debug' }, { write: (line: string) => void sink.push(JSON.parse(line) as Record<string, unknown>) });
}

/** Polls every 20 ms, for 10 s unless told. */
const waitFor = (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000) => poll(what, fn, timeoutMs, 20);

before(async () => {
  dir = await keyDir();
  keyA = generateAppKey();
  keyB = generateAppKey();
  pkcs1A = await writeKeyFile(dir, 'a.pkcs1.pem', keyA.pkcs1Pem);
  pkcs8B = await writeKeyFile(dir, 'b.pkcs8.pem', keyB.pkcs8Pem);
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** Starts a fake GitHub for `apps` and token sources over it; closes it after `fn`. */
async function withGitHub(apps: FakeApp[], fn: (gh: FakeGitHub) => Promise<void>): Promise<void> {
  const gh = await startFakeGitHub(apps);
  try {
    await fn(gh);
    assert.deepEqual(gh.rejectedJwts, [], 'every app JWT verified with the app public key');
  } finally {
    await gh.close();
  }
}

const block = (gh: FakeGitHub, appId: string, keyPath: string, extra: Partial<GitHubAppBlock> = {}): GitHubAppBlock => ({
  'app-id': appId,
  'private-key-path': keyPath,
  'api-url': gh.url,
  'git-host': 'github.com',
  ...extra,
});

describe('GitHub App tokens', () => {
  test('PKCS#1 and PKCS#8 keys sign JWTs the API verifies (RS256, iss, iat, exp); tokens per org', async () => {
    await withGitHub(
      [
        { id: '101', publicKey: keyA.publicKey, orgs: { acme: 11 } },
        { id: '202', publicKey: keyB.publicKey, orgs: { globex: 22 } },
      ],
      async (gh) => {
        const tokens = createGitHubAppTokens([block(gh, '101', pkcs1A), block(gh, '202', pkcs8B)], { logger: quiet });
        assert.ok(tokens);
        const acme = await tokens.tokenFor('github.com', 'acme');
        const globex = await tokens.tokenFor('github.com', 'globex');
        assert.equal(acme, gh.minted.find((t) => t.installation === 11)?.token);
        assert.equal(globex, gh.minted.find((t) => t.installation === 22)?.token);
        // Both apps signed: app 101 (PKCS#1 key) and app 202 (PKCS#8 key).
        assert.ok(gh.requests.some((r) => r.appId === '101'));
        assert.ok(gh.requests.some((r) => r.appId === '202'));
        assert.equal(await tokens.tokenFor('example.com', 'acme'), undefined, 'no app serves another host');
        assert.equal(tokens.covers('github.com'), true);
        assert.equal(tokens.covers('example.com'), false);
      },
    );
  });

  test('discovery: apps in file order, /orgs then /users; the answer is cached with the token', async () => {
    await withGitHub(
      [
        { id: '101', publicKey: keyA.publicKey, orgs: {} },
        { id: '202', publicKey: keyB.publicKey, users: { someone: 33 } },
      ],
      async (gh) => {
        const tokens = createGitHubAppTokens([block(gh, '101', pkcs1A), block(gh, '202', pkcs8B)], { logger: quiet });
        assert.ok(tokens);
        const first = await tokens.tokenFor('github.com', 'someone');
        assert.deepEqual(
          gh.requests.map((r) => `${r.appId} ${r.method} ${r.path}`),
          ['101 GET /orgs/someone/installation', '101 GET /users/someone/installation', '202 GET /orgs/someone/installation', '202 GET /users/someone/installation', '202 POST /app/installations/33/access_tokens'],
        );
        const before = gh.requests.length;
        assert.equal(await tokens.tokenFor('github.com', 'SomeOne'), first, 'org names are case-insensitive');
        assert.equal(gh.requests.length, before, 'installation and token served from the cache');
      },
    );
  });

  test('a token with less than 30 minutes left is replaced; one with more is reused', async () => {
    await withGitHub([{ id: '101', publicKey: keyA.publicKey, orgs: { acme: 11 } }], async (gh) => {
      const tokens = createGitHubAppTokens([block(gh, '101', pkcs1A)], { logger: quiet });
      assert.ok(tokens);
      gh.setTokenLifetime(29 * 60_000);
      const short = await tokens.tokenFor('github.com', 'acme');
      const replaced = await tokens.tokenFor('github.com', 'acme');
      assert.notEqual(replaced, short, '29 min left: refreshed');
      assert.equal(gh.minted.length, 2);
      gh.setTokenLifetime(31 * 60_000);
      const long = await tokens.tokenFor('github.com', 'acme');
      assert.equal(gh.minted.length, 3);
      assert.equal(await tokens.tokenFor('github.com', 'acme'), long, '31 min left: reused');
      assert.equal(gh.minted.length, 3);
    });
  });

  test('single flight: 16 concurrent callers needing a token cause one lookup and one mint', async () => {
    await withGitHub([{ id: '101', publicKey: keyA.publicKey, orgs: { acme: 11 } }], async (gh) => {
      const tokens = createGitHubAppTokens([block(gh, '101', pkcs1A)], { logger: quiet });
      assert.ok(tokens);
      const release = gh.holdMints();
      const callers = Array.from({ length: 16 }, () => tokens.tokenFor('github.com', 'acme'));
      await waitFor('the mint request', () => gh.requests.some((r) => r.method === 'POST'));
      release();
      const got = await Promise.all(callers);
      assert.equal(new Set(got).size, 1);
      assert.equal(gh.requests.filter((r) => r.method === 'POST').length, 1);
      assert.equal(gh.requests.filter((r) => r.path === '/orgs/acme/installation').length, 1);

      // The refresh of an expiring token is single-flight too.
      gh.setTokenLifetime(10 * 60_000);
      const tokens2 = createGitHubAppTokens([block(gh, '101', pkcs1A)], { logger: quiet });
      assert.ok(tokens2);
      await tokens2.tokenFor('github.com', 'acme');
      const posts = gh.requests.filter((r) => r.method === 'POST').length;
      const release2 = gh.holdMints();
      const refreshers = Array.from({ length: 16 }, () => tokens2.tokenFor('github.com', 'acme'));
      await waitFor('the refresh request', () => gh.requests.filter((r) => r.method === 'POST').length > posts);
      release2();
      assert.equal(new Set(await Promise.all(refreshers)).size, 1);
      assert.equal(gh.requests.filter((r) => r.method === 'POST').length, posts + 1);
    });
  });

  test('fallback-org: an org without installation gets the fallback org token, looked up on first need', async () => {
    await withGitHub([{ id: '101', publicKey: keyA.publicKey, orgs: { acme: 11, shared: 44 } }], async (gh) => {
      const tokens = createGitHubAppTokens([block(gh, '101', pkcs1A, { 'fallback-org': 'shared' })], { logger: quiet });
      assert.ok(tokens);
      // Nobody asked for "shared" before: the fallback is discovered now.
      const token = await tokens.tokenFor('github.com', 'elsewhere');
      assert.equal(token, gh.minted.find((t) => t.installation === 44)?.token);
      const again = await tokens.tokenFor('github.com', 'other-unknown');
      assert.equal(again, token, 'every unknown org shares the fallback token');
      assert.equal(gh.minted.length, 1);
      assert.equal(await tokens.tokenFor('github.com', 'acme'), gh.minted.find((t) => t.installation === 11)?.token);
    });
  });

  test('an org no app is installed on is remembered for a while, then asked again; API failures are not', async () => {
    await withGitHub([{ id: '101', publicKey: keyA.publicKey, orgs: {} }], async (gh) => {
      const tokens = createGitHubAppTokens([block(gh, '101', pkcs1A)], { logger: quiet, unknownOrgTtlMs: 300 });
      assert.ok(tokens);
      const lookups = () => gh.requests.filter((r) => r.path === '/orgs/nobody/installation').length;
      assert.equal(await tokens.tokenFor('github.com', 'nobody'), undefined);
      assert.equal(await tokens.tokenFor('github.com', 'nobody'), undefined);
      assert.equal(lookups(), 1, 'the second call is answered by the negative cache');
      await waitFor('the negative entry to expire', async () => {
        await tokens.tokenFor('github.com', 'nobody');
        return lookups() === 2;
      });

      gh.setFailure(500);
      await assert.rejects(tokens.tokenFor('github.com', 'flaky'), /answered 500/);
      gh.setFailure(undefined);
      assert.equal(await tokens.tokenFor('github.com', 'flaky'), undefined);
      assert.equal(gh.requests.filter((r) => r.path === '/orgs/flaky/installation').length, 1, 'the failed lookup was not cached as unknown');
    });
  });

  test('start-up: bad key files are refused naming the file; deprecated and empty blocks warn', async () => {
    const missing = path.join(dir, 'missing.pem');
    const garbage = await writeKeyFile(dir, 'garbage.pem', '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
    const ec = await writeKeyFile(dir, 'ec.pem', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const base = { 'api-url': 'https://api.github.com' };
    assert.throws(() => createGitHubAppTokens([{ ...base, 'app-id': '1', 'private-key-path': missing }], { logger: quiet }), new RegExp(`private-key-path ${missing}: cannot read`));
    assert.throws(() => createGitHubAppTokens([{ ...base, 'app-id': '1', 'private-key-path': garbage }], { logger: quiet }), new RegExp(`private-key-path ${garbage}: not a PEM RSA private key`));
    assert.throws(() => createGitHubAppTokens([{ ...base, 'app-id': '1', 'private-key-path': ec }], { logger: quiet }), new RegExp(`private-key-path ${ec}: the key is ec`));
    assert.throws(() => createGitHubAppTokens([{ ...base, 'app-id': '1' }], { logger: quiet }), /private-key-path is required when app-id is set/);

    const logs: Array<Record<string, unknown>> = [];
    const tokens = createGitHubAppTokens([{ ...base }, { ...base, 'app-id': '7', 'private-key-path': pkcs1A, installations: { acme: '123' } }], { logger: capture(logs) });
    assert.ok(tokens);
    const warnings = logs.filter((l) => l['level'] === 40).map((l) => String(l['msg']));
    assert.ok(warnings.some((w) => /github-app block #1: neither app-id nor private-key-path is set; the block is ignored/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /github-app 7: installations is deprecated and ignored/.test(w)), warnings.join('\n'));

    // Through the config loader and server start: the start fails and names the key file.
    await assert.rejects(
      startTestServer({ hcl: `cache memory {}\nmetadata memory {}\nmetrics { port = 0 }\ngithub-app {\n  app-id = "1"\n  private-key-path = "${garbage}"\n}\n` }),
      new RegExp(`private-key-path ${garbage}`),
    );
  });
});
