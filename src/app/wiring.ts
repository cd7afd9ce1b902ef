import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Cache } from '../cache/cache.js';
import { cacheProviders } from '../cache/registry.js';
import type { GlobalConfig, LoadedConfig } from '../config/load.js';
import type { ProviderSpec } from '../config/provider.js';
import { metadataProviders } from '../metadata/registry.js';
import type { MetadataStore } from '../metadata/store.js';
import { mountObjectApi } from '../strategies/api/object-api.js';
import { strategyProviders } from '../strategies/registry.js';
import type { TrustedRemote } from '../server/authz.js';
import { answerAndClose } from '../http/answer-and-close.js';
import { BodyIncompleteError, BodyTooLargeError, readBoundedBody } from '../http/read-body.js';
import { createHttpServer } from '../server/http-server.js';
import { createAuthorizer } from '../server/policy/authorizer.js';
import { LOG_LEVELS, checkLogHeaders, createLogger } from '../server/logging.js';
import { mountProfiling } from '../server/profiling.js';
import { ServerMetrics } from '../server/metrics.js';
import { startTelemetry } from '../server/telemetry/start.js';
import { Router, sendText } from '../http/router.js';
import type { Strategy, StrategyServices } from '../http/strategy.js';
import { createTieredCache } from '../cache/tiered.js';
import { singleTierCache } from '../cache/single.js';
import { createGitHubAppTokens } from '../github/app-tokens.js';
import { installTelemetry } from '../util/telemetry.js';
import { RecentErrors } from '../server/status/recent-errors.js';
import { allRepositories } from '../server/status/data.js';
import { mountStatusPage } from '../server/status/route.js';

/** Every provider spec the config loader must know. */
export function allProviderSpecs(): ProviderSpec[] {
  return [...cacheProviders.map((p) => p.spec), ...metadataProviders.map((p) => p.spec), ...strategyProviders.map((p) => p.spec)];
}

/** A started server. */
export interface RunningServer {
  url: string;
  port: number;
  metricsPort: number | undefined;
  logger: Logger;
  cache: Cache;
  /** Graceful stop: readiness 503, delay, stop accepting, drain, close strategies and caches. */
  close(): Promise<void>;
}

/** Options for tests and embedding. */
export interface StartOptions {
  logger?: Logger;
  /** Overrides `bind` (tests pass port 0). */
  listen?: { host: string; port: number };
  /**
   * Which remote addresses the default policy trusts (default: loopback). Tests, which can only
   * connect over loopback, pass `() => false` to be judged as a remote caller would be.
   */
  trustedRemote?: TrustedRemote;
  /** Where the logger hoard builds writes (default: stderr); ignored when `logger` is given. */
  logDestination?: NodeJS.WritableStream;
}

