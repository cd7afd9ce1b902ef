/**
 * `hoard serve` as a real child process for end-to-end tests: its own process group (so a stop
 * takes anything it spawned along), the compiled CLI when it is fresh, else the sources via tsx.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

async function newest(dir: string): Promise<number> {
  let latest = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? await newest(full) : (await fs.stat(full)).mtimeMs);
  }
  return latest;
}

/** The compiled CLI when it is at least as new as the sources (fast start), else the sources through tsx. */
async function cliArgs(): Promise<string[]> {
  const dist = path.join(root, 'dist/src/cli/main.js');
  const built = await fs.stat(dist).then((s) => s.mtimeMs, () => 0);
  if (built > 0 && built >= (await newest(path.join(root, 'src')))) return [dist];
  return ['--import', 'tsx', path.join(root, 'src/cli/main.ts')];
}

/** A running `hoard serve`. */
export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** Its stderr so far (the JSON log). */
  log(): string;
  /** Exit code, or null while it runs (a signal counts as exited: -1). */
  exitCode(): number | null;
  /** Kills the process group and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Writes `hcl` (after `state`, `bind` and `log`) to `<dir>/hoard.hcl` and starts `hoard serve` on
 * it; resolves once it listens, rejects with its log if it exits first. `metrics` replaces the
 * body of the default `metrics { port = 0 }` block; `env` is added to the child's environment.
 */
export async function startServeProcess(dir: string, hcl: string, opts: { logLevel?: string; metrics?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ServeProcess> {
  const state = path.join(dir, 'state');
  const config = path.join(dir, 'hoard.hcl');
  await fs.writeFile(config, `state = "${state}"\nbind = "127.0.0.1:0"\nmetrics {\n${opts.metrics ?? 'port = 0'}\n}\nlog { level = "${opts.logLevel ?? 'info'}" }\n${hcl}`);
  const child = spawn(process.execPath, [...(await cliArgs()), 'serve', '--config', config], { cwd: root, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-1024 * 1024);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hoard did not start: ${stderr}`)), 120_000);
    const onData = () => {
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (!m) return;
      clearTimeout(timer);
      child.stderr!.off('data', onData);
      resolve(m[1] as string);
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`hoard exited (${code ?? signal}) before listening: ${stderr}`));
    });
  });
  return {
    url,
    child,
    log: () => stderr,
    exitCode: () => child.exitCode ?? (child.signalCode ? -1 : null),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      await exited;
    },
  };
}
