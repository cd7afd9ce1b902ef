import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The seam between hoard's hot paths and OpenTelemetry. This module imports nothing from OTel:
 * with tracing off `tracing` stays undefined, and every instrumented place pays exactly one
 * `if (tracing)` check. `hoard serve` loads the OTel implementation (./otel-tracing.ts) lazily,
 * only when tracing is enabled, and installs it here.
 */

/** One request's server span. */
export interface ServerTrace {
  /** Runs the request's handling with this span as the active context (upstream hops become its children). */
  run<T>(fn: () => T): T;
  /** The matched route template (`http.route`); renames the span `{method} {route}`. */
  route(template: string): void;
  /** Ends the span with the response status. */
  end(status: number, complete: boolean): void;
}

/** One outgoing HTTP request's client span. */
export interface ClientTrace {
  /** The response head arrived. */
  response(status: number): void;
  /** Ends the span, as failed when `err` is given. */
  end(err?: Error): void;
}

/** What the instrumented code asks of the tracer. */
export interface Tracing {
  /** Starts the server span of `req`, continuing the trace of an incoming `traceparent`. */
  serverSpan(req: IncomingMessage, res: ServerResponse): ServerTrace;
  /**
   * Starts a client span for an upstream HTTP request, child of the active context, and writes
   * its `traceparent` (and `tracestate`) into `headers`, replacing whatever the client sent.
   */
  clientSpan(method: string, url: URL, headers: Record<string, string | string[]>): ClientTrace;
  /**
   * Runs a git command that talks to `remote` inside a client span; `run` gets the span's
   * `traceparent` value for git's own HTTP requests.
   */
  gitSpan<T>(command: string, remote: string, run: (traceparent: string) => Promise<T>): Promise<T>;
}

/** The installed tracer; undefined while tracing is off (the common case). */
export let tracing: Tracing | undefined;

/** Installs (or, with undefined, removes) the tracer. */
export function setTracing(next: Tracing | undefined): void {
  tracing = next;
}
