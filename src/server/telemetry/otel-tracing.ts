import type { IncomingMessage, ServerResponse } from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace-node';
import type { ClientTrace, ServerTrace, Tracing } from '../../util/tracing-hook.js';

/**
 * OpenTelemetry tracing for hoard (loaded only when enabled): a server span per request and a
 * client span per upstream hop, named and attributed after the OTel HTTP semantic conventions,
 * with W3C trace context (and baggage) propagated both ways. Spans go to `exporter` through a
 * batch span processor (its OTEL_BSP_* variables apply).
 */

/** Methods the HTTP conventions name; anything else is reported as `_OTHER` (bounded span names). */
const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'QUERY']);

function methodAttributes(method: string): { name: string; attributes: Attributes } {
  if (KNOWN_METHODS.has(method)) return { name: method, attributes: { 'http.request.method': method } };
  return { name: 'HTTP', attributes: { 'http.request.method': '_OTHER', 'http.request.method_original': method } };
}

/**
 * A URL fit for `url.full`: no user info and no query string (signed storage URLs carry their
 * credentials there, and a trace backend is no place for them).
 */
function redactedUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function defaultPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** `host[:port]` of a Host header as server.address/server.port. */
function hostAttributes(host: string | undefined): Attributes {
  if (!host) return {};
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(host);
  if (!m) return {};
  return { 'server.address': (m[1] as string).replace(/^\[|\]$/g, ''), ...(m[2] ? { 'server.port': Number(m[2]) } : {}) };
}

function failSpan(span: Span, err: Error): void {
  span.recordException(err);
  span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
  span.setAttribute('error.type', err.name || 'Error');
}

/** A started tracer and how to flush and stop it. */
export interface OtelTracing extends Tracing {
  shutdown(): Promise<void>;
}

/** Starts the tracer provider, registers it globally (context manager, propagators) and returns the hooks. */
export function startOtelTracing(resource: Resource, exporter: SpanExporter): OtelTracing {
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  // The AsyncLocalStorage context manager and the W3C trace-context + baggage propagators
  // (without the propagators each service would start a trace of its own).
  provider.register();
  const tracer = provider.getTracer('hoard');

  return {
    serverSpan(req: IncomingMessage, _res: ServerResponse): ServerTrace {
      const parent = propagation.extract(ROOT_CONTEXT, req.headers);
      const method = methodAttributes(req.method ?? 'GET');
      const target = req.url ?? '/';
      const queryAt = target.indexOf('?');
      const span = tracer.startSpan(
        method.name,
        {
          kind: SpanKind.SERVER,
          attributes: {
            ...method.attributes,
            'url.scheme': 'http',
            'url.path': queryAt === -1 ? target : target.slice(0, queryAt),
            ...hostAttributes(req.headers.host),
            ...(req.socket?.remoteAddress ? { 'client.address': req.socket.remoteAddress, 'network.peer.address': req.socket.remoteAddress } : {}),
            'network.protocol.version': req.httpVersion,
            ...(req.headers['user-agent'] ? { 'user_agent.original': req.headers['user-agent'] } : {}),
          },
        },
        parent,
      );
      const active = trace.setSpan(parent, span);
      return {
        run: (fn) => context.with(active, fn),
        route(template) {
          span.setAttribute('http.route', template);
          span.updateName(`${method.name} ${template}`);
        },
        end(status, complete) {
          span.setAttribute('http.response.status_code', status);
          // Server spans: only 5xx is an error (a 4xx is the client's).
          if (status >= 500) {
            span.setAttribute('error.type', String(status));
            span.setStatus({ code: SpanStatusCode.ERROR });
          } else if (!complete) {
            span.setAttribute('error.type', 'response_incomplete');
            span.setStatus({ code: SpanStatusCode.ERROR, message: 'the response did not complete' });
          }
          span.end();
        },
      };
    },

    clientSpan(method: string, url: URL, headers: Record<string, string | string[]>): ClientTrace {
      const described = methodAttributes(method);
      const span = tracer.startSpan(described.name, {
        kind: SpanKind.CLIENT,
        attributes: { ...described.attributes, 'server.address': url.hostname, 'server.port': defaultPort(url), 'url.full': redactedUrl(url) },
      });
      // Whatever trace headers the client sent are replaced: the upstream's parent is this span.
      delete headers['traceparent'];
      delete headers['tracestate'];
      propagation.inject(trace.setSpan(context.active(), span), headers);
      let ended = false;
      return {
        response(status) {
          span.setAttribute('http.response.status_code', status);
          if (status >= 400) {
            span.setAttribute('error.type', String(status));
            span.setStatus({ code: SpanStatusCode.ERROR });
          }
        },
        end(err) {
          if (ended) return;
          ended = true;
          if (err) failSpan(span, err);
          span.end();
        },
      };
    },

    async gitSpan<T>(command: string, remote: string, run: (traceparent: string) => Promise<T>): Promise<T> {
      let url: URL | undefined;
      try {
        url = new URL(remote);
      } catch {
        url = undefined;
      }
      const span = tracer.startSpan(`git ${command}`, {
        kind: SpanKind.CLIENT,
        attributes: {
          'process.executable.name': 'git',
          'hoard.git.command': command,
          ...(url ? { 'server.address': url.hostname, 'server.port': defaultPort(url), 'url.full': redactedUrl(url) } : {}),
        },
      });
      const active = trace.setSpan(context.active(), span);
      const carrier: Record<string, string> = {};
      propagation.inject(active, carrier);
      try {
        return await context.with(active, () => run(carrier['traceparent'] ?? ''));
      } catch (err) {
        failSpan(span, err as Error);
        throw err;
      } finally {
        span.end();
      }
    },

    async shutdown() {
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
