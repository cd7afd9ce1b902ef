import { ConfigError, loadConfig } from '../config/load.js';
import { resolveConfigSource } from '../config/source.js';
import { renderSchema } from '../config/render-schema.js';
import { allProviderSpecs, startServer } from './wiring.js';
import { missingTools } from './tools.js';
import { installLastResort } from '../server/last-resort.js';

/**
 * `hoard serve`: resolve and load the config, check system tools, start, and stop gracefully on
 * SIGTERM/SIGINT (a second signal exits at once). Returns the process exit code on start-up failure.
 */
export async function runServer(opts: { configPath?: string | undefined; schema?: boolean }): Promise<number> {
  const specs = allProviderSpecs();
  if (opts.schema) {
    process.stdout.write(renderSchema(specs));
    return 0;
  }
  const source = resolveConfigSource({ flag: opts.configPath, env: process.env, cwd: process.cwd() });
  let cfg;
  try {
    cfg = loadConfig({ ...source, specs, env: process.env, cwd: process.cwd() });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const line of err.problems) process.stderr.write(`hoard: config error: ${line}\n`);
      return 1;
    }
    throw err;
  }
  const missing = missingTools();
  if (missing.length) {
    for (const line of missing) process.stderr.write(`hoard: ${line}\n`);
    return 1;
  }
  let server;
  try {
    server = await startServer(cfg);
  } catch (err) {
    process.stderr.write(`hoard: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  installLastResort(server.logger);
  process.stderr.write(`hoard listening on ${server.url} (config: ${cfg.source})\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.stderr.write(`hoard: second ${signal}, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    server.logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`hoard: shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return new Promise<number>(() => undefined);
}
