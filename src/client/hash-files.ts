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

/** Node's `process.platform` names that differ from Go's GOOS. */
const GOOS: Partial<Record<string, string>> = { win32: 'windows', sunos: 'solaris' };

/** Node's `process.arch` names that differ from Go's GOARCH (little-endian where Go says so). */
const GOARCH: Partial<Record<string, string>> = { x64: 'amd64', ia32: '386', mipsel: 'mipsle', mips64el: 'mips64le', ppc64: 'ppc64le' };

/**
 * The platform as a Go client spells it (`linux-amd64`, `darwin-arm64`, `windows-386`), so a key
 * saved by cachew's Go CLI and one saved by hoard on the same machine are the same key.
 */
export function goPlatform(platform: string = process.platform, arch: string = process.arch): string {
  return `${GOOS[platform] ?? platform}-${GOARCH[arch] ?? arch}`;
}

/**
 * Key prefixes cachew clients add (reference §6.2): the time bucket outermost, then the platform,
 * each followed by `-`, e.g. `2026-07-23-linux-amd64-` + key. Dates are local time.
 */
export function keyPrefix(opts: { platform?: boolean; daily?: boolean; hourly?: boolean }, now = new Date(), platform = goPlatform()): string {
  const parts: string[] = [];
  const pad = (n: number) => String(n).padStart(2, '0');
  const day = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  if (opts.hourly) parts.push(`${day}-${pad(now.getHours())}`);
  else if (opts.daily) parts.push(day);
  if (opts.platform) parts.push(platform);
  return parts.map((p) => `${p}-`).join('');
}
