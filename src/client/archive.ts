import { accessSync, constants, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { startChild } from '../util/process.js';

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
 * Directories that are not writable are made writable first (a previous extraction may have
 * left read-only trees) and their modes restored if extraction fails.
 */
export async function extractArchive(source: Readable, dir: string, opts: { threads?: number; signal?: AbortSignal } = {}): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const relaxed = await relaxReadOnlyDirs(dir);
  const zstd = startChild('zstd', ['-q', '-d', '-c'], { timeoutMs: ARCHIVE_DEADLINE_MS, signal: opts.signal, stdin: 'pipe' });
  const tar = startChild('tar', ['-xpf', '-', '-C', dir], { timeoutMs: ARCHIVE_DEADLINE_MS, signal: opts.signal, stdin: 'pipe', stdout: 'ignore' });
  try {
    await Promise.all([pipeline(source, zstd.child.stdin!), pipeline(zstd.child.stdout!, tar.child.stdin!).catch(ignoreEarlyExit), zstd.done, tar.done]);
  } catch (err) {
    zstd.kill();
    tar.kill();
    source.destroy();
    for (const [path, mode] of relaxed) await fs.chmod(path, mode).catch(() => undefined);
    throw new Error(`extracting into ${dir} failed: ${(err as Error).message}`);
  }
}

/**
 * tar exits as soon as it has read the end-of-archive record, and Node destroys a child's stdin
 * when the child exits; if that happens before our copy has seen zstd's EOF, the copy reports a
 * premature close. That alone is not a failure: the exit statuses of tar (which rejects a
 * truncated archive) and zstd (which rejects truncated or corrupt input) decide.
 */
function ignoreEarlyExit(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE' && err.code !== 'EPIPE') throw err;
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
