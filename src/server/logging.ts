import pino, { type Logger } from 'pino';

/** Levels accepted by config and the admin endpoint. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * The process logger. JSON lines when `json` is set; otherwise pino's JSON is still written to
 * stderr (a text formatter would mean another dependency, and JSON is what log shippers want).
 */
export function createLogger(opts: { level: string; json: boolean; destination?: NodeJS.WritableStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: 'hoard' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    (opts.destination as pino.DestinationStream | undefined) ?? pino.destination({ fd: 2, sync: false }),
  );
}
