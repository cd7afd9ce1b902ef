import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * A fresh name under `root`: `<root>/<prefix><12 hex digits><ext>`. Nothing is created; 48 random
 * bits make a clash with a concurrent caller (or a leftover of an earlier run) vanishingly
 * unlikely, and callers that must be sure open the result exclusively (`wx`, rename onto it).
 */
export function scratchPath(root: string, prefix = '', ext = ''): string {
  return path.join(root, `${prefix}${randomBytes(6).toString('hex')}${ext}`);
}

/**
 * Runs `fn` with a newly created, empty directory under `root` (created too if missing) and
 * removes the directory with everything in it when `fn` settles, whether it resolved, threw or
 * gave up on an abort. When `fn` failed, a failure to remove never replaces its error; when `fn`
 * succeeded, a failed removal is thrown (the caller would otherwise leak the directory unseen).
 */
export async function withScratchDir<T>(root: string, prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  await fs.mkdir(root, { recursive: true });
  const dir = await fs.mkdtemp(path.join(root, prefix));
  return await removedAfter(dir, () => fn(dir));
}

/**
 * Runs `fn` with a fresh {@link scratchPath} (nothing created: `fn` writes a file or a directory
 * there) and removes whatever is at that path when `fn` settles, with the error rules of
 * {@link withScratchDir}.
 */
export async function withScratchPath<T>(root: string, prefix: string, ext: string, fn: (file: string) => Promise<T>): Promise<T> {
  const file = scratchPath(root, prefix, ext);
  return await removedAfter(file, () => fn(file));
}

/** Removes a scratch file or directory tree; a path that is already gone is no error. */
export async function removeScratch(target: string): Promise<void> {
  await fs.rm(target, { recursive: true, force: true });
}

async function removedAfter<T>(target: string, fn: () => Promise<T>): Promise<T> {
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    // The caller needs fn's own error; a removal failure on top of it would only hide it.
    await removeScratch(target).catch(() => undefined);
    throw err;
  }
  await removeScratch(target);
  return result;
}
