import { accessSync, constants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startChild, type RunningChild } from '../util/process.js';

/** Archive children may run for a long time on big trees, but never forever. */
const ARCHIVE_DEADLINE_MS = 6 * 60 * 60 * 1000;

/**
 * Streams `tar | zstd` of `paths` (relative to `dir`) as a `.tar.zst` readable by plain
 * `tar --zstd -xf` and `zstd -d | tar -x`. The returned `done` rejects with the failing tool's
 * stderr; callers must await it and abort their upload if it fails.
 */
export function createArchive(dir: string, paths: string[], opts: { exclude?: string[]; threads?: number; signal?: AbortSignal }): { stream: Readable; done: Promise<void> } {
  const excludes = (opts.exclude ?? []).map((p) => `--exclude=${p}`);
  const tar = startChild('tar', ['-cpf', '-', '-C', dir, ...excludes, '--', ...(paths.length ? paths : ['.'])], { timeoutMs: ARCHIVE_DEADLINE_MS, signal: opts.signal });
  const [compressor, compressorArgs] = compressorCommand(opts.threads ?? 0);
  const zstd = startChild(compressor, compressorArgs, { timeoutMs: ARCHIVE_DEADLINE_MS, signal: opts.signal, stdin: 'pipe' });
  const piping = pipeline(tar.child.stdout!, zstd.child.stdin!);
  const done = Promise.all([tar.done, zstd.done, piping]).then(
    () => undefined,
    (err: Error) => {
      tar.kill();
      zstd.kill();
      throw new Error(`archiving ${dir} failed: ${err.message}`);
    },
  );
  done.catch(() => zstd.child.stdout?.destroy(new Error('archive failed')));
  return { stream: zstd.child.stdout!, done };
}

/** True when `tool` is an executable somewhere on PATH (checked once per process). */
const onPath = new Map<string, boolean>();
function hasTool(tool: string): boolean {
  let found = onPath.get(tool);
  if (found === undefined) {
    found = (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
      try {
        accessSync(path.join(dir, tool), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    onPath.set(tool, found);
  }
  return found;
}

/**
 * pzstd writes independent frames in parallel, so decompression parallelises too; plain
 * `zstd -T` is the fallback when pzstd is not installed. Both outputs are ordinary zstd.
 * `threads` 0 means all cores.
 */
function compressorCommand(threads: number): [string, string[]] {
  if (hasTool('pzstd')) return ['pzstd', ['-q', '-c', '-3', ...(threads > 0 ? ['-p', String(threads)] : [])]];
  return ['zstd', ['-q', '-c', `-T${threads}`, '-3']];
}

/**
 * Extracts a `.tar.zst` stream into `dir` (created when missing) with `zstd -dc | tar -xpf -`.
 * zstd's output is handed to tar as its stdin descriptor, so the decompressed bytes (the larger
 * side) never pass through this process: on a 2-core machine that copy cost as much CPU as
 * the download itself. Directories that are not writable are made writable first (a previous
 * extraction may have left read-only trees) and their modes restored if extraction fails.
 * `threads` 0 means choose by core count (see `decompressorCommand`).
 */
export async function extractArchive(source: Readable, dir: string, opts: { threads?: number; signal?: AbortSignal } = {}): Promise<void> {
  let relaxed: Array<[string, number]> = [];
  let zstd: RunningChild | undefined;
  let tar: RunningChild | undefined;
  try {
    await fs.mkdir(dir, { recursive: true });
    relaxed = await relaxReadOnlyDirs(dir);
    const [decompressor, decompressorArgs] = decompressorCommand(opts.threads ?? 0);
    zstd = startChild(decompressor, decompressorArgs, { timeoutMs: ARCHIVE_DEADLINE_MS, signal: opts.signal, stdin: 'pipe' });
    tar = startChild('tar', ['-xpf', '-', '-C', dir], { timeoutMs: ARCHIVE_DEADLINE_MS, signal: opts.signal, stdin: zstd.child.stdout!, stdout: 'ignore' });
    // Our copy of the pipe's read end must go, or zstd would block instead of failing when tar
    // dies early (a reader would still exist).
    zstd.child.stdout!.destroy();
    const feeding = pipeline(source, zstd.child.stdin!).catch((err: NodeJS.ErrnoException) => {
      // zstd closing its input early (it rejected the data, or was killed) is reported by its
      // exit status below, which says more than EPIPE does.
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw err;
    });
    const [fed, unzipped, untarred] = await Promise.allSettled([feeding, zstd.done, tar.done]);
    // tar's complaint ("unexpected EOF", "cannot open") is the useful one when both failed.
    for (const outcome of [untarred, unzipped, fed]) if (outcome.status === 'rejected') throw outcome.reason;
  } catch (err) {
    zstd?.kill();
    tar?.kill();
    source.destroy();
    for (const [path, mode] of relaxed) await fs.chmod(path, mode).catch(() => undefined);
    throw new Error(`extracting into ${dir} failed: ${(err as Error).message}`);
  }
}

/**
 * pzstd decompresses the independent frames pzstd wrote in parallel, but on two cores tar's
 * file writes already take the second core and pzstd measured slower (0.86 s vs 0.69 s for a
 * 229 MB snapshot), so it is used only with more than two threads available.
 */
function decompressorCommand(threads: number): [string, string[]] {
  const n = threads > 0 ? threads : os.availableParallelism();
  if (n > 2 && hasTool('pzstd')) return ['pzstd', ['-q', '-d', '-c', '-p', String(n)]];
  return ['zstd', ['-q', '-d', '-c']];
}

async function relaxReadOnlyDirs(root: string): Promise<Array<[string, number]>> {
  const changed: Array<[string, number]> = [];
  const visit = async (dir: string, depth: number): Promise<void> => {
    const st = await fs.stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) return;
    if ((st.mode & 0o200) === 0) {
      await fs.chmod(dir, st.mode | 0o700);
      changed.push([dir, st.mode & 0o7777]);
    }
    if (depth > 64) return;
    for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory()) await visit(`${dir}/${entry.name}`, depth + 1);
    }
  };
  await visit(root, 0);
  return changed;
}
