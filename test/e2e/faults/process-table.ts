/**
 * The process table as the fault suites read it (from /proc): who descends from a server, and
 * which of the processes it left are still running.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

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
