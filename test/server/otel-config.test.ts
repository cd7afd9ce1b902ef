/**
 * Issue 13 point 7, the edges of OTLP: the `metrics` block's exporter rules (at least one
 * exporter, plain-text only with otlp-insecure, a positive interval), the OTLP protocol the
 * environment asks for (http/protobuf spoken, gRPC refused at start-up), and the translation of
 * prom-client histograms and summaries into OTLP metric data.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Histogram, Registry, Summary } from 'prom-client';
import { DataPointType, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { allProviderSpecs } from '../../src/app/wiring.js';
import { promRegistryProducer } from '../../src/server/telemetry/prom-bridge.js';
import { startHoardOnConfig } from '../fixtures/hoard-process.js';

const base = 'cache memory {}\nmetadata memory {}\n';
function problems(metrics: string): string {
  try {
    loadConfig({ text: `${base}metrics {\n${metrics}\n}\n`, env: {}, cwd: '/srv', specs: allProviderSpecs(), source: 'test.hcl' });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return '';
}

describe('metrics block', () => {
  test('both exporters disabled is a start-up error naming the line', () => {
    assert.match(problems('  enable-prometheus = false\n  enable-otlp = false'), /test\.hcl:4:\d+: metrics block: enable-prometheus: enable-prometheus and enable-otlp are both false/);
    assert.match(problems('  enable-prometheus = false'), /both false/);
  });
  test('a plain-text endpoint needs otlp-insecure', () => {
    assert.match(problems('  enable-otlp = true'), /test\.hcl:\d+:\d+: metrics block: otlp-endpoint: otlp-endpoint http:\/\/localhost:4318\/ is plain-text http: set otlp-insecure = true/);
    assert.match(problems('  enable-otlp = true\n  otlp-endpoint = "http://collector:4318"'), /test\.hcl:5:\d+: .*otlp-insecure = true/);
    assert.equal(problems('  enable-otlp = true\n  otlp-insecure = true'), '');
    assert.equal(problems('  enable-otlp = true\n  otlp-endpoint = "https://collector.example"'), '');
    assert.equal(problems('  enable-prometheus = false\n  enable-otlp = true\n  otlp-endpoint = "https://collector.example"'), '');
  });
  test('a malformed endpoint or interval is refused', () => {
    assert.match(problems('  enable-otlp = true\n  otlp-endpoint = "collector:4318"'), /otlp-endpoint "collector:4318" is not an http:\/\/ or https:\/\/ URL/);
    assert.match(problems('  otlp-export-interval = 0'), /otlp-export-interval/);
    // Not enabled: an http endpoint without insecure is not an error (nothing is sent).
    assert.equal(problems('  otlp-endpoint = "http://collector:4318"'), '');
  });
});

describe('prom-client → OTLP bridge', () => {
  test('histograms become explicit-bucket histograms, summaries sums and quantile gauges', async () => {
    const registry = new Registry();
    const h = new Histogram({ name: 't_seconds', help: 'h', labelNames: ['a'], buckets: [1, 2], registers: [registry] });
    for (const v of [0.5, 1.5, 1.7, 9]) h.observe({ a: 'x' }, v);
    const s = new Summary({ name: 't_summary', help: 's', percentiles: [0.5], registers: [registry] });
    s.observe(3);
    const { resourceMetrics, errors } = await promRegistryProducer(registry).collect();
    assert.deepEqual(errors, []);
    const metrics = resourceMetrics.scopeMetrics[0]!.metrics;
    const hist = metrics.find((m) => m.descriptor.name === 't_seconds') as HistogramMetricData;
    assert.equal(hist.dataPointType, DataPointType.HISTOGRAM);
    assert.equal(hist.dataPoints.length, 1);
    const point = hist.dataPoints[0]!;
    assert.deepEqual(point.attributes, { a: 'x' });
    assert.deepEqual(point.value.buckets, { boundaries: [1, 2], counts: [1, 2, 1] });
    assert.equal(point.value.count, 4);
    assert.equal(point.value.sum, 12.7);
    const quantiles = metrics.find((m) => m.descriptor.name === 't_summary');
    assert.equal(quantiles?.dataPointType, DataPointType.GAUGE);
    assert.deepEqual(quantiles?.dataPoints.map((p) => [p.attributes['quantile'], p.value]), [[0.5, 3]]);
    const count = metrics.find((m) => m.descriptor.name === 't_summary_count');
    assert.equal(count?.dataPointType, DataPointType.SUM);
    assert.equal(count?.dataPoints[0]?.value, 1);
  });
});

describe('OTLP protocol from the environment', () => {
  let work: string;
  let received: Array<{ path: string | undefined; type: string | undefined; body: Buffer }> = [];
  let receiver: http.Server;
  let receiverUrl: string;
  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-otel-proto-'));
    receiver = http.createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      received.push({ path: req.url, type: req.headers['content-type'], body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': String(req.headers['content-type']) }).end();
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
    await fs.rm(work, { recursive: true, force: true });
  });

  test('grpc is refused at start-up with the reason', async () => {
    await assert.rejects(
      startHoardOnConfig(path.join(work), base, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' } }),
      /cannot start: tracing: OTLP protocol "grpc" \(OTEL_EXPORTER_OTLP_PROTOCOL\) is not supported: hoard exports over OTLP\/HTTP/,
    );
  });

  test('a failing OTLP export is logged', async () => {
    // A port nothing listens on: every export is refused.
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const hoard = await startHoardOnConfig(path.join(work), base, { metrics: `port = 0\nenable-otlp = true\notlp-insecure = true\notlp-endpoint = "http://127.0.0.1:${port}"\notlp-export-interval = 1` });
    try {
      const deadline = Date.now() + 60_000;
      while (!/opentelemetry: .*(ECONNREFUSED|export)/i.test(hoard.log())) {
        assert.ok(Date.now() < deadline, `no export failure logged:\n${hoard.log()}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await hoard.stop();
    }
  });

  test('http/protobuf sends protobuf spans', async () => {
    received = [];
    const traces = `${receiverUrl}/v1/traces`;
    const hoard = await startHoardOnConfig(path.join(work), base, { env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: traces, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf', OTEL_BSP_SCHEDULE_DELAY: '100' } });
    try {
      const traceId = 'aa0b5cfe0dfeb2b6ce1d2e7f4a4b5c6d';
      await fetch(`${hoard.url}/_liveness`, { headers: { traceparent: `00-${traceId}-1111111111111111-01` } }).then((r) => r.text());
      const deadline = Date.now() + 60_000;
      while (!received.some((r) => r.body.includes(Buffer.from(traceId, 'hex')))) {
        assert.ok(Date.now() < deadline, 'no protobuf export carried the trace id');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const sent = received.find((r) => r.body.includes(Buffer.from(traceId, 'hex')))!;
      assert.equal(sent.path, '/v1/traces');
      assert.equal(sent.type, 'application/x-protobuf');
    } finally {
      await hoard.stop();
    }
  });
});
