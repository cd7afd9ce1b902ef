import { once } from 'node:events';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { runChild, startChild } from '../../util/process.js';
import type { GitMirror } from '../../http/git-mirrors.js';
import { MAX_GO_MOD, ModuleNotFoundError } from './git-module-source.js';

/** x/mod/zip limits: total uncompressed size, go.mod, LICENSE. */
export const MAX_ZIP_FILE = 500 << 20;
export const MAX_LICENSE = 16 << 20;
const ZIP_TIMEOUT_MS = 30 * 60_000;
/** A fixed entry time: a module zip is identified by its content, never by when it was built. */
const ENTRY_TIME = new Date(Date.UTC(2000, 0, 1));

/** One file of the module tree as `git ls-tree -r -l` lists it, `path` relative to the module root. */
export interface TreeFile {
  path: string;
  mode: string;
  /** The blob id (or a submodule's commit id). */
  object: string;
  size: number;
}

/** A module file rule broken: the whole zip is refused, as x/mod/zip refuses it. */
export class ModuleZipError extends ModuleNotFoundError {}

/**
 * x/mod/zip isVendoredPackage, quirk included: a file in a package under a `vendor` directory
 * (`vendor/x/y.go`, and with Go's historical offset bug, any file below a nested `…/vendor/`).
 * `vendor/modules.txt` itself stays.
 */
function isVendored(name: string): boolean {
  let i: number;
  if (name.startsWith('vendor/')) i = 'vendor/'.length;
  else if (name.includes('/vendor/')) i = '/vendor/'.length; // sic: x/mod keeps this offset for checksum stability
  else return false;
  return name.slice(i).includes('/');
}

