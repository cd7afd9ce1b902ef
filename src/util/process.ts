import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Readable } from 'node:stream';

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
 * Spawns `command` in its own process group (`detached`), with a deadline and an abort signal
 * that both kill the whole group, so grandchildren (git's pack-objects, ssh helpers) die too.
 */
export function startChild(command: string, args: string[], opts: ChildOptions): RunningChild {
  const limit = opts.stderrLimit ?? 8192;
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: [opts.stdin ?? 'ignore', opts.stdout ?? 'pipe', 'pipe'],
  };
  const child = spawn(command, args, spawnOpts);
  track(child);
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
      reject(new ChildProcessError(`${command} ${args[0] ?? ''} ${why}${tail ? `: ${tail}` : ''}`, code, stderrTail, killedBy));
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
