import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { parseGitPath, type GitRequestPath } from './paths.js';
import { mirrorRelativePath } from './repo-names.js';
import { removeStaleLocks } from './stale-locks.js';

/** A mirror a previous run left under the mirror root, with the request path that names it. */
export interface DiscoveredMirror {
  dir: string;
  parsed: GitRequestPath;
}

/** What decides whether a directory found on disk is a mirror hoard may use. */
export interface DiscoveryRules {
  /** The strategy's `allowed-hosts`. */
  hostAllowed(host: string): boolean;
  logger: Logger;
}

/**
 * Finds the bare mirrors under `dir` (a previous run's), skipping dot-directories (scratch,
 * spools) and any directory no request could name, whose name is not the canonical encoding of
 * its repository, or whose host is no longer allowed. Stale locks of a killed fetch are removed.
 */
export async function discoverMirrors(dir: string, rules: DiscoveryRules, rel: string[] = []): Promise<DiscoveredMirror[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
  if (rel.length >= 2 && entries.some((e) => e.name === 'HEAD' && e.isFile())) {
    let parsed: GitRequestPath;
    try {
      // The same rules as requests, so a discovered mirror has the identity a request would give it.
      parsed = parseGitPath(rel.join('/'));
    } catch (err) {
      rules.logger.warn({ dir, err: (err as Error).message }, 'ignoring a mirror directory whose path no request could name');
      return [];
    }
    // Directory names are encoded names (repo-names.ts); one that is not the canonical
    // encoding of what it decodes to is not where a request for that name would look.
    if (mirrorRelativePath(parsed.host, parsed.repoPath) !== rel.join('/')) {
      rules.logger.warn({ dir }, 'ignoring a mirror directory whose name is not the encoding hoard gives that repository');
      return [];
    }
    if (!rules.hostAllowed(parsed.host)) {
      // Config changed since the mirror was made: never contact that host again, not even to fetch.
      rules.logger.warn({ dir, host: parsed.host }, 'ignoring a mirror whose host is not in allowed-hosts');
      return [];
    }
    await removeStaleLocks(dir, rules.logger);
    return [{ dir, parsed }];
  }
  const out: DiscoveredMirror[] = [];
  for (const entry of entries) {
    // Dot-directories are scratch space (clones in progress, spools); never mirrors.
    if (!entry.isDirectory() || entry.name.startsWith('.') || rel.length > 10) continue;
    out.push(...(await discoverMirrors(path.join(dir, entry.name), rules, [...rel, entry.name])));
  }
  return out;
}
