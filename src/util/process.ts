import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';

/** How a child must be run: every child gets its own process group and a deadline. */
export interface ChildOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill the whole group after this many milliseconds. */
  timeoutMs: number;
  /** Kill the whole group when this aborts (client disconnect, shutdown). */
  signal?: AbortSignal | undefined;
  /**
   * 'pipe' to write to the child, 'ignore', or another child's output stream to read from
   * directly (the descriptor is shared, so the bytes never pass through this process).
   */
  stdin?: 'pipe' | 'ignore' | Readable;
  stdout?: 'pipe' | 'ignore';
  /** Bytes of stderr kept for error messages. */
  stderrLimit?: number;
}

/** A started child with a promise for its end. */
export interface RunningChild {
  child: ChildProcess;
  /** Resolves on exit 0; rejects with a ChildProcessError otherwise (or on timeout/abort). */
  done: Promise<void>;
  /** Kills the process group now. */
  kill(reason?: string): void;
  /** The tail of stderr so far. */
  stderr(): string;
}

/** A child that failed, timed out or was cancelled; `message` includes the tail of stderr. */
export class ChildProcessError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderrText: string,
    readonly killedBy: 'timeout' | 'abort' | undefined,
  ) {
    super(message);
    this.name = 'ChildProcessError';
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  // The group is killed even when its leader has exited: grandchildren (git's pack-objects, a
  // shell's pipeline) may still hold our pipes open, and `done` waits for those to close.
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * The word that names what a child was doing, for error messages: the first argument that is not
 * an option or an option's value (`git -c k=v -C dir fetch …` → `fetch`, not `-c`).
 */
export function subcommandOf(args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '-c' || arg === '-C') {
      i++;
      continue;
    }
    if (!arg.startsWith('-')) return arg;
  }
  return args[0] ?? '';
}

/** Children still running, killed if the process exits (never leave orphans behind). */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of live) killGroup(c);
    });
  }
}

/**
 * The parent-death watchdog. The exit hook above never runs when this process is killed with
 * SIGKILL (or crashes in native code), and children in their own process groups then run on:
 * a `git clone` or `tar | zstd` keeps writing into scratch space the next start wants to reuse.
 * So one small helper process holds the read end of a pipe whose only write end is ours (Node
 * opens pipes close-on-exec, so no child inherits it). Whatever way we die, the kernel closes
 * that end, the helper reads EOF and SIGKILLs what we left: every process group we registered
 * (`+pgid` / `-pgid` lines, kept current so a reused pgid is never hit), and on Linux every
 * process whose environment carries our marker. The marker is inherited by grandchildren
 * (git's index-pack and pack-objects, zstd under tar) and is set before the child's first
 * instruction, so it also covers a child that had not yet been registered when we died.
 * The helper lives in its own process group and ignores terminal signals, so a Ctrl-C that
 * reaches our group cannot kill it before it has done its job.
 */
const WATCHDOG_SOURCE = `
const fs = require('fs');
const marker = process.argv[1];
const groups = new Set();
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGPIPE']) process.on(s, () => {});
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text) => {
  const lines = (pending + text).split('\\n');
  pending = lines.pop();
  for (const line of lines) {
    const group = Number(line.slice(1));
    if (!Number.isInteger(group) || group <= 1) continue;
    if (line[0] === '+') groups.add(group);
    else groups.delete(group);
  }
});
function kill(target) {
  try { process.kill(target, 'SIGKILL'); return true; } catch { return false; }
}
function reap() {
  for (let pass = 0; pass < 10; pass++) {
    let found = 0;
    for (const group of groups) if (kill(-group)) found++;
    groups.clear();
    let pids = [];
    try { pids = fs.readdirSync('/proc').filter((name) => /^[0-9]+$/.test(name)); } catch {}
    for (const name of pids) {
      const pid = Number(name);
      if (pid === process.pid) continue;
      let environ;
      try { environ = fs.readFileSync('/proc/' + name + '/environ', 'latin1'); } catch { continue; }
      if (!environ.split('\\0').includes(marker)) continue;
      kill(-pid);
      if (kill(pid)) found++;
    }
    if (found === 0) break;
  }
  process.exit(0);
}
process.stdin.on('end', reap);
process.stdin.on('error', reap);
`;

