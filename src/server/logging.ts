import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { RecentErrors } from './status/recent-errors.js';

/** Levels accepted by config and the admin endpoint. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** The `log` block's output settings (cachew §8.1). */
export interface LogOptions {
  level: string;
  /** JSON lines (for log shippers) instead of human-readable text. */
  json: boolean;
  /**
   * JSON only: renames top-level fields, old → new (`msg = "message"`, `time = "timestamp"` for
   * Datadog, cachew #110). Applies to pino's own `msg`, `time` and `level` and to every field a
   * record carries.
   */
  remap?: Record<string, string>;
  destination?: NodeJS.WritableStream;
  /** Also keeps warn and error records here, for the status page. */
  recentErrors?: RecentErrors;
}

/**
 * The process logger, on stderr. JSON mode writes one object per line, with `remap` applied; text
 * mode writes `[time] LEVEL: message` lines with the record's fields below (pino-pretty), in colour
 * only on a terminal.
 */
export function createLogger(opts: LogOptions): Logger {
  const remap = opts.json ? (opts.remap ?? {}) : {};
  const rename = (name: string) => remap[name] ?? name;
  const timeKey = rename('time');
  const levelKey = rename('level');
  const renamesOthers = Object.keys(remap).some((k) => !['time', 'level', 'msg'].includes(k));
  const destination =
    (opts.destination as pino.DestinationStream | undefined) ??
    (opts.json ? pino.destination({ fd: 2, sync: false }) : pretty({ destination: 2, colorize: process.stderr.isTTY, translateTime: 'SYS:standard', ignore: 'pid,hostname,service' }));
  return pino(
    {
      level: opts.level,
      base: { [rename('service')]: 'hoard' },
      messageKey: rename('msg'),
      ...(opts.recentErrors ? { hooks: { logMethod: opts.recentErrors.logHook() as NonNullable<pino.LoggerOptions['hooks']>['logMethod'] } } : {}),
      timestamp: () => `,${JSON.stringify(timeKey)}:${JSON.stringify(new Date().toISOString())}`,
      formatters: {
        level: (label) => ({ [levelKey]: label }),
        // Only when some record field is renamed: this runs on every log call.
        ...(renamesOthers
          ? {
              log: (record: Record<string, unknown>) => {
                const out: Record<string, unknown> = {};
                for (const [k, v] of Object.entries(record)) out[rename(k)] = v;
                return out;
              },
            }
          : {}),
      },
    },
    destination,
  );
}

/** Headers that carry credentials: logging them would write secrets to every log line. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-jfrog-art-api', 'x-api-key', 'x-hub-signature-256']);

/** Refuses `log { headers }` entries that would log credentials (hoard never logs them). */
export function checkLogHeaders(headers: Record<string, string>): void {
  const refused = Object.keys(headers).filter((h) => CREDENTIAL_HEADERS.has(h.toLowerCase()));
  if (refused.length) throw new Error(`log { headers }: ${refused.join(', ')} carries credentials and is never logged; remove it`);
}
