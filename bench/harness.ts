import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

/** A hoard server running as a real child process (compiled dist when present). */
export interface HoardProcess {
  url: string;
  state: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

const root = path.resolve(new URL('..', import.meta.url).pathname);

/** Starts `hoard serve` with `hcl` (state and bind are added) and waits until it listens. */
export async function startHoard(hcl: string): Promise<HoardProcess> {
  const state = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-bench-'));
  const config = path.join(state, 'hoard.hcl');
  await fs.writeFile(config, `state = "${state}"\nbind = "127.0.0.1:0"\nmetrics { port = 0 }\nlog { level = "warn" }\n${hcl}`);
  const dist = path.join(root, 'dist/src/cli/main.js');
  const haveDist = await fs.stat(dist).then(() => true, () => false);
  const args = haveDist ? [dist, 'serve', '--config', config] : ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'serve', '--config', config];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hoard did not start: ${stderr}`)), 30_000);
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c;
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    child.once('exit', (code) => reject(new Error(`hoard exited ${code}: ${stderr}`)));
  });
  return {
    url,
    state,
    child,
    stop: async () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      await fs.rm(state, { recursive: true, force: true });
    },
  };
}

/** True when `cmd` runs. */
export function have(cmd: string, args = ['--version']): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

/**
 * Requests per second for GET `url` with `connections` keep-alive connections for `seconds`.
 * Uses wrk when installed (less client overhead); otherwise a Node loop (then the client shares
 * the 2 cores with the server, so absolute numbers are lower but ratios stay comparable).
 */
export async function measureRps(url: string, seconds: number, connections = 32): Promise<{ rps: number; tool: string }> {
  if (have('wrk', ['--version']) || spawnSync('wrk', ['-v']).status !== null) {
    const out = spawnSync('wrk', ['-t2', `-c${connections}`, `-d${seconds}s`, url], { encoding: 'utf8' });
    const m = /Requests\/sec:\s+([\d.]+)/.exec(out.stdout ?? '');
    if (m) return { rps: Number(m[1]), tool: 'wrk' };
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let done = 0;
  const until = Date.now() + seconds * 1000;
  const loop = async () => {
    while (Date.now() < until) {
      await new Promise<void>((resolve, reject) => {
        http.get(url, { agent }, (res) => {
          res.resume();
          res.on('end', () => {
            done++;
            resolve();
          });
        }).on('error', reject);
      });
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  agent.destroy();
  return { rps: done / seconds, tool: 'node http loop' };
}

/** Wall time of `fn` in seconds. */
export async function time(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}
