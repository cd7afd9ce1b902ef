import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { StrategyMetrics, type CacheHeaderValue } from './strategy-metrics.js';

/**
 * The process's Prometheus registry. Request metrics, labelled by method, first path segment and
 * status class, live here; the cache, upstream, job and repository metrics in `strategy`
 * (strategy-metrics.ts), which also serves as the telemetry sink the layers below report to.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  /** Cache results, tiers, upstreams, fills, jobs and repositories (see StrategyMetrics). */
  readonly strategy: StrategyMetrics;
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly durations: Histogram<'method' | 'route' | 'status'>;

  constructor(serviceName: string) {
    this.registry.setDefaultLabels({ service: serviceName });
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ name: 'hoard_http_requests_total', help: 'HTTP requests served.', labelNames: ['method', 'route', 'status'], registers: [this.registry] });
    this.durations = new Histogram({
      name: 'hoard_http_request_duration_seconds',
      help: 'HTTP request duration until the response finished.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 600],
      registers: [this.registry],
    });
    this.strategy = new StrategyMetrics(this.registry);
  }

  /** Records a strategy's answer: its `X-Hoard-Cache` header (or a 5xx) names the result. */
  observeResult(strategy: string, status: number, cacheHeader: CacheHeaderValue): void {
    this.strategy.observeResult(strategy, status, cacheHeader);
  }

  /**
   * Label children per (method, route, status class), bound once: `inc(labels)` and
   * `observe(labels, v)` hash and validate the label object on every call, which showed up in
   * request profiles. Bounded so odd methods or first segments cannot grow it without limit
   * (past the bound requests are still counted, through the unbound path).
   */
  private readonly bound = new Map<string, { requests: { inc(): void }; durations: { observe(v: number): void } }>();
  private static readonly MAX_BOUND = 512;

  /** Records one finished request. */
  observe(method: string, path: string, status: number, seconds: number): void {
    // path.split('/')[1] ?? '', without the array.
    const first = path.indexOf('/');
    const next = first === -1 ? -1 : path.indexOf('/', first + 1);
    const segment = first === -1 ? '' : path.slice(first + 1, next === -1 ? path.length : next);
    const statusClass = `${Math.floor(status / 100)}xx`;
    const id = `${method} ${segment} ${statusClass}`;
    let children = this.bound.get(id);
    if (!children) {
      const route = /^[a-z_][a-z0-9_.-]{0,30}$/i.test(segment) ? segment : 'other';
      const labels = { method, route, status: statusClass };
      if (this.bound.size >= ServerMetrics.MAX_BOUND) {
        this.requests.inc(labels);
        this.durations.observe(labels, seconds);
        return;
      }
      children = { requests: this.requests.labels(labels), durations: this.durations.labels(labels) };
      this.bound.set(id, children);
    }
    children.requests.inc();
    children.durations.observe(seconds);
  }

  /** Serves `/metrics` on its own listener; resolves with the bound port. */
  async listen(host: string, port: number): Promise<{ port: number; close(): Promise<void> }> {
    const server = http.createServer((req, res) => {
      if (req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404).end('not found\n');
        return;
      }
      this.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    return {
      port: (server.address() as AddressInfo).port,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }
}
