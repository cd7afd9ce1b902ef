/**
 * Issue 13 point 7: OpenTelemetry from outside the process. A real `hoard serve` child exports to
 * a loopback OTLP/HTTP receiver that decodes what it gets (the JSON encoding of OTLP/HTTP):
 * W3C trace context continues from the client through hoard to a loopback upstream (host
 * strategy) and into hoard's own git fetch (git strategy, cold clone); server and client spans
 * carry the HTTP semantic-convention attributes; `metrics { enable-otlp }` pushes the registry's
 * request counter every second. A second process with tracing off adds no trace headers.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gitClientEnv, startGitUpstream, type GitUpstream } from '../fixtures/git-upstream.js';
import { startHoardOnConfig, type HoardProcess } from '../fixtures/hoard-process.js';

const run = promisify(execFile);

/** An OTLP attribute value as the JSON encoding writes it. */
type AnyValue = { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: AnyValue }>;
}
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

function attribute(span: { attributes?: Array<{ key: string; value: AnyValue }> }, key: string): string | number | boolean | undefined {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  if (!value) return undefined;
  if (value.intValue !== undefined) return Number(value.intValue);
  return value.stringValue ?? value.boolValue ?? value.doubleValue;
}

/** A loopback OTLP/HTTP receiver keeping every decoded export request. */
async function startReceiver(): Promise<{ url: string; traces: unknown[]; metrics: unknown[]; spans(): OtlpSpan[]; close(): Promise<void> }> {
  const traces: unknown[] = [];
  const metrics: unknown[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString();
    if (!String(req.headers['content-type']).startsWith('application/json')) {
      res.writeHead(415).end();
      return;
    }
    const decoded: unknown = JSON.parse(body);
    if (req.url === '/v1/traces') traces.push(decoded);
    else if (req.url === '/v1/metrics') metrics.push(decoded);
    else {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    traces,
    metrics,
    spans: () =>
      (traces as Array<{ resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> }>).flatMap((t) => (t.resourceSpans ?? []).flatMap((r) => (r.scopeSpans ?? []).flatMap((s) => s.spans ?? []))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A loopback HTTP upstream recording the headers of every request. */
async function startHttpUpstream(): Promise<{ hostPort: string; seen: IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`upstream body for ${req.url}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { hostPort: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;
const hoardOwn = (git: GitUpstream, repo: string) => git.requests.filter((r) => r.path.includes(`/${repo}`) && (r.userAgent ?? '').startsWith('git/'));

function hcl(upstream: string, git: GitUpstream): string {
  return `cache memory { limit-mb = 16 }
metadata memory {}
strategy host "http://${upstream}" {}
strategy git { plain-http-hosts = ["${git.hostPort}"] }
`;
}

describe('tracing and OTLP metrics enabled', () => {
  let work: string;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let upstream: Awaited<ReturnType<typeof startHttpUpstream>>;
  let git: GitUpstream;
  let hoard: HoardProcess;

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-otel-'));
    receiver = await startReceiver();
    upstream = await startHttpUpstream();
    git = await startGitUpstream();
    hoard = await startHoardOnConfig(work, hcl(upstream.hostPort, git), {
      metrics: `port = 0\nenable-otlp = true\notlp-endpoint = "${receiver.url}"\notlp-insecure = true\notlp-export-interval = 1`,
      // The batch processor's standard knob: export within 100 ms instead of 5 s.
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' },
    });
  });
  after(async () => {
    await hoard?.stop();
    await git?.close();
    await upstream?.close();
    await receiver?.close();
    await fs.rm(work, { recursive: true, force: true });
  });

  test('a client traceparent continues through hoard to the upstream, with server and client spans exported', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const clientSpanId = '00f067aa0ba902b7';
    const res = await fetch(`${hoard.url}/${upstream.hostPort}/files/a.txt`, { headers: { traceparent: `00-${traceId}-${clientSpanId}-01` } });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /upstream body for \/files\/a\.txt/);

    const sent = upstream.seen.at(-1)?.['traceparent'];
    const m = TRACEPARENT.exec(String(sent));
    assert.ok(m, `the upstream got a traceparent: ${String(sent)}`);
    assert.equal(m[1], traceId, 'same trace id as the client');
    assert.notEqual(m[2], clientSpanId, "hoard's own span is the upstream's parent");

    const server = await until('the server span', () => receiver.spans().find((s) => s.traceId === traceId && s.kind === SPAN_KIND_SERVER));
    assert.equal(server.parentSpanId, clientSpanId, "the server span's parent is the client's span");
    assert.equal(attribute(server, 'http.request.method'), 'GET');
    assert.equal(attribute(server, 'http.route'), `/${upstream.hostPort}/*`);
    assert.equal(attribute(server, 'http.response.status_code'), 200);
    assert.equal(attribute(server, 'url.path'), `/${upstream.hostPort}/files/a.txt`);
    assert.equal(server.name, `GET /${upstream.hostPort}/*`);

    const client = await until('the client span', () => receiver.spans().find((s) => s.traceId === traceId && s.kind === SPAN_KIND_CLIENT));
    assert.equal(client.parentSpanId, server.spanId, 'the upstream hop is a child of the server span');
    assert.equal(client.spanId, m[2], "the upstream's parent is the client span");
    assert.equal(client.name, 'GET');
    assert.equal(attribute(client, 'http.request.method'), 'GET');
    assert.equal(attribute(client, 'http.response.status_code'), 200);
    assert.equal(attribute(client, 'server.address'), '127.0.0.1');
    assert.equal(attribute(client, 'url.full'), `http://${upstream.hostPort}/files/a.txt`);

    const resource = (receiver.traces[0] as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: AnyValue }> } }> }).resourceSpans[0]!.resource;
    assert.equal(attribute(resource, 'service.name'), 'hoard');
  });

  test("a cold clone through hoard: hoard's own git fetch carries a traceparent, and its span is exported", async () => {
    await git.createRepo('org/traced.git', { files: 2 });
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    // The client's own git sends a traceparent too, so the clone continues the client's trace.
    await run('git', ['-c', `http.extraHeader=traceparent: 00-${traceId}-b7ad6b7169203331-01`, 'clone', '-q', `${hoard.url}/git/${git.hostPort}/org/traced`, path.join(work, 'traced')], {
      env: gitClientEnv,
    });
    const own = hoardOwn(git, 'org/traced');
    assert.ok(own.length > 0, 'hoard fetched from the upstream');
    for (const request of own) assert.match(String(request.traceparent), TRACEPARENT, `${request.method} ${request.path} carried a traceparent`);
    const cloneSpan = await until('the git clone span', () => receiver.spans().find((s) => s.name === 'git clone' && s.kind === SPAN_KIND_CLIENT));
    assert.equal(cloneSpan.traceId, traceId, "the clone a client's request started continues that client's trace");
    // hoard's own clone (info/refs, then upload-pack) runs under the clone span; the rest of what
    // reached the upstream is the client's requests that hoard relayed while cold, each under its HTTP client span.
    const underClone = own.filter((r) => TRACEPARENT.exec(String(r.traceparent))?.[2] === cloneSpan.spanId);
    assert.ok(underClone.some((r) => r.path.endsWith('/info/refs')), "git's ref discovery carried the clone span's traceparent");
    assert.ok(underClone.some((r) => r.path.endsWith('/git-upload-pack')), "git's pack request carried the clone span's traceparent");
    assert.equal(attribute(cloneSpan, 'server.address'), '127.0.0.1');
    assert.equal(attribute(cloneSpan, 'url.full'), `http://${git.hostPort}/org/traced`);
    // The traceparent is never persisted into the mirror's config.
    const configFile = path.join(work, 'state', 'git-mirrors', git.hostPort, 'org/traced.git', 'config');
    await until('the mirror', () => (existsSync(configFile) ? true : undefined));
    const mirrorConfig = await fs.readFile(configFile, 'utf8');
    assert.doesNotMatch(mirrorConfig, /traceparent|extraHeader/i);
    assert.doesNotMatch(hoard.log(), /traceparent/);
  });

  test('OTLP metrics arrive every second and hold the request counter', async () => {
    await fetch(`${hoard.url}/_liveness`).then((r) => r.text());
    const counter = await until('hoard_http_requests_total over OTLP', () => {
      for (const batch of receiver.metrics as Array<{ resourceMetrics?: Array<{ scopeMetrics?: Array<{ metrics?: Array<{ name: string; sum?: { isMonotonic?: boolean; dataPoints: Array<{ asDouble?: number; asInt?: number; attributes: Array<{ key: string; value: AnyValue }> }> } }> }> }> }>) {
        for (const rm of batch.resourceMetrics ?? []) {
          for (const sm of rm.scopeMetrics ?? []) {
            const found = sm.metrics?.find((metric) => metric.name === 'hoard_http_requests_total');
            if (found?.sum?.dataPoints.some((p) => attribute(p, 'route') === '_liveness')) return found;
          }
        }
      }
      return undefined;
    });
    assert.equal(counter.sum?.isMonotonic, true);
    const liveness = counter.sum!.dataPoints.find((p) => attribute(p, 'route') === '_liveness')!;
    assert.ok(Number(liveness.asDouble ?? liveness.asInt) >= 1);
    assert.equal(attribute(liveness, 'method'), 'GET');
    // A histogram makes it too, as an explicit-bucket histogram.
    const batches = receiver.metrics as Array<{ resourceMetrics: Array<{ resource: { attributes: Array<{ key: string; value: AnyValue }> }; scopeMetrics: Array<{ metrics: Array<{ name: string; histogram?: { dataPoints: Array<{ bucketCounts: Array<number | string>; explicitBounds: number[]; count: number | string }> } }> }> }> }>;
    const histogram = batches.flatMap((b) => b.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))).find((x) => x.name === 'hoard_http_request_duration_seconds' && x.histogram?.dataPoints.length);
    assert.ok(histogram, 'the duration histogram was exported');
    const point = histogram.histogram!.dataPoints[0]!;
    assert.equal(point.bucketCounts.length, point.explicitBounds.length + 1);
    assert.equal(point.bucketCounts.reduce((a: number, b) => a + Number(b), 0), Number(point.count));
    assert.equal(attribute(batches[0]!.resourceMetrics[0]!.resource, 'service.name'), 'hoard');
    // Periodic, not once: another export follows.
    const seen = receiver.metrics.length;
    await until('the next OTLP metrics export', () => (receiver.metrics.length > seen ? true : undefined));
  });
});

describe('tracing disabled', () => {
  let work: string;
  let upstream: Awaited<ReturnType<typeof startHttpUpstream>>;
  let git: GitUpstream;
  let hoard: HoardProcess;

  before(async () => {
    work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-otel-off-'));
    upstream = await startHttpUpstream();
    git = await startGitUpstream();
    // Whatever the test runner's environment holds, this process has tracing off.
    hoard = await startHoardOnConfig(work, hcl(upstream.hostPort, git), { env: { OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' } });
  });
  after(async () => {
    await hoard?.stop();
    await git?.close();
    await upstream?.close();
    await fs.rm(work, { recursive: true, force: true });
  });

  test('no traceparent is added to upstream requests or git fetches', async () => {
    const res = await fetch(`${hoard.url}/${upstream.hostPort}/files/b.txt`);
    assert.equal(res.status, 200);
    await res.text();
    assert.equal(upstream.seen.at(-1)?.['traceparent'], undefined);
    await git.createRepo('org/plain.git');
    await run('git', ['clone', '-q', `${hoard.url}/git/${git.hostPort}/org/plain`, path.join(work, 'plain')], { env: gitClientEnv });
    const own = hoardOwn(git, 'org/plain');
    assert.ok(own.length > 0);
    for (const request of own) assert.equal(request.traceparent, undefined);
  });
});
