/**
 * `hoard serve` as a real child process, for tests that kill it with SIGKILL and start it again
 * on the same state directory, and helpers to read the process table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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

/** The compiled CLI when it is at least as new as the sources, otherwise the sources via tsx. */
export async function cliArgs(): Promise<string[]> {
  const dist = path.join(root, 'dist/src/cli/main.js');
  const built = await fs.stat(dist).then((s) => s.mtimeMs, () => 0);
  if (built > 0 && built >= (await newest(path.join(root, 'src')))) return [dist];
  return ['--import', 'tsx', path.join(root, 'src/cli/main.ts')];
}

/** A running `hoard serve`. */
export interface HoardProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  /** stderr so far (the JSON log). */
  log(): string;
  /** SIGKILL, and resolves once the process is gone. */
  kill9(): Promise<void>;
}

const started = new Set<ChildProcess>();

/**
 * Starts `hoard serve --config <config>` and resolves with its URL once it logs that it listens;
 * rejects with its log when it exits first.
 */
export async function startHoard(config: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<HoardProcess> {
  const args = await cliArgs();
  const child = spawn(process.execPath, [...args, 'serve', '--config', config], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  started.add(child);
  child.once('exit', () => started.delete(child));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-256 * 1024);
  });
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
    pid: child.pid!,
    child,
    log: () => stderr,
    kill9: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

/** Kills every hoard this module started (test cleanup). */
export async function killAllHoards(): Promise<void> {
  await Promise.all([...started].map(async (child) => {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }));
}

/** One row of the process table. */
export interface ProcessRow {
  pid: number;
  ppid: number;
  /** Clock ticks since boot: with the pid, names one process even across pid reuse. */
  startTime: string;
  comm: string;
  state: string;
  cmdline: string;
}

function readRow(pid: number): ProcessRow | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm is in parentheses and may contain spaces; the fields after it are space-separated.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, ppid: Number(fields[1]), state: fields[0] as string, startTime: fields[19] as string, comm, cmdline };
  } catch {
    return undefined;
  }
}

/** Every live process (zombies excluded: they hold no files and run nothing). */
export function processTable(): ProcessRow[] {
  const rows: ProcessRow[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const row = readRow(Number(name));
    if (row && row.state !== 'Z') rows.push(row);
  }
  return rows;
}

/** The descendants of `pid` (children, grandchildren, ...). */
export function descendants(pid: number): ProcessRow[] {
  const table = processTable();
  const out: ProcessRow[] = [];
  const parents = new Set([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const row of table) {
      if (parents.has(row.ppid) && !parents.has(row.pid)) {
        parents.add(row.pid);
        out.push(row);
        grew = true;
      }
    }
  }
  return out;
}

/** Those of `rows` that still run (same pid and start time, not a zombie). */
export function stillRunning(rows: ProcessRow[]): ProcessRow[] {
  return rows.filter((row) => {
    const now = readRow(row.pid);
    return now !== undefined && now.startTime === row.startTime && now.state !== 'Z';
  });
}

/** Polls `probe` every 20 ms until it returns a value other than undefined; fails after `limitMs`. */
export async function waitFor<T>(what: string, limitMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await sleep(20);
  }
}
