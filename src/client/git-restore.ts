import { createWriteStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline as pipelineCb, Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isCacheError } from '../cache/errors.js';
import { isLoopbackAddress } from '../util/loopback.js';
import { runChild } from '../util/process.js';
import { removeScratch, scratchPath, withScratchPath } from '../util/scratch.js';
import { extractArchive } from '../util/archive.js';
import { parallelGet } from './parallel-get.js';

/** No snapshot exists for the repository (the CLI exits 2 so scripts can fall back to clone). */
export class NoSnapshotError extends Error {}

/** Options of `hoard git restore`. */
export interface GitRestoreOptions {
  server: string;
  repoUrl: string;
  dir: string;
  authorization?: string | undefined;
  noBundle?: boolean;
  refs?: Record<string, string>;
  commits?: string[];
  concurrency?: number;
  chunkBytes?: number;
  zstdThreads?: number;
  signal?: AbortSignal;
  /** Wraps the download for progress reporting. */
  progress?: (size: number | undefined) => Promise<Transform>;
  log?: (line: string) => void;
}

/** What a restore did. */
export interface GitRestoreResult {
  snapshotCommit: string | undefined;
  head: string;
  bundle: 'applied' | 'up-to-date' | 'not-advertised' | 'skipped' | `failed: ${string}`;
  fetchedRefs: boolean;
}

const GIT_DEADLINE_MS = 30 * 60_000;

/**
 * Parallel ranged downloads when none is asked for: 8 (of 16 MiB) beat per-connection throughput
 * limits between machines (cachew #360), but a server on this machine has no such limit and the
 * extra sockets and reordering only take CPU from zstd and tar (on loopback one stream restored in
 * 0.95–1.11× the time of a local extract, eight in 1.01–1.35×; docs/decisions.md).
 */
export function defaultConcurrency(server: string): number {
  let host: string;
  try {
    host = new URL(server).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return 8;
  }
  return host === 'localhost' || isLoopbackAddress(host) ? 1 : 8;
}

/** Parses `https://github.com/org/repo(.git)` (or `github.com/org/repo`) into host and path. */
export function parseRepoUrl(repoUrl: string): { host: string; repoPath: string } {
  let url: URL;
  try {
    url = new URL(repoUrl.includes('://') ? repoUrl : `https://${repoUrl}`);
  } catch {
    throw new Error(`invalid repository URL ${JSON.stringify(repoUrl)}`);
  }
  const repoPath = url.pathname.replace(/^\/+/, '').replace(/\/+$/, '').replace(/\.git$/, '');
  if (!url.host || !repoPath) throw new Error(`repository URL needs a host and a path: ${repoUrl}`);
  return { host: url.host, repoPath };
}

function git(dir: string, args: string[], signal?: AbortSignal): Promise<string> {
  return runChild('git', ['-C', dir, ...args], { timeoutMs: GIT_DEADLINE_MS, signal, env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } }).then((s) => s.trim());
}

const hasObject = (dir: string, sha: string) => git(dir, ['cat-file', '-e', `${sha}^{commit}`]).then(() => true, () => false);

/**
 * Restores a repository from hoard: parallel ranged download of the snapshot overlapped with
 * `zstd -d | tar -x` into a staging directory next to the target (renamed into place on
 * success, so a failed restore never leaves a target), then the delta bundle, then any
 * requested refs/commits via ensure-refs.
 */
