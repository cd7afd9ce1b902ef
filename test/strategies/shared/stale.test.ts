import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startFlakyUpstream, type FlakyUpstream } from '../../fixtures/flaky-upstream.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

/**
 * Stale-if-error and revalidation through real HTTP: hoard in-process, loopback upstreams that
 * are stopped (connection refused), made to answer 503, or made to hang. Objects expire quickly
 * (disk max-ttl 1s); expiry is awaited by polling, never by a fixed sleep.
 */

let mutable: FlakyUpstream; // host strategy, default stale-if-error (7d)
let strict: FlakyUpstream; // host strategy, stale-if-error = "0"
let goproxy: FlakyUpstream; // gomod, stale-if-error = "0", mutable-ttl = "1s"
let hoard: TestServer;

const LIST_ETAG = '"list-1"';

before(async () => {
  const plain = (name: string) => (req: { url?: string }, res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name} of ${req.url}`);
  };
  mutable = await startFlakyUpstream(plain('mutable'));
  strict = await startFlakyUpstream(plain('strict'), '127.0.0.2');
  goproxy = await startFlakyUpstream((req, res) => {
    const url = req.url ?? '';
    if (url.endsWith('/@v/list')) {
      if (req.headers['if-none-match'] === LIST_ETAG) return void res.writeHead(304, { etag: LIST_ETAG }).end();
      return void res.writeHead(200, { 'content-type': 'text/plain', etag: LIST_ETAG }).end('v1.0.0\n');
    }
    if (url.endsWith('.zip')) return void res.writeHead(200, { 'content-type': 'application/zip' }).end(`zip of ${url}`);
    res.writeHead(404).end('not found');
  });
  hoard = await startTestServer({
    hcl: `cache disk { max-ttl = "1s" }
metadata memory {}
metrics { port = 0 }
strategy host "${mutable.url}" {
  upstream-timeout = "1s"
}
strategy host "${strict.url}" {
  stale-if-error = "0"
  upstream-timeout = "1s"
}
strategy gomod {
  proxy = "${goproxy.url}/goproxy"
  mutable-ttl = "1s"
  stale-if-error = "0"
  upstream-timeout = "1s"
}
`,
  });
});
after(async () => {
  await hoard?.close();
  for (const u of [mutable, strict, goproxy]) await u.close();
});

interface Answer {
  status: number;
  cache: string | null;
  warning: string | null;
  age: string | null;
  body: string;
}

async function get(path: string): Promise<Answer> {
  const res = await fetch(`${hoard.url}${path}`);
  return { status: res.status, cache: res.headers.get('x-hoard-cache'), warning: res.headers.get('warning'), age: res.headers.get('age'), body: await res.text() };
}

/** Repeats `path` until `done` accepts the answer (expiry takes ~1 s); fails after 15 s. */
async function getUntil(path: string, done: (a: Answer) => boolean, what: string): Promise<Answer> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const answer = await get(path);
    if (done(answer)) return answer;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last answer ${JSON.stringify(answer)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('stale-if-error', () => {
  test('an expired copy is served stale (Age, Warning 110, X-Hoard-Cache: stale) when the upstream is down, answers 503, or hangs', async () => {
    const path = `/${mutable.host}/files/a.txt`;
    const first = await get(path);
    assert.equal(first.status, 200);
    assert.equal(first.cache, 'miss');
    assert.equal(first.body, 'mutable of /files/a.txt');
    assert.equal((await get(path)).cache, 'hit');

    await mutable.stop();
    const down = await getUntil(path, (a) => a.cache !== 'hit', 'the copy to expire');
    assert.equal(down.status, 200, `connection refused: expected the stale copy, got ${JSON.stringify(down)}`);
    assert.equal(down.cache, 'stale');
    assert.equal(down.warning, '110 - "Response is Stale"');
    assert.match(down.age ?? '', /^\d+$/);
    assert.equal(down.body, 'mutable of /files/a.txt');

    await mutable.start();
    mutable.mode = 'error-503';
    const overloaded = await get(path);
    assert.deepEqual([overloaded.status, overloaded.cache, overloaded.body], [200, 'stale', 'mutable of /files/a.txt'], '5xx: stale copy');

    mutable.mode = 'hang';
    const hanging = await get(path);
    assert.deepEqual([hanging.status, hanging.cache, hanging.body], [200, 'stale', 'mutable of /files/a.txt'], 'timeout: stale copy');

    mutable.mode = 'up';
    const back = await get(path);
    assert.deepEqual([back.status, back.cache], [200, 'miss'], 'upstream back: fetched again');
    assert.equal((await get(path)).cache, 'hit');
  });

  test('past the stale-if-error window a mutable copy is not served: connection refused 502, timeout 504, 5xx relayed', async () => {
    const path = `/${strict.host}/files/b.txt`;
    assert.equal((await get(path)).cache, 'miss');
    await strict.stop();
    const down = await getUntil(path, (a) => a.cache !== 'hit', 'the copy to expire');
    assert.equal(down.status, 502);
    assert.notEqual(down.cache, 'stale');
    await strict.start();
    strict.mode = 'hang';
    assert.equal((await get(path)).status, 504);
    strict.mode = 'error-503';
    assert.equal((await get(path)).status, 503);
    strict.mode = 'up';
    assert.equal((await get(path)).status, 200);
  });
});

describe('mutable names: short TTL, revalidation, stale fallback', () => {
  test('@v/list is cached for mutable-ttl, then revalidated by conditional GET (X-Hoard-Cache: revalidated); immutable module files are served stale without limit', async () => {
    const list = '/gomod/example.com/m/@v/list';
    const zip = '/gomod/example.com/m/@v/v1.0.0.zip';
    const first = await get(list);
    assert.deepEqual([first.status, first.cache, first.body], [200, 'miss', 'v1.0.0\n']);
    assert.equal((await get(zip)).cache, 'miss');
    assert.equal((await get(list)).cache, 'hit');

    const conditionalBefore = goproxy.requests.filter((r) => r.url.endsWith('/@v/list') && r.headers['if-none-match'] === LIST_ETAG).length;
    const again = await getUntil(list, (a) => a.cache !== 'hit', 'the list to expire');
    assert.deepEqual([again.status, again.cache, again.body], [200, 'revalidated', 'v1.0.0\n']);
    const conditional = goproxy.requests.filter((r) => r.url.endsWith('/@v/list') && r.headers['if-none-match'] === LIST_ETAG).length;
    assert.equal(conditional, conditionalBefore + 1, 'one conditional GET carried the upstream ETag');
    // Stored again with a fresh TTL. (Polled: the answer reaches the client before the copy's
    // commit, an fsync, ends; a request meanwhile joins the same fill and says 'revalidated'.)
    await getUntil(list, (a) => a.cache === 'hit', 'the revalidated copy to be stored again');

    await goproxy.stop();
    // stale-if-error = "0": the mutable list is not served stale...
    const listDown = await getUntil(list, (a) => a.cache !== 'hit', 'the list to expire again');
    assert.equal(listDown.status, 502, JSON.stringify(listDown));
    // ...but an immutable module file is, however long ago it expired.
    const zipDown = await getUntil(zip, (a) => a.cache !== 'hit', 'the zip to expire');
    assert.deepEqual([zipDown.status, zipDown.cache, zipDown.warning], [200, 'stale', '110 - "Response is Stale"']);
    assert.equal(zipDown.body, 'zip of /goproxy/example.com/m/@v/v1.0.0.zip');
    await goproxy.start();
  });
});
