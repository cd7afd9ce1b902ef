import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { globSync } from 'tinyglobby';

/**
 * A cache key from the contents of files matching `patterns` (relative to `cwd`): SHA-256 over
 * each regular file's relative path and bytes, in sorted path order. No match is an error, so a
 * typo never silently produces the key of an empty set.
 */
export async function hashFiles(patterns: string[], cwd: string): Promise<string> {
  if (patterns.length === 0) throw new Error('no file patterns given to hash');
  const files = globSync(patterns, { cwd, onlyFiles: true, dot: true, followSymbolicLinks: false }).sort();
  const regular: string[] = [];
  for (const file of files) {
    if ((await fs.lstat(path.join(cwd, file))).isFile()) regular.push(file);
  }
  if (regular.length === 0) throw new Error(`no files match ${patterns.join(', ')} in ${cwd}`);
  const hash = createHash('sha256');
  for (const file of regular) {
    hash.update(file);
    hash.update('\0');
    for await (const chunk of createReadStream(path.join(cwd, file))) hash.update(chunk as Buffer);
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** Key prefixes cachew clients add: platform and/or a time bucket (local time). */
export function keyPrefix(opts: { platform?: boolean; daily?: boolean; hourly?: boolean }, now = new Date()): string {
  const parts: string[] = [];
  if (opts.platform) parts.push(`${process.platform}-${process.arch}`);
  const pad = (n: number) => String(n).padStart(2, '0');
  const day = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  if (opts.daily) parts.push(day);
  if (opts.hourly) parts.push(`${day}-${pad(now.getHours())}`);
  return parts.map((p) => `${p}-`).join('');
}