function splitBind(bind: string): { host: string; port: number } {
  const at = bind.lastIndexOf(':');
  const host = bind.slice(0, at).replace(/^\[|\]$/g, '') || '0.0.0.0';
  const port = Number(bind.slice(at + 1));
  if (at === -1 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid bind address ${JSON.stringify(bind)}: use host:port`);
  return { host, port };
}

/** Builds caches, metadata, routes and strategies from a loaded config and starts listening. */
export async function startServer(cfg: LoadedConfig, opts: StartOptions = {}): Promise<RunningServer> {
  const global: GlobalConfig = cfg.global;
  // The status page's recent errors come from the logger hoard builds (an injected one is the caller's).
  const recentErrors = opts.logger ? undefined : new RecentErrors();
  const logger = opts.logger ?? createLogger({ level: global.log.level, json: global.log.json, remap: global.log.remap, ...(recentErrors ? { recentErrors } : {}), ...(opts.logDestination ? { destination: opts.logDestination } : {}) });
  checkLogHeaders(global.log.headers);
  if (!global.log.json && Object.keys(global.log.remap).length) logger.warn('log { remap } renames fields of JSON logs only; set json = true for it to apply');
  const env = { state: global.state, s3: global.s3, logger };
  const closers: Array<() => Promise<void>> = [];
  const strategies: Strategy[] = [];
  let cache: Cache | undefined;
  // Before any strategy or cache exists, so every layer below reports into this server's registry.
  const metrics = new ServerMetrics(global.metrics['service-name']);
  const uninstallTelemetry = installTelemetry(metrics.strategy);
  closers.push(async () => uninstallTelemetry());

  try {
    const tiers: Cache[] = [];
    for (const block of cfg.providers.filter((p) => p.kind === 'cache')) {
      const provider = cacheProviders.find((p) => p.spec.name === block.name);
      if (!provider) throw new Error(`${block.file}:${block.line}: unknown cache ${block.name}`);
      const tier = await provider.create(block.config, env);
      tiers.push(tier);
      closers.push(() => tier.close());
    }
    const metadataBlock = cfg.providers.find((p) => p.kind === 'metadata');
    const metadataProvider = metadataProviders.find((p) => p.spec.name === metadataBlock?.name);
    if (!metadataBlock || !metadataProvider) throw new Error('expected a metadata backend');
    const metadata: MetadataStore = await metadataProvider.create(metadataBlock.config, env);
    closers.push(() => metadata.close());
    metrics.strategy.watchTiers(tiers);
    cache = tiers.length === 1 ? singleTierCache(tiers[0] as Cache, metrics.strategy) : createTieredCache(tiers, metadata, metrics.strategy);
    logger.info({ cache: String(cache), metadata: String(metadata) }, 'storage ready');

    const router = new Router();
    const telemetry = await startTelemetry({ metrics: global.metrics, registry: metrics.registry, env: process.env, logger });
    if (telemetry) closers.push(() => telemetry.shutdown());
    let shuttingDown = false;

    router.on('GET', '/_liveness', (_req, res) => sendText(res, 200, 'OK'));
    router.on('GET', '/_readiness', (_req, res) => {
      if (shuttingDown) return sendText(res, 503, 'shutting down');
      if (!strategies.every((s) => s.ready?.() ?? true)) return sendText(res, 503, 'warming up');
      sendText(res, 200, 'OK');
    });
    router.on('GET', '/admin/log/level', (_req, res) => sendText(res, 200, logger.level));
    mountProfiling(router);
    router.on(['PUT', 'POST'], '/admin/log/level', async (req, res, _params, query) => {
      let level = query.get('level') ?? undefined;
      if (!level) {
        let raw: Buffer;
        try {
          raw = await readBoundedBody(req, 1024);
        } catch (err) {
          if (err instanceof BodyTooLargeError) return answerAndClose(req, res, 413, 'request body too large (at most 1024 bytes)');
          if (err instanceof BodyIncompleteError) return;
          throw err;
        }
        const body = raw.toString().trim();
        level = new URLSearchParams(body).get('level') ?? body;
      }
      if (!(LOG_LEVELS as readonly string[]).includes(level)) {
        return sendText(res, 400, `invalid level: ${JSON.stringify(level)} (valid: ${LOG_LEVELS.join(', ')})`);
      }
      logger.level = level;
      logger.warn({ level }, 'log level changed');
      sendText(res, 200, level);
    });

    mountObjectApi(router.forStrategy('api'), cache, logger.child({ strategy: 'api' }));
    metrics.strategy.watchRepositories(() => allRepositories(strategies));
    mountStatusPage(router, { strategies, metrics: metrics.strategy, recentErrors });

    // Keys are read and checked here, before any strategy starts: a bad key file stops the start.
    const githubTokens = createGitHubAppTokens(global['github-app'], { logger: logger.child({ component: 'github-app' }) });

    const services: StrategyServices = {};
    // Strategies offering services (git's mirrors) are created first; the rest keep config order.
    const strategyBlocks = cfg.providers.filter((p) => p.kind === 'strategy');
    const offersServices = (name: string) => name === 'git';
    for (const block of [...strategyBlocks.filter((b) => offersServices(b.name)), ...strategyBlocks.filter((b) => !offersServices(b.name))]) {
      const provider = strategyProviders.find((p) => p.spec.name === block.name);
      if (!provider) throw new Error(`${block.file}:${block.line}: unknown strategy ${block.name}`);
      const strategy = await provider.create({
        config: block.config,
        label: block.label,
        cache: cache.namespace(block.name),
        routes: router.forStrategy(block.name),
        logger: logger.child({ strategy: block.name }),
        global: { state: global.state, url: global.url, 'git-clone': global['git-clone'], scheduler: global.scheduler, githubTokens },
        metadata,
        services,
      });
      strategies.push(strategy);
      Object.assign(services, strategy.services);
    }

    const authorizer = await createAuthorizer(global.opa, {
      trusted: opts.trustedRemote,
      onTestReport: (report) => logger.info({ report }, 'opa: policy tests passed'),
    });
    if (authorizer.kind === 'opa') logger.info('opa: enforcing the configured policy on every request');
    const server = createHttpServer({ router, logger, metrics, authorizer, logHeaders: global.log.headers });
    const { host, port } = opts.listen ?? splitBind(global.bind);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = (server.address() as AddressInfo).port;
    let metricsServer: { port: number; close(): Promise<void> } | undefined;
    if (global.metrics['enable-prometheus'] && global.metrics.port !== 0) {
      try {
        metricsServer = await metrics.listen(global.metrics.bind, global.metrics.port);
      } catch (err) {
        logger.warn({ err }, `metrics listener on ${global.metrics.bind}:${global.metrics.port} failed; continuing without /metrics`);
      }
    }
    const url = opts.listen || port === 0 ? `http://${host.includes(':') ? `[${host}]` : host}:${bound}` : global.url;
    logger.info({ url, metricsPort: metricsServer?.port }, 'hoard listening');

    let closing: Promise<void> | undefined;
    const finalCache = cache;
    return {
      url,
      port: bound,
      metricsPort: metricsServer?.port,
      logger,
      cache: finalCache,
      close: () =>
        (closing ??= (async () => {
          shuttingDown = true;
          const delay = opts.listen ? 0 : global['shutdown-readiness-delay'];
          if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
          const drained = new Promise<void>((resolve) => server.close(() => resolve()));
          server.closeIdleConnections();
          const deadline = setTimeout(() => server.closeAllConnections(), global['shutdown-timeout']);
          await drained;
          clearTimeout(deadline);
          for (const strategy of strategies.reverse()) await strategy.close?.().catch((err: unknown) => logger.error({ err }, 'strategy close failed'));
          await metricsServer?.close();
          for (const close of closers.reverse()) await close().catch(() => undefined);
          logger.info('hoard stopped');
          logger.flush?.();
        })()),
    };
  } catch (err) {
    for (const strategy of strategies) await strategy.close?.().catch(() => undefined);
    for (const close of closers.reverse()) await close().catch(() => undefined);
    throw err;
  }
}
