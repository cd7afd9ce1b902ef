import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { answerAndClose } from '../http/answer-and-close.js';

/**
 * The last line of defence between one request's bug and the whole process: an error no handler
 * caught is logged with the request it belongs to, that request is answered 500 (or its half-sent
 * response cut), and every other connection carries on.
 *
 * Three ways an error can escape a handler, and what catches each:
 * - the handler's promise rejects: `createHttpServer` awaits it (`failRequest`);
 * - a listener on the request or response throws (or an `'error'` nobody listens for is
 *   emitted): those events are emitted from the socket's context, outside any handler, so
 *   `guardEmitter` catches the throw at the emitting call;
 * - anything the handler started (a timer, a child process callback, a promise nobody awaits)
 *   throws or rejects later: the process-level handlers installed by `installLastResort` find
 *   the request through an AsyncLocalStorage scope that every async resource created inside the
 *   handler inherits.
 * An error outside every request is a fault of the process itself: logged, then the process exits
 * as node would (its state is unknown; a supervisor restarts it).
 */

/** The request an error belongs to, as the last resort needs it. */
export interface RequestScope {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly uri: string;
  readonly client: string | undefined;
  readonly logger: Logger;
  /** Set by the first failure, so a request is answered (and logged as failing) once. */
  failed: boolean;
}

const scopes = new AsyncLocalStorage<RequestScope>();

/** Runs `fn` (a request's handling) so that errors escaping it later can be attributed to `scope`. */
export function runInRequestScope<T>(scope: RequestScope, fn: () => T): T {
  return scopes.run(scope, fn);
}

/** The request whose handling the current code runs for, if any. */
export function currentRequestScope(): RequestScope | undefined {
  return scopes.getStore();
}

/** Logs `err` with its request and answers 500, or cuts the response when its head was already sent. */
export function failRequest(scope: RequestScope, err: unknown, origin: string): void {
  const first = !scope.failed;
  scope.failed = true;
  scope.logger.error({ err, client: scope.client, method: scope.method, uri: scope.uri, origin }, first ? 'request failed with an uncaught error' : 'further uncaught error in a failed request');
  if (!first) return;
  const { req, res } = scope;
  try {
    if (res.writableEnded || res.destroyed) return;
    if (res.headersSent) res.destroy();
    // Connection: close: after an unexpected failure, what is left of the request body is unknown.
    else answerAndClose(req, res, 500, 'internal server error');
  } catch (answerErr) {
    scope.logger.error({ err: answerErr, method: scope.method, uri: scope.uri }, 'could not answer a failed request; closing its connection');
    res.destroy();
  }
}

/**
 * Makes a throw from any listener of `emitter` (and an `'error'` emitted with no listener, which
 * node turns into a throw) fail `scope` instead of reaching the process. The remaining listeners
 * of that one event are skipped, as they would have been.
 */
export function guardEmitter(emitter: EventEmitter, scope: RequestScope): void {
  const emit = emitter.emit;
  emitter.emit = function guardedEmit(this: EventEmitter, event: string | symbol, ...args: unknown[]): boolean {
    try {
      return emit.call(this, event, ...args);
    } catch (err) {
      failRequest(scope, err, `'${String(event)}' listener`);
      return true;
    }
  };
}

/**
 * Installs the process-level handlers (`hoard serve` only: in-process test servers must not
 * change how their test runner handles errors). Errors attributable to a request fail that
 * request; any other is logged and ends the process with status 1.
 */
export function installLastResort(logger: Logger): void {
  const onError = (err: unknown, origin: string) => {
    const scope = currentRequestScope();
    if (scope) {
      failRequest(scope, err, origin);
      return;
    }
    logger.fatal({ err, origin }, 'uncaught error outside any request; exiting');
    // The log is asynchronous: let it reach stderr, but never hang on it.
    setTimeout(() => process.exit(1), 1_000).unref();
    logger.flush(() => process.exit(1));
  };
  process.on('uncaughtException', (err, origin) => onError(err, origin));
  process.on('unhandledRejection', (reason) => onError(reason, 'unhandledRejection'));
}
