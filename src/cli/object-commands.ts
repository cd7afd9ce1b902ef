import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isCacheError } from '../cache/errors.js';
import { createArchive, extractArchive } from '../util/archive.js';
import { hashFiles, keyPrefix } from '../client/hash-files.js';
import { ObjectClient } from '../client/object-client.js';
import { progressStream } from '../client/progress.js';
import { headerLines } from './headers.js';
import { EXIT_MISS, debugLine, statusLine, type GlobalOptions } from './options.js';

function clientFor(g: GlobalOptions): ObjectClient {
  return new ObjectClient({ url: g.url, authorization: g.authorization, onResponse: (method, url, status, ms) => debugLine(g, `${method} ${url} -> ${status} (${ms} ms)`) });
}

function printHeaders(headers: Record<string, string>): void {
  process.stderr.write(headerLines(headers));
}

/** How `save`/`restore` name their key: `--key K`, or `-H/--hash-files GLOB` (repeatable). */
export interface KeyFlags {
  key?: string;
  hashFiles?: string[];
}

/** The key text (prefixes applied, not yet hashed) of a save/restore, per cachew §6.2. */
async function resolveKey(g: GlobalOptions, opts: KeyFlags, cwd: string): Promise<string> {
  const globs = opts.hashFiles ?? [];
  if (opts.key && globs.length) throw new Error('use either --key or -H/--hash-files, not both');
  let base: string;
  if (opts.key) base = opts.key;
  else if (globs.length) base = await hashFiles(globs, cwd);
  else throw new Error('a key is required: pass --key <key> or -H/--hash-files <glob>');
  return `${keyPrefix(g)}${base}`;
}

const say = statusLine;

/**
 * A pass-through whose end waits for `done`: the upload's body must not end (and the server must
 * not commit) until the archiver has exited successfully. tar reports an unreadable file only
 * in its exit status, after it may already have written a complete-looking stream; if `done`
 * rejects, this stream fails instead of ending, which aborts the upload.
 */
function endsAfter(done: Promise<void>): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      cb(null, chunk);
    },
    flush(cb) {
      done.then(() => cb(), (err: Error) => cb(err));
    },
  });
}

function sizeOf(headers: Record<string, string>): number | undefined {
  const n = Number(headers['content-length']);
  return Number.isFinite(n) ? n : undefined;
}

/** `hoard get`. */
export async function getCommand(g: GlobalOptions, ns: string, key: string, opts: { output?: string }): Promise<void> {
  const client = clientFor(g);
  let got;
  try {
    got = await client.open(ns, `${keyPrefix(g)}${key}`);
  } catch (err) {
    if (isCacheError(err, 'not-found')) {
      process.stderr.write(`hoard: Cache miss: ${ns}/${key}\n`);
      process.exit(EXIT_MISS);
    }
    throw err;
  }
  printHeaders(got.headers);
  const progress = await progressStream('get', sizeOf(got.headers), { quiet: g.quiet || !opts.output });
  if (opts.output) {
    const temp = `${opts.output}.hoard-tmp-${process.pid}`;
    try {
      await pipeline(got.body, progress, createWriteStream(temp));
      await fs.rename(temp, opts.output);
    } catch (err) {
      await fs.rm(temp, { force: true });
      throw err;
    }
  } else {
    await pipeline(got.body, progress, process.stdout);
  }
}