const WINDOWS_RESERVED = new Set(['CON', 'PRN', 'AUX', 'NUL', ...[1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((n) => [`COM${n}`, `LPT${n}`])]);

/** x/mod module.CheckFilePath: why a file path may not be in a module zip, or undefined. */
export function filePathProblem(file: string): string | undefined {
  if (file === '') return 'empty path';
  if (file.includes('//')) return 'double slash';
  if (file.endsWith('/')) return 'trailing slash';
  for (const elem of file.split('/')) {
    if (elem === '') return 'empty path element';
    if (/^\.+$/.test(elem)) return `invalid path element ${JSON.stringify(elem)}`;
    if (elem.endsWith('.')) return `trailing dot in path element ${JSON.stringify(elem)}`;
    for (const ch of elem) {
      const ok = ch.charCodeAt(0) < 0x80 ? /[0-9A-Za-z!#$%&()+,\-.=@[\]^_{}~ ]/.test(ch) : /\p{L}/u.test(ch);
      if (!ok) return `invalid character ${JSON.stringify(ch)} in ${JSON.stringify(elem)}`;
    }
    const dot = elem.indexOf('.');
    const short = dot === -1 ? elem : elem.slice(0, dot);
    if (WINDOWS_RESERVED.has(short.toUpperCase())) return `${JSON.stringify(short)} is a reserved name on Windows`;
    const tilde = short.lastIndexOf('~');
    if (tilde !== -1 && tilde < short.length - 1 && /^\d+$/.test(short.slice(tilde + 1))) return `${JSON.stringify(elem)} looks like a Windows short name`;
  }
  return undefined;
}

/**
 * The files a module zip holds (x/mod/zip checkFiles): regular files only (no symlinks or
 * submodules), no files of nested modules (a directory below the root with its own go.mod), no
 * vendored packages, no `.hg_archival.txt`; every path valid and unique ignoring case, go.mod and
 * LICENSE at most 16 MB, everything together at most 500 MB. Throws ModuleZipError otherwise.
 */
export function selectModuleFiles(files: TreeFile[]): TreeFile[] {
  const nestedRoots = new Set(files.filter((f) => f.path.endsWith('/go.mod')).map((f) => f.path.slice(0, -'/go.mod'.length)));
  const inNestedModule = (file: string) => {
    for (let dir = file.slice(0, Math.max(0, file.lastIndexOf('/'))); dir; dir = dir.slice(0, Math.max(0, dir.lastIndexOf('/')))) {
      if (nestedRoots.has(dir)) return true;
    }
    return false;
  };
  const seen = new Map<string, string>();
  const kept: TreeFile[] = [];
  let total = 0;
  for (const file of files) {
    if (isVendored(file.path) || inNestedModule(file.path) || file.path === '.hg_archival.txt') continue;
    const problem = filePathProblem(file.path);
    if (problem) throw new ModuleZipError(`malformed file path ${JSON.stringify(file.path)}: ${problem}`);
    // Case-insensitive file systems: a file must not collide with another file or a directory.
    const parts = file.path.toLowerCase().split('/');
    for (let i = 1; i <= parts.length; i++) {
      const lower = parts.slice(0, i).join('/');
      const kind = i === parts.length ? 'file' : 'dir';
      const before = seen.get(lower);
      if (before && (before !== 'dir' || kind !== 'dir')) throw new ModuleZipError(`case-insensitive file name collision: ${JSON.stringify(file.path)}`);
      seen.set(lower, kind);
    }
    if (file.mode !== '100644' && file.mode !== '100755') continue; // symlinks (120000), submodules (160000)
    if (file.path === 'go.mod' && file.size > MAX_GO_MOD) throw new ModuleZipError(`go.mod is larger than ${MAX_GO_MOD} bytes`);
    if (file.path === 'LICENSE' && file.size > MAX_LICENSE) throw new ModuleZipError(`LICENSE is larger than ${MAX_LICENSE} bytes`);
    total += file.size;
    if (total > MAX_ZIP_FILE) throw new ModuleZipError(`module source tree is larger than ${MAX_ZIP_FILE} bytes`);
    kept.push(file);
  }
  return kept;
}

/** Parses `git ls-tree -r -l -z` output below `dir` into module-relative entries. */
function parseTree(out: string, dir: string): TreeFile[] {
  const files: TreeFile[] = [];
  for (const record of out.split('\0')) {
    const m = /^(\d+) (\w+) ([0-9a-f]+) +(\d+|-)\t([\s\S]+)$/.exec(record);
    if (!m) continue;
    const full = m[5]!;
    if (dir && !full.startsWith(`${dir}/`)) continue;
    files.push({ mode: m[1]!, object: m[3]!, size: m[4] === '-' ? 0 : Number(m[4]), path: dir ? full.slice(dir.length + 1) : full });
  }
  return files;
}

/** Reads exactly `n` bytes of a stream's chunks into `out` (with backpressure), keeping the rest. */
class ChunkReader {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly chunks: AsyncIterator<Buffer>;

  constructor(stream: Readable) {
    this.chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async more(): Promise<void> {
    const next = await this.chunks.next();
    if (next.done) throw new Error('git cat-file ended early');
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, next.value]) : next.value;
  }

  async line(): Promise<string> {
    for (;;) {
      const nl = this.buffered.indexOf(0x0a);
      if (nl !== -1) {
        const text = this.buffered.subarray(0, nl).toString('utf8');
        this.buffered = this.buffered.subarray(nl + 1);
        return text;
      }
      if (this.buffered.length > 4096) throw new Error('git cat-file header too long');
      await this.more();
    }
  }

  async copy(n: number, out: Writable | undefined): Promise<void> {
    let left = n;
    while (left > 0) {
      if (!this.buffered.length) await this.more();
      const piece = this.buffered.subarray(0, Math.min(left, this.buffered.length));
      this.buffered = this.buffered.subarray(piece.length);
      left -= piece.length;
      if (out && !out.write(piece)) await once(out, 'drain');
    }
  }
}

/**
 * Streams the module zip of `dir` at `commit` into `out`: every entry named
 * `<module>@<version>/<path>`, the file rules of selectModuleFiles, and, for a module below the
 * repository root without a LICENSE of its own, the root LICENSE (as the go command adds it).
 * The rules are checked on the whole listing before the first byte is written, so a refused
 * module never leaves a partial zip; file contents come from one `git cat-file --batch`.
 */
export async function writeModuleZip(mirror: GitMirror, opts: { commit: string; dir: string; module: string; version: string; signal: AbortSignal }, out: Writable): Promise<void> {
  const gitOpts = { env: mirror.env, timeoutMs: ZIP_TIMEOUT_MS, signal: opts.signal, maxBytes: 256 << 20 };
  const listing = await runChild('git', ['-C', mirror.gitDir, 'ls-tree', '-r', '-l', '-z', opts.commit, ...(opts.dir ? ['--', `${opts.dir}/`] : [])], gitOpts);
  const files = selectModuleFiles(parseTree(listing, opts.dir));
  if (opts.dir && !files.some((f) => f.path === 'LICENSE')) {
    const root = parseTree(await runChild('git', ['-C', mirror.gitDir, 'ls-tree', '-l', '-z', opts.commit, '--', 'LICENSE'], gitOpts), '');
    const license = root.find((f) => f.path === 'LICENSE' && (f.mode === '100644' || f.mode === '100755'));
    if (license) files.push(...selectModuleFiles([license]));
  }
  const prefix = `${opts.module}@${opts.version}/`;
  const zip = new yazl.ZipFile();
  const written = pipeline(zip.outputStream as Readable, out, { signal: opts.signal });
  const catFile = startChild('git', ['-C', mirror.gitDir, 'cat-file', '--batch'], { env: mirror.env, timeoutMs: ZIP_TIMEOUT_MS, signal: opts.signal, stdin: 'pipe', stdout: 'pipe' });
  try {
    const stdin = catFile.child.stdin!;
    stdin.on('error', () => undefined); // an early exit is reported by `done`
    void (async () => {
      for (const file of files) if (!stdin.write(`${file.object}\n`)) await once(stdin, 'drain');
      stdin.end();
    })().catch(() => undefined);
    const reader = new ChunkReader(catFile.child.stdout!);
    for (const file of files) {
      const header = await reader.line();
      const m = /^([0-9a-f]+) blob (\d+)$/.exec(header);
      if (!m || m[1] !== file.object) throw new Error(`git cat-file: unexpected answer ${JSON.stringify(header)} for ${file.path}`);
      const size = Number(m[2]);
      const entry = new PassThrough();
      zip.addReadStream(entry, `${prefix}${file.path}`, { size, mtime: ENTRY_TIME, mode: file.mode === '100755' ? 0o100755 : 0o100644 });
      await reader.copy(size, entry);
      entry.end();
      await reader.copy(1, undefined); // the newline after each object
    }
    zip.end();
    await Promise.all([written, catFile.done]);
  } catch (err) {
    catFile.kill();
    (zip.outputStream as Readable).destroy(err as Error);
    await written.catch(() => undefined);
    throw err;
  }
}
