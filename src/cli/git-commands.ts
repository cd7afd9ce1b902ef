import { gitRestore, NoSnapshotError } from '../client/git-restore.js';
import { progressStream } from '../client/progress.js';
import { EXIT_MISS, statusLine, type GlobalOptions } from './options.js';

/** Options of `hoard git restore`. */
export interface GitRestoreFlags {
  bundle: boolean;
  ref?: string[];
  commit?: string[];
  concurrency?: string;
  chunkMb: string;
  /** cachew's spellings of --concurrency and --chunk-mb. */
  downloadConcurrency?: string;
  downloadChunkSizeMb?: string;
  zstdThreads: string;
}

function positiveInteger(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`${flag} must be a whole number from 1 to 64, got ${JSON.stringify(text)}`);
  return n;
}

/** `hoard git restore <repo-url> <dir>`: exit 0 ok, 2 when no snapshot exists, 1 on errors. */
export async function gitRestoreCommand(g: GlobalOptions, repoUrl: string, dir: string, flags: GitRestoreFlags): Promise<void> {
  const refs: Record<string, string> = {};
  for (const pair of flags.ref ?? []) {
    const at = pair.indexOf('=');
    const name = at === -1 ? pair : pair.slice(0, at);
    const sha = at === -1 ? '' : pair.slice(at + 1);
    refs[name.startsWith('refs/') ? name : `refs/heads/${name}`] = sha;
  }
  if (flags.concurrency !== undefined && flags.downloadConcurrency !== undefined) throw new Error('use either --concurrency or --download-concurrency, not both');
  const concurrency = flags.concurrency ?? flags.downloadConcurrency;
  const concurrencyFlag = flags.concurrency !== undefined ? '--concurrency' : '--download-concurrency';
  const chunkFlag = flags.downloadChunkSizeMb !== undefined ? '--download-chunk-size-mb' : '--chunk-mb';
  const chunkMb = Number(flags.downloadChunkSizeMb ?? flags.chunkMb);
  if (!Number.isInteger(chunkMb) || chunkMb < 1 || chunkMb > 1024) throw new Error(`${chunkFlag} must be a whole number of MiB from 1 to 1024, got ${JSON.stringify(flags.downloadChunkSizeMb ?? flags.chunkMb)}`);
  const started = Date.now();
  const say = (line: string) => statusLine(g, line);
  try {
    const result = await gitRestore({
      server: g.url,
      repoUrl,
      dir,
      authorization: g.authorization,
      noBundle: !flags.bundle,
      refs,
      commits: flags.commit ?? [],
      ...(concurrency === undefined ? {} : { concurrency: positiveInteger(concurrencyFlag, concurrency) }),
      chunkBytes: chunkMb * 1024 * 1024,
      zstdThreads: Number(flags.zstdThreads),
      progress: (size) => progressStream('restore', size, { quiet: g.quiet ?? false }),
      log: say,
    });
    const bundle = result.bundle === 'up-to-date' ? 'snapshot was up to date' : `bundle ${result.bundle}`;
    say(`Restored ${repoUrl} at ${result.head.slice(0, 12)} (${bundle}) in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  } catch (err) {
    if (err instanceof NoSnapshotError) {
      process.stderr.write(`hoard: ${err.message}\n`);
      process.exit(EXIT_MISS);
    }
    throw err;
  }
}
