import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pino from 'pino';
import { Registry } from 'prom-client';
import { Scheduler } from '../../src/jobs/scheduler.js';
import { StrategyMetrics } from '../../src/server/strategy-metrics.js';
import { requestUpstream } from '../../src/http/upstream.js';
import { installTelemetry } from '../../src/util/telemetry.js';
import { teeInto } from '../../src/util/tee.js';
import { freePort, parseExposition, sum } from '../fixtures/metrics-scrape.js';

async function withMetrics(run: (metrics: StrategyMetrics, registry: Registry) => Promise<void>): Promise<ReturnType<typeof parseExposition>> {
  const registry = new Registry();
  const metrics = new StrategyMetrics(registry);
  const uninstall = installTelemetry(metrics);
  try {
    await run(metrics, registry);
  } finally {
    uninstall();
  }
  return parseExposition(await registry.metrics());
}

describe('telemetry from the layers below the server', () => {
  test('fills: a committed copy and an abandoned one (the writer fails mid-body)', async () => {
    const s = await withMetrics(async () => {
      const kept: Buffer[] = [];
      await pipeline(Readable.from([Buffer.from('a'), Buffer.from('b')]), teeInto(new Writable({ write: (c, _e, cb) => (kept.push(c as Buffer), cb()) })), new Writable({ write: (_c, _e, cb) => cb() }));
      const failing = new Writable({ write: (_c, _e, cb) => cb(new Error('disk full')) });
      await pipeline(Readable.from([Buffer.from('a'), Buffer.from('b')]), teeInto(failing), new Writable({ write: (_c, _e, cb) => cb() }));
    });
    assert.equal(sum(s, 'hoard_cache_fills_total', { outcome: 'started' }), 2);
    assert.equal(sum(s, 'hoard_cache_fills_total', { outcome: 'committed' }), 1);
    assert.equal(sum(s, 'hoard_cache_fills_total', { outcome: 'abandoned' }), 1);
  });

  test('scheduler: job durations by kind and outcome, queue depth while jobs wait', async () => {
    const s = await withMetrics(async (_metrics, registry) => {
      const scheduler = new Scheduler({ concurrency: 1, maxCloneConcurrency: 0, logger: pino({ level: 'silent' }) });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const first = scheduler.submit('a', 'clone', () => gate);
      const second = scheduler.submit('b', 'fetch', async () => {
        throw new Error('upstream down');
      });
      // One worker, busy with the first job: the second waits.
      assert.equal(sum(parseExposition(await registry.metrics()), 'hoard_scheduler_queue_depth'), 1);
      release();
      await first;
      await assert.rejects(second);
      await scheduler.drain();
      // A drained scheduler is no longer sampled.
      assert.equal(sum(parseExposition(await registry.metrics()), 'hoard_scheduler_queue_depth'), 0);
    });
    assert.equal(sum(s, 'hoard_job_duration_seconds_count', { kind: 'clone', outcome: 'ok' }), 1);
    assert.equal(sum(s, 'hoard_job_duration_seconds_count', { kind: 'fetch', outcome: 'failed' }), 1);
  });

  test('upstream: a refused connection counts as an error of its host', async () => {
    const host = `127.0.0.1:${await freePort()}`;
    const s = await withMetrics(async (metrics) => {
      await assert.rejects(requestUpstream({ url: new URL(`http://${host}/x`), method: 'GET', headers: {} }));
      assert.deepEqual(metrics.upstreamHealth().map((h) => [h.host, h.requests, h.errors]), [[host, 1, 1]]);
    });
    assert.equal(sum(s, 'hoard_upstream_errors_total', { host }), 1);
    assert.equal(sum(s, 'hoard_upstream_requests_total', { host, status: 'error' }), 1);
  });
});
