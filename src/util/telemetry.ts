/**
 * The process-wide sink for measurements taken below the server layer: upstream requests (HTTP
 * and git child processes), cache fills, background jobs. Those happen in free functions reached
 * from many call sites and from background work with no request around it, so threading an
 * object through every call would touch every strategy; instead the server installs its metrics
 * here once at start-up (`installTelemetry`) and the layers below call the small interface. It
 * defaults to doing nothing, so `cache/`, `jobs/`, `util/` and `strategies/` never import
 * `server/` (DESIGN §4) and code used without a server (the CLI, unit tests) pays nothing.
 */

/** One upstream request in flight; exactly one of its methods is called. */
export interface UpstreamObservation {
  /** The upstream answered (time to the response head); `status` 0 for a child process that exited 0. */
  answered(status: number): void;
  /** The request failed before an answer (connect error, timeout, non-zero git exit). */
  failed(): void;
}

/** One cache fill (a tee writing a copy while serving); at most one of its methods is called. */
export interface FillObservation {
  committed(): void;
  /** The copy was given up (writer failed, or the transfer was torn down before the end). */
  abandoned(): void;
}

/** Something with a queue whose depth is sampled when metrics are scraped. */
export interface QueueDepthSource {
  readonly depth: number;
}

/** What the layers below the server report. */
export interface Telemetry {
  upstream(host: string): UpstreamObservation;
  fill(): FillObservation;
  /** A background job of `kind` ended after `seconds`. */
  job(kind: string, seconds: number, ok: boolean): void;
  /** Starts sampling a scheduler's queue depth; the returned function stops it. */
  watchQueue(source: QueueDepthSource): () => void;
}

const ignoreUpstream: UpstreamObservation = { answered: () => undefined, failed: () => undefined };
const ignoreFill: FillObservation = { committed: () => undefined, abandoned: () => undefined };

/** Reports nothing: the state before a server installs its metrics. */
export const NO_TELEMETRY: Telemetry = {
  upstream: () => ignoreUpstream,
  fill: () => ignoreFill,
  job: () => undefined,
  watchQueue: () => () => undefined,
};

let current: Telemetry = NO_TELEMETRY;

/** The installed sink (read at each call, so installing later still takes effect). */
export function telemetry(): Telemetry {
  return current;
}

/**
 * Installs `sink` for the whole process and returns a function restoring the previous one. One
 * server per process is the production shape; tests running several servers in one process see
 * the measurements in the last installed one.
 */
export function installTelemetry(sink: Telemetry): () => void {
  const previous = current;
  current = sink;
  return () => {
    if (current === sink) current = previous;
  };
}
