import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitUpstream, gitClientEnv, type GitUpstream } from '../fixtures/git-upstream.js';
import { freePort, has, parseExposition, sum, type Sample } from '../fixtures/metrics-scrape.js';
import { startTestServer, type TestServer } from '../fixtures/server.js';

const execFileAsync = promisify(execFile);

let upstream: GitUpstream;
let origin: http.Server;
let originHost: string;
let hoard: TestServer;
let metricsUrl: string;
let work: string;

before(async () => {
  upstream = await startGitUpstream();
  origin = http.createServer((req, res) => {
    const body = Buffer.from(`object at ${req.url}\n`.repeat(100));
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originHost = `127.0.0.1:${(origin.address() as AddressInfo).port}`;
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-metrics-'));
  const port = await freePort();
  hoard = await startTestServer({
    hcl: `cache memory {}
cache disk {}
metadata memory {}
metrics {
  bind = "127.0.0.1"
  port = ${port}
}
git-clone { ref-check-interval = "1h" }
strategy git { plain-http-hosts = ["${upstream.hostPort}"] }
strategy host "http://${originHost}" {}
`,
  });
  metricsUrl = `http://127.0.0.1:${hoard.server.metricsPort}/metrics`;
});
after(async () => {
  await hoard?.close();
  await upstream?.close();
  origin?.closeAllConnections();
  await new Promise((resolve) => origin?.close(resolve));
  await fs.rm(work, { recursive: true, force: true });
});

async function scrape(): Promise<Sample[]> {
  const res = await fetch(metricsUrl);
  assert.equal(res.status, 200);
  return parseExposition(await res.text());
}

describe('Prometheus metrics after real traffic', () => {
  test('a git clone, object API hits and misses and a host-strategy fetch show up with sane values', async () => {
    await upstream.createRepo('org/metered.git', { files: 5 });
    const viaHoard = `${hoard.url}/git/${upstream.hostPort}/org/metered.git`;
    await execFileAsync('git', ['clone', '-q', viaHoard, path.join(work, 'clone')], { env: gitClientEnv });
    // Once the mirror is Ready, a second clone is served from it.
    for (const deadline = Date.now() + 30_000; !(await fetch(`${hoard.url}/?format=json`).then((r) => r.text())).includes('"state":"ready"') && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await execFileAsync('git', ['clone', '-q', viaHoard, path.join(work, 'warm')], { env: gitClientEnv });
    // A snapshot, so the repository has a snapshot age.
    const snap = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/metered/snapshot.tar.zst`);
    assert.equal(snap.status, 200);
    await snap.arrayBuffer();

    // Object API: one upload, two hits, one miss.
    assert.equal((await fetch(`${hoard.url}/api/v1/object/metered/k1`, { method: 'POST', body: 'hello metrics' })).status, 200);
    for (let i = 0; i < 2; i++) {
      const hit = await fetch(`${hoard.url}/api/v1/object/metered/k1`);
      assert.equal(hit.headers.get('x-hoard-cache'), 'hit');
      assert.equal(await hit.text(), 'hello metrics');
    }
    const miss = await fetch(`${hoard.url}/api/v1/object/metered/absent`);
    assert.equal(miss.status, 404);
    assert.equal(miss.headers.get('x-hoard-cache'), 'miss');
    await miss.text();

    // Host strategy: a miss (fetch + fill), then a hit.
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${hoard.url}/${originHost}/file.txt`);
      assert.equal(res.status, 200);
      await res.text();
    }

    // A fill commits before its response ends (tee), which can be after the client read its
    // Content-Length bytes: answers are counted when they end, so wait for the host's two.
    // Snapshot figures are re-read from the cache at most every few seconds: wait for the new one too.
    const settled = (x: Sample[]) => sum(x, 'hoard_strategy_requests_total', { strategy: 'host' }) >= 2 && has(x, 'hoard_repository_snapshot_age_seconds');
    let s = await scrape();
    for (const deadline = Date.now() + 20_000; !settled(s) && Date.now() < deadline; ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      s = await scrape();
    }
    // Requests by strategy and result; no repository label on them.
    assert.equal(sum(s, 'hoard_strategy_requests_total', { strategy: 'api', result: 'hit' }), 2);
    assert.equal(sum(s, 'hoard_strategy_requests_total', { strategy: 'api', result: 'miss' }), 1);
    assert.ok(sum(s, 'hoard_strategy_requests_total', { strategy: 'git', result: 'miss' }) >= 1, 'the cold clone missed');
    assert.ok(sum(s, 'hoard_strategy_requests_total', { strategy: 'git', result: 'hit' }) >= 1, 'the warm clone was served from the mirror');
    assert.equal(sum(s, 'hoard_strategy_requests_total', { strategy: 'host' }), 2);
    assert.ok(s.filter((x) => x.name === 'hoard_strategy_requests_total').every((x) => Object.keys(x.labels).sort().join() === 'result,service,strategy'));
    // Bytes served by tier: the object API hits were answered by tier 0 (memory).
    assert.ok(sum(s, 'hoard_cache_served_bytes_total', { tier: '0', kind: 'memory' }) >= 2 * 'hello metrics'.length);
    // Upstream requests, latency and errors by host: hoard's git clone and the host fetch.
    assert.ok(sum(s, 'hoard_upstream_requests_total', { host: upstream.hostPort }) >= 1, 'git upstream requests');
    assert.ok(sum(s, 'hoard_upstream_requests_total', { host: originHost, status: '2xx' }) >= 1, 'host upstream requests');
    assert.ok(sum(s, 'hoard_upstream_request_duration_seconds_count', { host: originHost }) >= 1);
    assert.equal(sum(s, 'hoard_upstream_errors_total', { host: originHost }), 0);
    // Fills: the host miss filled the cache (and the snapshot was teed into it).
    const started = sum(s, 'hoard_cache_fills_total', { outcome: 'started' });
    const committed = sum(s, 'hoard_cache_fills_total', { outcome: 'committed' });
    assert.ok(committed >= 1 && started >= committed, `fills started ${started}, committed ${committed}`);
    // Tier sizes, limits and evictions.
    for (const kind of ['memory', 'disk']) {
      assert.ok(sum(s, 'hoard_cache_size_bytes', { kind }) > 0, `${kind} size`);
      assert.ok(sum(s, 'hoard_cache_limit_bytes', { kind }) > 0, `${kind} limit`);
      assert.ok(has(s, 'hoard_cache_evictions_total', { kind }), `${kind} evictions series`);
    }
    // Scheduler: queue depth, and the clone's job duration.
    assert.ok(has(s, 'hoard_scheduler_queue_depth'));
    assert.ok(sum(s, 'hoard_job_duration_seconds_count') >= 1, 'job durations recorded');
    // Repository gauges: state, last fetch and snapshot age.
    const repo = `http://${upstream.hostPort}/org/metered`;
    const repoSeries = s.filter((x) => x.name === 'hoard_repository_state');
    assert.ok(repoSeries.some((x) => x.labels['state'] === 'ready' && (x.labels['repository'] ?? '').includes('org/metered')), JSON.stringify(repoSeries));
    const lastFetch = s.find((x) => x.name === 'hoard_repository_last_fetch_timestamp_seconds' && (x.labels['repository'] ?? '').includes('org/metered'));
    assert.ok(lastFetch && Math.abs(lastFetch.value - Date.now() / 1000) < 600, `last fetch of ${repo}: ${lastFetch?.value}`);
    const age = s.find((x) => x.name === 'hoard_repository_snapshot_age_seconds' && (x.labels['repository'] ?? '').includes('org/metered'));
    assert.ok(age && age.value >= 0 && age.value < 600, `snapshot age ${age?.value}`);
    assert.equal(sum(s, 'hoard_repositories', { state: 'ready' }), 1);
  });
});
