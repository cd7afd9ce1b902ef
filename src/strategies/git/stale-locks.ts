import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';

/** Lock files git creates at the top of a repository (refs' locks live under refs/). */
const TOP_LEVEL_LOCKS = ['HEAD.lock', 'packed-refs.lock', 'config.lock', 'shallow.lock', 'index.lock', 'FETCH_HEAD.lock', 'ORIG_HEAD.lock'];

/**
 * Removes what a git process killed mid-write leaves in a mirror: `*.lock` files (while one exists
 * every later `git fetch` fails with "cannot lock ref ... File exists", so the mirror would never
 * be fresh again) and `objects/pack/tmp_*` half-written packs (unreferenced, only wasting space).
 * Only for start-up discovery: then no git of ours can be writing the mirror, since the previous
 * run's children died with it (see the watchdog in util/process.ts). Failures are logged, never
 * thrown: a lock that stays only costs failing fetches, which report themselves.
 */
export async function removeStaleLocks(mirrorDir: string, logger: Logger): Promise<void> {
  const stale: string[] = [];
  for (const name of TOP_LEVEL_LOCKS) stale.push(path.join(mirrorDir, name));
  const refs = await fs.readdir(path.join(mirrorDir, 'refs'), { recursive: true }).catch(() => [] as string[]);
  for (const rel of refs) if (rel.endsWith('.lock')) stale.push(path.join(mirrorDir, 'refs', rel));
  const packs = await fs.readdir(path.join(mirrorDir, 'objects', 'pack')).catch(() => [] as string[]);
  for (const name of packs) if (name.startsWith('tmp_') || name.endsWith('.lock')) stale.push(path.join(mirrorDir, 'objects', 'pack', name));
  for (const file of stale) {
    try {
      await fs.rm(file);
      logger.warn({ file }, 'removed a file an interrupted git left in a mirror');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ file, err: (err as Error).message }, 'could not remove a stale git lock');
    }
  }
}