export async function gitRestore(opts: GitRestoreOptions): Promise<GitRestoreResult> {
  const log = opts.log ?? (() => undefined);
  const { host, repoPath } = parseRepoUrl(opts.repoUrl);
  const base = opts.server.replace(/\/+$/, '');
  const snapshotUrl = `${base}/git/${host}/${repoPath}/snapshot.tar.zst`;
  const auth: Record<string, string> = opts.authorization ? { authorization: opts.authorization } : {};

  let download;
  try {
    download = await parallelGet(snapshotUrl, {
      concurrency: opts.concurrency ?? defaultConcurrency(base),
      chunkBytes: opts.chunkBytes ?? 16 << 20,
      headers: auth,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
  } catch (err) {
    if (isCacheError(err, 'not-found')) throw new NoSnapshotError(`No snapshot for ${opts.repoUrl} on ${base}`);
    throw new Error(`restore snapshot: ${(err as Error).message}`);
  }
  const snapshotCommit = download.headers['x-cachew-snapshot-commit'];
  const bundleUrl = download.headers['x-cachew-bundle-url'];
  let body: Readable = download.body;
  if (opts.progress) {
    const meter = await opts.progress(download.size);
    // pipeline, not pipe: when extraction gives up and destroys the meter, the download is
    // destroyed with it instead of holding its sockets open.
    pipelineCb(download.body, meter, () => undefined);
    body = meter;
  }

  const target = path.resolve(opts.dir);
  const existing = await fs.readdir(target).catch(() => undefined);
  const merging = existing !== undefined && existing.length > 0;
  // A new target is built completely (snapshot, bundle, refs) in staging on the same filesystem
  // and renamed into place only when every step worked.
  const work = merging ? target : scratchPath(path.dirname(target), '.hoard-restore-');
  if (merging) log(`extracting into existing directory ${target} (merging)`);
  let bundle: GitRestoreResult['bundle'] = opts.noBundle ? 'skipped' : 'not-advertised';
  let fetchedRefs = false;
  try {
    try {
      await extractArchive(body, work, { threads: opts.zstdThreads ?? 0, ...(opts.signal ? { signal: opts.signal } : {}) });
    } catch (err) {
      throw new Error(`restore snapshot: ${(err as Error).message}`);
    }
    if (!opts.noBundle && bundleUrl) {
      bundle = await applyBundle(work, bundleUrl.startsWith('http') ? bundleUrl : `${base}/${bundleUrl.replace(/^\/+/, '')}`, auth, opts.signal);
      if (bundle.startsWith('failed')) log(`Warning: failed to apply delta bundle: ${bundle.slice('failed: '.length)}`);
    }
    const refs = opts.refs ?? {};
    const commits = opts.commits ?? [];
    if (Object.keys(refs).length || commits.length) {
      fetchedRefs = await satisfyRefs(work, `${base}/git/${host}/${repoPath}/ensure-refs`, refs, commits, auth, opts.signal);
    }
    if (!merging) {
      if (existing) await fs.rmdir(target);
      await fs.rename(work, target);
    }
  } catch (err) {
    // A failed clean-up must not replace the error that says why the restore failed.
    if (!merging) await removeScratch(work).catch(() => undefined);
    throw err;
  }
  return { snapshotCommit, head: await git(target, ['rev-parse', 'HEAD']), bundle, fetchedRefs };
}

/**
 * Fetches the bundle into the remote-tracking ref first, then fast-forwards the current branch,
 * so `origin/<branch>` and HEAD agree after a restore (pulling from a bundle path alone would
 * leave the branch "ahead of origin").
 */
async function applyBundle(dir: string, url: string, auth: Record<string, string>, signal?: AbortSignal): Promise<GitRestoreResult['bundle']> {
  return await withScratchPath(os.tmpdir(), 'hoard-bundle-', '.bundle', async (file): Promise<GitRestoreResult['bundle']> => {
    try {
      const res = await fetch(url, { headers: auth, ...(signal ? { signal } : {}) });
      if (res.status === 204) return 'up-to-date';
      if (res.status !== 200 || !res.body) return `failed: server answered ${res.status}`;
      await pipeline(Readable.fromWeb(res.body as never), createWriteStream(file));
      const branch = await git(dir, ['symbolic-ref', '--short', 'HEAD']);
      await git(dir, ['fetch', '-q', file, `+refs/heads/*:refs/remotes/origin/*`], signal);
      await git(dir, ['merge', '-q', '--ff-only', `refs/remotes/origin/${branch}`], signal);
      return 'applied';
    } catch (err) {
      return `failed: ${(err as Error).message}`;
    }
  });
}

async function satisfyRefs(dir: string, url: string, refs: Record<string, string>, commits: string[], auth: Record<string, string>, signal?: AbortSignal): Promise<boolean> {
  const pinned = Object.values(refs);
  if (pinned.every((sha) => sha !== '')) {
    const all = [...pinned, ...commits];
    if ((await Promise.all(all.map((sha) => hasObject(dir, sha)))).every(Boolean)) return false;
  }
  const res = await fetch(url, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ refs, commits }), ...(signal ? { signal } : {}) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`ensure refs: status ${res.status}: ${text.trim()}`);
  const answer = JSON.parse(text) as { refs: Record<string, string>; missing_commits: string[] };
  if (answer.missing_commits.length) throw new Error(`server is missing ${answer.missing_commits.length} commit(s) after fetch`);
  const resolved = Object.values(answer.refs);
  const present = async (list: string[]) => (await Promise.all(list.map((sha) => sha !== '' && hasObject(dir, sha)))).every(Boolean);
  if (resolved.length === Object.keys(refs).length && (await present(resolved)) && (await present(commits))) return false;
  await git(dir, ['fetch', '-q', 'origin'], signal);
  const branch = await git(dir, ['symbolic-ref', '--short', 'HEAD']);
  await git(dir, ['merge', '-q', '--ff-only', `refs/remotes/origin/${branch}`], signal);
  if (!(await present(commits))) throw new Error('requested commits are still missing after fetching');
  return true;
}
