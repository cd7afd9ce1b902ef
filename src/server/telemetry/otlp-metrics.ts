import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import type { Resource } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { Registry } from 'prom-client';
import { promRegistryProducer } from './prom-bridge.js';

/**
 * `metrics { enable-otlp = true }`: an OTel MeterProvider whose periodic reader pushes hoard's
 * prom-client registry (through the bridge producer) to `<endpoint>/v1/metrics` over OTLP/HTTP
 * (JSON) every `intervalSeconds`.
 */
export function startOtlpMetrics(resource: Resource, registry: Registry, endpoint: string, intervalSeconds: number): { shutdown(): Promise<void> } {
  const base = new URL(endpoint);
  const url = base.pathname.endsWith('/v1/metrics') ? base.href : new URL(`${base.pathname.replace(/\/+$/, '')}/v1/metrics`, base).href;
  const intervalMs = intervalSeconds * 1000;
  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url }),
    exportIntervalMillis: intervalMs,
    // The SDK requires the export deadline not to exceed the interval.
    exportTimeoutMillis: Math.min(30_000, intervalMs),
    metricProducers: [promRegistryProducer(registry)],
  });
  const provider = new MeterProvider({ resource, readers: [reader] });
  return { shutdown: () => provider.shutdown() };
}