/** `hoard put`. */
export async function putCommand(g: GlobalOptions, ns: string, key: string, file: string | undefined, opts: { ttl?: string; header?: string[] }): Promise<void> {
  const headers: Record<string, string> = {};
  for (const pair of opts.header ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`invalid header ${JSON.stringify(pair)}: use name=value`);
    headers[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  let source: Readable;
  let total: number | undefined;
  if (file && file !== '-') {
    const st = await fs.stat(file);
    if (!st.isFile()) throw new Error(`${file} is not a regular file`);
    total = st.size;
    headers['Content-Disposition'] ??= `attachment; filename="${path.basename(file).replace(/"/g, '')}"`;
    source = createReadStream(file);
  } else {
    source = process.stdin;
  }
  const progress = await progressStream('put', total, { quiet: g.quiet });
  source.once('error', (err) => progress.destroy(err));
  source.pipe(progress);
  await clientFor(g).create(ns, `${keyPrefix(g)}${key}`, progress, { ...(opts.ttl ? { ttl: opts.ttl } : {}), headers });
}

/** `hoard stat`. */
export async function statCommand(g: GlobalOptions, ns: string, key: string): Promise<void> {
  try {
    const st = await clientFor(g).stat(ns, `${keyPrefix(g)}${key}`);
    process.stdout.write(headerLines(st.headers));
  } catch (err) {
    if (isCacheError(err, 'not-found')) {
      process.stderr.write(`hoard: Cache miss: ${ns}/${key}\n`);
      process.exit(EXIT_MISS);
    }
    throw err;
  }
}

/** `hoard delete`. */
export async function deleteCommand(g: GlobalOptions, ns: string, key: string): Promise<void> {
  await clientFor(g).delete(ns, `${keyPrefix(g)}${key}`);
}

/** `hoard namespaces`. */
export async function namespacesCommand(g: GlobalOptions): Promise<void> {
  const names = await clientFor(g).listNamespaces();
  process.stdout.write(names.length ? `${names.join('\n')}\n` : 'No namespaces found\n');
}

/**
 * `hoard save`: tar + zstd a directory and upload it (cachew §6.3-6.4). Nothing is stored unless
 * the archive was produced completely and tar and zstd both succeeded.
 */
export async function saveCommand(g: GlobalOptions, ns: string, dir: string, paths: string[], opts: KeyFlags & { ttl?: string; exclude?: string[]; zstdThreads: string }): Promise<void> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new Error(`${dir} is not a directory`);
  // cachew §6.4: every include path must exist. tar would only complain at the end of its run.
  for (const p of paths) {
    if (!(await fs.lstat(path.resolve(dir, p)).catch(() => undefined))) throw new Error(`${p} does not exist in ${dir}`);
  }
  const key = await resolveKey(g, opts, process.cwd());
  const controller = new AbortController();
  say(g, `Archiving ${dir}${paths.length ? ` (${paths.join(', ')})` : ''}`);
  const archive = createArchive(dir, paths, { exclude: opts.exclude ?? [], threads: Number(opts.zstdThreads) || 0, signal: controller.signal });
  const progress = await progressStream('save', undefined, { quiet: g.quiet });
  const body = endsAfter(archive.done);
  archive.stream.once('error', (err) => body.destroy(err));
  archive.done.catch((err: Error) => body.destroy(err));
  archive.stream.pipe(progress).pipe(body);
  progress.once('error', (err) => body.destroy(err));
  const name = path.basename(path.resolve(dir)).replace(/"/g, '') || 'archive';
  try {
    await Promise.all([
      clientFor(g).create(ns, key, body, {
        ...(opts.ttl ? { ttl: opts.ttl } : {}),
        headers: { 'Content-Type': 'application/zstd', 'Content-Disposition': `attachment; filename="${name}.tar.zst"`, 'X-Hoard-Archive': 'tar.zst' },
      }),
      archive.done,
    ]);
  } catch (err) {
    controller.abort();
    throw err;
  }
  say(g, `Saved: ${ns}/${key}`);
}

/** `hoard restore`: exit 0 on a hit, 2 on a miss. */
export async function restoreCommand(g: GlobalOptions, ns: string, dir: string, opts: KeyFlags & { zstdThreads: string }): Promise<void> {
  const key = await resolveKey(g, opts, process.cwd());
  let got;
  try {
    got = await clientFor(g).open(ns, key);
  } catch (err) {
    if (isCacheError(err, 'not-found')) {
      process.stderr.write(`hoard: Cache miss: ${ns}/${key}\n`);
      process.exit(EXIT_MISS);
    }
    throw err;
  }
  const progress = await progressStream('restore', sizeOf(got.headers), { quiet: g.quiet });
  got.body.pipe(progress);
  got.body.once('error', (err) => progress.destroy(err));
  await extractArchive(progress, dir, { threads: Number(opts.zstdThreads) || 0 });
  say(g, `Restored: ${ns}/${key} into ${dir}`);
}
