import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { GlobalConfig } from '../../config/load.js';
import { packageVersion } from '../../cli/version.js';
import { setTracing } from '../../util/tracing-hook.js';

/** Running telemetry exporters. */
export interface Telemetry {
  /** Flushes pending spans and metrics and stops the exporters. */
  shutdown(): Promise<void>;
}

/**
 * Tracing is on, as in cachew, when an OTLP endpoint for traces is named in the environment
 * (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); the exporter takes
 * the rest of its settings from the standard `OTEL_EXPORTER_OTLP_*` variables.
 */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return false;
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
}

/**
 * The OTLP/HTTP span exporter the protocol variables ask for: JSON by default (`http/json`),
 * protobuf for `http/protobuf`. gRPC (cachew's transport) is refused rather than silently spoken
 * as HTTP to a gRPC port: hoard ships no gRPC stack, and every collector takes OTLP/HTTP on 4318.
 */
async function spanExporter(env: NodeJS.ProcessEnv) {
  const protocol = (env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] || env['OTEL_EXPORTER_OTLP_PROTOCOL'] || 'http/json').trim();
  if (protocol === 'http/json') return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
  if (protocol === 'http/protobuf') return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
  throw new Error(
    `tracing: OTLP protocol ${JSON.stringify(protocol)} (OTEL_EXPORTER_OTLP_${env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'] ? 'TRACES_' : ''}PROTOCOL) is not supported: hoard exports over OTLP/HTTP, use http/json or http/protobuf and the collector's HTTP port (4318)`,
  );
}

/**
 * Starts OTLP tracing and/or OTLP metrics as configured; undefined (and no OTel module loaded)
 * when neither is wanted, so a plain `hoard serve` pays nothing for them.
 */
export async function startTelemetry(opts: { metrics: GlobalConfig['metrics']; registry: Registry; env: NodeJS.ProcessEnv; logger: Logger }): Promise<Telemetry | undefined> {
  const traces = tracingRequested(opts.env);
  const metrics = opts.metrics['enable-otlp'];
  if (!traces && !metrics) return undefined;
  // The SDK reports failed exports (collector down, refused, timed out) only through its diag
  // logger, silent by default: route its warnings and errors to hoard's log.
  const { diag, DiagLogLevel } = await import('@opentelemetry/api');
  const quiet = () => undefined;
  const details = (args: unknown[]) => (args.length ? { otel: args.map(String) } : {});
  diag.setLogger(
    {
      error: (message, ...args) => opts.logger.error(details(args), `opentelemetry: ${message}`),
      warn: (message, ...args) => opts.logger.warn(details(args), `opentelemetry: ${message}`),
      info: quiet,
      debug: quiet,
      verbose: quiet,
    },
    DiagLogLevel.WARN,
  );
  const { defaultResource, detectResources, envDetector, hostDetector, processDetector, resourceFromAttributes } = await import('@opentelemetry/resources');
  // service.name from `metrics { service-name }`; OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
  // (the env detector, merged last) still win, as with every OTel SDK.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': opts.metrics['service-name'], 'service.version': packageVersion() }))
    .merge(detectResources({ detectors: [processDetector, hostDetector, envDetector] }));
  const stops: Array<() => Promise<void>> = [];
  if (traces) {
    const { startOtelTracing } = await import('./otel-tracing.js');
    const tracer = startOtelTracing(resource, await spanExporter(opts.env));
    setTracing(tracer);
    stops.push(async () => {
      setTracing(undefined);
      await tracer.shutdown();
    });
    opts.logger.info({ endpoint: opts.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || opts.env['OTEL_EXPORTER_OTLP_ENDPOINT'] }, 'tracing: exporting spans over OTLP/HTTP');
  }
  if (metrics) {
    const { startOtlpMetrics } = await import('./otlp-metrics.js');
    const exporter = startOtlpMetrics(resource, opts.registry, opts.metrics['otlp-endpoint'], opts.metrics['otlp-export-interval']);
    stops.push(() => exporter.shutdown());
    opts.logger.info({ endpoint: opts.metrics['otlp-endpoint'], intervalSeconds: opts.metrics['otlp-export-interval'] }, 'metrics: exporting over OTLP/HTTP');
  }
  return {
    async shutdown() {
      for (const stop of stops.reverse()) await stop().catch((err: unknown) => opts.logger.warn({ err }, 'telemetry shutdown failed'));
      diag.disable();
    },
  };
}