/** Environment variable that marks every child (and its descendants) as ours; see the watchdog. */
export const LIFELINE_ENV = 'HOARD_LIFELINE';
const lifelineMarker = `${process.pid}-${randomBytes(8).toString('hex')}`;
let watchdog: ChildProcess | undefined;

/** Starts the watchdog on first use; a dead one is replaced on the next spawn. */
function watchdogPipe(): Writable | undefined {
  if (watchdog?.stdin?.writable) return watchdog.stdin;
  try {
    const helper = spawn(process.execPath, ['-e', WATCHDOG_SOURCE, `${LIFELINE_ENV}=${lifelineMarker}`], {
      // Without NODE_OPTIONS (a test runner's --import hooks) and without the marker itself.
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
      detached: true,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    helper.once('error', () => undefined);
    helper.once('exit', () => {
      if (watchdog === helper) watchdog = undefined;
    });
    helper.stdin?.on('error', () => undefined);
    // Neither the helper nor its pipe may keep this process alive.
    helper.unref();
    (helper.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    watchdog = helper;
    return helper.stdin ?? undefined;
  } catch {
    return undefined;
  }
}

/** Tells the watchdog to kill `pgid` should we die (`+`), or that the group is gone (`-`). */
function registerGroup(sign: '+' | '-', pgid: number): void {
  const pipe = sign === '+' ? watchdogPipe() : watchdog?.stdin;
  if (pipe?.writable) pipe.write(`${sign}${pgid}\n`);
}

/** The watchdog's pid (tests check that it is running and that it reaps). */
export function watchdogPid(): number | undefined {
  return watchdog?.pid;
}

/**
 * Spawns `command` in its own process group (`detached`), with a deadline and an abort signal
 * that both kill the whole group, so grandchildren (git's pack-objects, ssh helpers) die too.
 */
export function startChild(command: string, args: string[], opts: ChildOptions): RunningChild {
  const limit = opts.stderrLimit ?? 8192;
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd,
    env: { ...(opts.env ?? process.env), [LIFELINE_ENV]: lifelineMarker },
    detached: true,
    stdio: [opts.stdin ?? 'ignore', opts.stdout ?? 'pipe', 'pipe'],
  };
  const child = spawn(command, args, spawnOpts);
  track(child);
  const pgid = child.pid;
  if (pgid !== undefined) {
    registerGroup('+', pgid);
    child.once('close', () => registerGroup('-', pgid));
  }
  let stderrTail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-limit);
  });
  let killedBy: 'timeout' | 'abort' | undefined;
  const timer = setTimeout(() => {
    if (closed) return;
    killedBy = 'timeout';
    killGroup(child);
  }, opts.timeoutMs);
  timer.unref();
  // Once the child and its pipes are closed, its pid (and group id) may be reused by an
  // unrelated process: from then on kill() must do nothing.
  let closed = false;
  child.once('close', () => (closed = true));
  const onAbort = () => {
    if (closed) return;
    killedBy ??= 'abort';
    killGroup(child);
  };
  if (opts.signal?.aborted) queueMicrotask(onAbort);
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new ChildProcessError(`${command}: ${err.message}`, null, stderrTail, killedBy));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (code === 0 && !killedBy) return resolve();
      const why =
        killedBy === 'timeout'
          ? `timed out after ${opts.timeoutMs} ms`
          : killedBy === 'abort'
            ? 'cancelled'
            : signal
              ? `killed by ${signal}`
              : `exited with code ${code}`;
      const tail = stderrTail.trim().split('\n').slice(-3).join(' | ');
      reject(new ChildProcessError(`${command} ${subcommandOf(args)} ${why}${tail ? `: ${tail}` : ''}`, code, stderrTail, killedBy));
    });
  });
  done.catch(() => undefined);
  return { child, done, kill: () => onAbort(), stderr: () => stderrTail };
}

/** Runs a child to completion and returns its stdout (bounded by `maxBytes`). */
export async function runChild(command: string, args: string[], opts: ChildOptions & { maxBytes?: number }): Promise<string> {
  const max = opts.maxBytes ?? 16 << 20;
  const running = startChild(command, args, { ...opts, stdout: 'pipe' });
  const chunks: Buffer[] = [];
  let size = 0;
  running.child.stdout?.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > max) {
      running.kill();
      return;
    }
    chunks.push(chunk);
  });
  await running.done;
  if (size > max) throw new Error(`${command} produced more than ${max} bytes of output`);
  return Buffer.concat(chunks).toString();
}
