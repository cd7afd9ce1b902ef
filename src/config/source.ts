import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The configuration used when no file is given (DESIGN §2). `state` and `bind` are deliberately
 * not written here: their schema defaults (`./state`, `127.0.0.1:8080`) are the same values, and
 * leaving them out lets env injection (`HOARD_BIND`/`CACHEW_BIND`, `HOARD_STATE`, …, §9.4) apply
 * to the default as it does to any file that omits them; a value written in a file always wins.
 */
export const EMBEDDED_DEFAULT_CONFIG = `# hoard embedded default configuration
# state = "./state"          (default; HOARD_STATE or CACHEW_STATE overrides)
# bind  = "127.0.0.1:8080"   (default; HOARD_BIND or CACHEW_BIND overrides)

cache disk {}
metadata memory {}

strategy git {}
strategy gomod {}
strategy github-releases {
  private-orgs = []
}
strategy hermit {}
`;

/**
 * Picks the config source: `--config`, else `$HOARD_CONFIG`, else `$CACHEW_CONFIG`, else
 * `./hoard.hcl` when it exists, else the embedded default.
 */
export function resolveConfigSource(opts: { flag?: string | undefined; env: NodeJS.ProcessEnv; cwd: string }): {
  path?: string;
  text?: string;
  source: string;
} {
  const chosen = opts.flag || opts.env['HOARD_CONFIG'] || opts.env['CACHEW_CONFIG'];
  if (chosen) {
    const abs = path.resolve(opts.cwd, chosen);
    return { path: abs, source: abs };
  }
  const local = path.join(opts.cwd, 'hoard.hcl');
  if (existsSync(local)) return { path: local, source: local };
  return { text: EMBEDDED_DEFAULT_CONFIG, source: 'embedded default' };
}
