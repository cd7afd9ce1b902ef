import type { IncomingMessage, ServerResponse } from 'node:http';
import findMyWay from 'find-my-way';
import type { InterceptedRequest, Interceptor, RouteHandler, RouteMethod, RouteOptions, RouteParams, RouteRegistry, TrustedOnlyRule } from './strategy.js';

const noop = () => undefined;

/** A matched route: the handler plus its captured parameters. */
export interface RouteMatch {
  handler: RouteHandler;
  params: RouteParams;
  /** The route's rule for requests only trusted callers may make. */
  trustedOnly?: TrustedOnlyRule;
  /** The route template as registered (`/git/*`): the `http.route` of traces. */
  route: string;
  /** The strategy that registered the route (see `forStrategy`), for per-strategy metrics. */
  strategy?: string;
}

interface RouteStore {
  handler: RouteHandler;
  trustedOnly?: TrustedOnlyRule | undefined;
  route: string;
  strategy?: string | undefined;
}

/**
 * find-my-way behind our RouteRegistry. GET routes answer HEAD too unless HEAD is registered
 * explicitly; a path that exists for other methods yields `allowed` for a 405.
 */
export class Router implements RouteRegistry {
  private readonly tree = findMyWay({ ignoreTrailingSlash: false, caseSensitive: true, maxParamLength: 2048 });
  /** Paths whose HEAD route was added for a GET and may be replaced by an explicit HEAD. */
  private readonly implicitHead = new Set<string>();
  private readonly interceptors: Interceptor[] = [];

  intercept(interceptor: Interceptor): void {
    this.interceptors.push(interceptor);
  }

  /** The first interceptor's claim on `req`, in registration order. */
  intercepted(req: IncomingMessage): InterceptedRequest | undefined {
    for (const interceptor of this.interceptors) {
      const claim = interceptor(req);
      if (claim) return claim;
    }
    return undefined;
  }

  /**
   * The registry handed to one strategy: its routes and interceptor claims are tagged with
   * `strategy`, so the server can count each answer against the strategy that gave it without
   * knowing any protocol.
   */
  forStrategy(strategy: string): RouteRegistry {
    return {
      on: (methods, path, handler, opts) => this.add(methods, path, handler, opts, strategy),
      intercept: (interceptor) =>
        this.intercept((req) => {
          const claim = interceptor(req);
          return claim && { ...claim, strategy };
        }),
    };
  }

  on(methods: RouteMethod | RouteMethod[], path: string, handler: RouteHandler, opts: RouteOptions = {}): void {
    this.add(methods, path, handler, opts, undefined);
  }

  private add(methods: RouteMethod | RouteMethod[], path: string, handler: RouteHandler, opts: RouteOptions = {}, strategy: string | undefined): void {
    const cut = path.search(/[:*]/);
    const rawPrefix = opts.rawPrefix ?? (cut === -1 ? path : path.slice(0, cut));
    const guarded: RouteHandler = (req, res, params, query) => {
      if (!(req.url ?? '').startsWith(rawPrefix)) {
        sendText(res, 400, `bad request: the path must start with ${rawPrefix} literally (no percent-escapes in the route prefix)`);
        return;
      }
      return handler(req, res, params, query);
    };
    // The template as people read it: find-my-way's `::` escape of a literal colon is shown as `:`.
    const store: RouteStore = { handler: guarded, trustedOnly: opts.trustedOnly, route: path.replace(/::/g, ':'), strategy };
    for (const method of Array.isArray(methods) ? methods : [methods]) {
      if (method === 'HEAD' && this.implicitHead.delete(path)) this.tree.off('HEAD', path);
      this.tree.on(method, path, noop, store);
      if (method === 'GET' && !this.tree.hasRoute('HEAD', path)) {
        this.tree.on('HEAD', path, noop, store);
        this.implicitHead.add(path);
      }
    }
  }

  /** Finds the route for a request path (no query string). */
  find(method: string, path: string): RouteMatch | { allowed: string[] } | undefined {
    const found = this.tree.find(method as 'GET', path);
    if (found) {
      const store = found.store as RouteStore;
      return { handler: store.handler, params: { ...found.params }, route: store.route, ...(store.trustedOnly ? { trustedOnly: store.trustedOnly } : {}), ...(store.strategy ? { strategy: store.strategy } : {}) };
    }
    const allowed: string[] = [];
    for (const candidate of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const) {
      if (candidate !== method && this.tree.find(candidate, path)) allowed.push(candidate);
    }
    return allowed.length ? { allowed } : undefined;
  }
}

/**
 * `text` as a static part of a route path: find-my-way reads `:` as the start of a parameter, so a
 * configured prefix holding a port (`/127.0.0.1:9000/...`) must spell it `::`. Without this, two
 * `strategy host` blocks for one address on different ports collide at start-up.
 */
export function literalRoutePath(text: string): string {
  return text.replace(/:/g, '::');
}

/** Sends a short plain-text response (errors and simple statuses). */
export function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = text.endsWith('\n') ? text : `${text}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

/** Sends a JSON response. */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end((res.req as IncomingMessage | undefined)?.method === 'HEAD' ? undefined : body);
}
