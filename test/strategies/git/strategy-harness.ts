import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { createMemoryCache } from '../../../src/cache/memory.js';
import { MemoryMetadataStore } from '../../../src/metadata/memory.js';
import type { GlobalSettings, RouteHandler, Strategy } from '../../../src/http/strategy.js';
import { gitStrategyProvider } from '../../../src/strategies/git/strategy.js';
import { globalBlockSchemas } from '../../../src/config/global-schema.js';

/** The git strategy alone behind a plain HTTP server, with the internals tests inspect. */
export interface GitStrategyHarness {
  url: string;
  stateDir: string;
  strategy: Strategy & { readonly repositoryCount: number };
  /** Log records (debug and up) the strategy wrote. */
  logs: Array<Record<string, unknown>>;
  /** Stops the strategy and the listener; removes the state dir unless it was passed in. */
  close(): Promise<void>;
}

/**
 * Starts `strategy git {}` directly (no full server), so a test can restart it on the same state
 * directory and read `repositoryCount`. `git` holds strategy attributes, `clone` the `git-clone`
 * block (durations in milliseconds), `scheduler` the scheduler block.
 */
export async function startGitStrategy(opts: {
  git?: Record<string, unknown>;
  clone?: Partial<GlobalSettings['git-clone']>;
  scheduler?: Partial<GlobalSettings['scheduler']>;
  stateDir?: string;
}): Promise<GitStrategyHarness> {
  const ownsState = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-git-harness-')));
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const cache = createMemoryCache({ limitBytes: 64 << 20, maxTtlMs: 3_600_000 });
  const metadata = new MemoryMetadataStore();
  let handler: RouteHandler | undefined;
  const strategy = (await gitStrategyProvider.create({
    config: gitStrategyProvider.spec.schema.parse(opts.git ?? {}),
    label: undefined,
    cache: cache.namespace('git'),
    routes: {
      on: (_methods, _path, h) => {
        handler = h;
      },
      intercept: () => undefined,
    },
    logger,
    // The blocks' schemas give every default, as the loader would; the test's values (durations
    // already in milliseconds) go over them.
    global: {
      state: stateDir,
      url: 'http://127.0.0.1',
      'git-clone': { ...globalBlockSchemas['git-clone'].parse({ 'mirror-root': path.join(stateDir, 'git-mirrors') }), ...opts.clone },
      scheduler: { ...globalBlockSchemas.scheduler.parse({}), ...opts.scheduler },
    },
    metadata,
  })) as GitStrategyHarness['strategy'];
  const server = http.createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    Promise.resolve(handler?.(req, res, {}, query)).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500).end(err.message);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stateDir,
    strategy,
    logs,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await strategy.close?.();
      await cache.close();
      await metadata.close();
      if (ownsState) await fs.rm(stateDir, { recursive: true, force: true });
    },
  };
}
