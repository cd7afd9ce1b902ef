import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { scratchPath } from './scratch.js';
import { SingleFlight } from './single-flight.js';

/** Name of the directory, beside each discarded one, that holds it until it is deleted. */
export const TRASH_DIR = '.trash';

/** Trash roots being emptied now: a second discard into one of them joins the running pass. */
const emptying = new SingleFlight<void>();

/**
 * Gets `target` out of the way at once and deletes it in the background. Start-up uses this for
 * leftovers of a previous run (scratch space, spools): a recursive delete can fail (ENOTEMPTY,
 * EBUSY) or take minutes while something is still writing inside, and start-up must depend on
 * neither. A rename within one directory is atomic and instant, so `target` is free as soon as
 * this resolves; the trash beside it (`<parent>/.trash`, a dot-directory nothing else scans) is
 * emptied afterwards, including whatever earlier runs could not delete. Never throws: a failure
 * is logged, and a `target` that cannot even be renamed is left where it is.
 */
export async function discardInBackground(target: string, logger: Logger): Promise<void> {
  const trash = path.join(path.dirname(target), TRASH_DIR);
  try {
    await fs.mkdir(trash, { recursive: true });
    await fs.rename(target, scratchPath(trash, `${path.basename(target)}-${Date.now()}-`));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.warn({ dir: target, err: (err as Error).message }, 'could not move a leftover directory aside; leaving it in place');
    }
  }
  void emptyTrash(trash, logger);
}

/** Deletes everything in `trash`; resolves when done (failures are logged, never thrown). */
export function emptyTrash(trash: string, logger: Logger): Promise<void> {
  // A pass already running may have listed the trash before this caller's directory arrived:
  // wait for it, then start (or join) a pass that sees it.
  const running = emptying.current(trash);
  if (running) return running.then(() => emptyTrash(trash, logger));
  return emptying.run(trash, async () => {
    const names = await fs.readdir(trash).catch(() => [] as string[]);
    for (const name of names) {
      try {
        // Retries cover a writer that was killed a moment ago and whose last files are landing.
        await fs.rm(path.join(trash, name), { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
      } catch (err) {
        logger.warn({ dir: path.join(trash, name), err: (err as Error).message }, 'could not delete a discarded directory; the next start retries');
      }
    }
  });
}
