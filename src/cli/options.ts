/** Exit code for "the thing you asked for is not in the cache". */
export const EXIT_MISS = 2;

/** Global client options (DESIGN §1). */
export interface GlobalOptions {
  url: string;
  authorization?: string;
  platform?: boolean;
  daily?: boolean;
  hourly?: boolean;
  quiet?: boolean;
  /** cachew's client log flags (§6.1): the level gates status lines; debug adds request lines. */
  logLevel?: string;
  logJson?: boolean;
  logRemap?: string;
  logHeaders?: string;
}

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

function levelOf(g: GlobalOptions): number {
  const i = LEVELS.indexOf((g.logLevel ?? 'info').toLowerCase() as (typeof LEVELS)[number]);
  return i === -1 ? 1 : i;
}

function emit(g: GlobalOptions, level: 'debug' | 'info', line: string): void {
  process.stderr.write(g.logJson ? `${JSON.stringify({ time: new Date().toISOString(), level, msg: line })}\n` : `${line}\n`);
}

/**
 * A status line (`Saved: …`, `Restored …`) on stderr, as cachew's client logs it at info:
 * silenced by --quiet or a --log-level above info, a JSON object with --log-json.
 */
export function statusLine(g: GlobalOptions, line: string): void {
  if (!g.quiet && levelOf(g) <= 1) emit(g, 'info', line);
}

/** A debug line (one per HTTP request), shown only with --log-level debug. */
export function debugLine(g: GlobalOptions, line: string): void {
  if (levelOf(g) === 0) emit(g, 'debug', line);
}
