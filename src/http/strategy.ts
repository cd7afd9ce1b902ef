import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Cache } from '../cache/cache.js';
import type { GlobalConfig } from '../config/global-schema.js';
import type { GitHubTokenSource } from '../github/token-source.js';
import type { MetadataStore } from '../metadata/store.js';
import type { GitMirrorManager } from './git-mirrors.js';

/** Path parameters captured by the router (`:name` segments and `*` as key '*'). */
export type RouteParams = Record<string, string | undefined>;

/** A route handler. Errors it throws (or rejects with) become a logged 500. */
export type RouteHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  params: RouteParams,
  query: URLSearchParams,
) => void | Promise<void>;

/** HTTP methods a route can be registered for. GET routes also answer HEAD unless HEAD is registered. */
export type RouteMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'OPTIONS';

/** What a strategy uses to mount its routes (find-my-way path syntax: `/a/:b/*`). */
export interface RouteRegistry {
  /**
   * Registers `handler` for `path` (find-my-way syntax, matched against the decoded request
   * path). Handlers read the raw `req.url`, so the router refuses (400) a request whose raw path
   * does not literally start with the route's static prefix (`/gomod/`, `/git/`, …): a prefix
   * spelled with percent-escapes would match after decoding while a handler slicing the raw URL
   * by the prefix's length would read a different remainder (`/%65xample.com/x` → another
   * upstream host). `opts.rawPrefix` overrides that literal prefix, for routes registered in
   * decoded form whose configured prefix is itself percent-encoded.
   */
  on(methods: RouteMethod | RouteMethod[], path: string, handler: RouteHandler, opts?: RouteOptions): void;
  /**
   * Registers an interceptor: it sees every request before routing (and before the check that
   * the target is a path), and claims the ones it serves. Used where the request target or the
   * `Host` header, not the path, selects the strategy (absolute-form proxy requests, host-based
   * routing), so that a proxied `http://x/api/v1/...` can never reach hoard's own `/api` routes.
   */
  intercept(interceptor: Interceptor): void;
}

/**
 * Which requests of a route only trusted callers may make (`method`, and the decoded path the
 * router matched). The server's policy (authz.ts) applies it as it protects /api and /admin:
 * loopback by default. Lets a strategy protect some of its own paths without the server knowing
 * its protocol.
 */
export type TrustedOnlyRule = (method: string, path: string) => boolean;

/** Options of `RouteRegistry.on`. */
export interface RouteOptions {
  /** The literal raw prefix the request must start with (default: the route's static prefix). */
  rawPrefix?: string;
  /** Requests of this route that need a trusted caller (403 otherwise). */
  trustedOnly?: TrustedOnlyRule;
}

/** What an interceptor claims: the path the authorization policy judges, and the handler. */
export interface InterceptedRequest {
  /** Decoded path the policy judges (for a proxied URL, the target's path, as cachew does). */
  policyPath: string;
  handle(req: IncomingMessage, res: ServerResponse): void | Promise<void>;
  /** Set by the server: the strategy whose interceptor claimed the request. */
  strategy?: string;
}

/** Looks at a request before routing; returns a claim, or undefined to let routing proceed. */
export type Interceptor = (req: IncomingMessage) => InterceptedRequest | undefined;

/** Process-wide settings every strategy may read (resolved global config). */
export interface GlobalSettings {
  /** Absolute state directory. */
  state: string;
  /** Public base URL of this server, without trailing slash. */
  url: string;
  /** The global `git-clone {}` block, validated, every default applied by its schema. */
  'git-clone': GlobalConfig['git-clone'];
  /** The global `scheduler {}` block, validated, every default applied by its schema. */
  scheduler: GlobalConfig['scheduler'];
  /** GitHub App installation tokens (the `github-app` blocks); absent when none is configured. */
  githubTokens?: GitHubTokenSource | undefined;
}

/** Everything a strategy factory receives. */
export interface StrategyContext<C = Record<string, unknown>> {
  /** Validated block attributes (defaults applied). */
  config: C;
  /** The block label, e.g. the target URL of `strategy host "<url>"`. */
  label: string | undefined;
  /** The cache, already bound to the strategy's namespace. */
  cache: Cache;
  routes: RouteRegistry;
  logger: Logger;
  global: GlobalSettings;
  /** The shared metadata store (cross-replica coordination: ETag maps, generation claims). */
  metadata: MetadataStore;
  /**
   * What strategies created before this one offer to others. The git strategy is created first,
   * so every other strategy sees its mirrors here when a `strategy git` block is configured.
   */
  services?: StrategyServices;
}

/** Services one strategy offers the others (narrow interfaces, never a strategy's internals). */
export interface StrategyServices {
  /** The git strategy's mirrors; absent without a `strategy git` block. */
  gitMirrors?: GitMirrorManager;
}

/** One repository (or similar unit) a strategy keeps, as the status page and gauges show it. */
export interface RepositoryStatus {
  /** What clients name it by (an upstream URL); any characters, escaped by whoever renders it. */
  name: string;
  /** Lifecycle state, e.g. `empty`, `cloning`, `ready`. */
  state: string;
  /** Epoch ms of the last successful fetch or clone; undefined when none yet. */
  lastFetchMs?: number | undefined;
  /** Epoch ms the current snapshot was written; undefined when there is none. */
  snapshotMs?: number | undefined;
  /** Snapshot size in bytes, when there is one. */
  snapshotBytes?: number | undefined;
  /** Epoch ms a client last used it (orders the capped lists: most recent first). */
  lastUsedMs?: number | undefined;
}

/** What a strategy contributes to the status page and the per-repository gauges. */
export interface StatusSection {
  /** Its repositories, any order; the server sorts by recency and caps the list. */
  repositories?: RepositoryStatus[];
}

/** A running strategy. */
export interface Strategy {
  readonly name: string;
  /**
   * Status data for the status page (`GET /`) and the per-repository gauges. Called on every
   * page load and metrics scrape, so it must be cheap (memoise anything that does I/O).
   */
  status?(): Promise<StatusSection> | StatusSection;
  /** Readiness gate for `/_readiness` (e.g. git warm-up). Absent = always ready. */
  ready?(): boolean;
  /** Services this strategy offers the strategies created after it. */
  readonly services?: StrategyServices;
  /** Stop background work and wait for it; called once during shutdown. */
  close?(): Promise<void>;
}
