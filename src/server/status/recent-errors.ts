/** One warn or error log record as the status page shows it. */
export interface RecentError {
  /** Epoch ms. */
  time: number;
  level: 'warn' | 'error';
  message: string;
  /** The component that logged it (`strategy` binding), when any. */
  source: string | undefined;
}

/** How many records the ring keeps. */
export const RECENT_ERRORS = 50;
/** Longest message kept (a record quoting a whole upstream answer is cut). */
const MAX_MESSAGE = 500;

/**
 * Credentials a log message might quote, replaced before a record is kept: URL user-info
 * (`https://user:token@host`), Authorization schemes, and `key=value` pairs whose key names a
 * secret. Request logs never carry credential headers (checkLogHeaders), but error messages
 * from git or an upstream can echo a URL.
 */
const SECRETS: Array<[RegExp, string]> = [
  [/(\w+:\/\/)[^/\s@]+@/g, '$1***@'],
  [/\b(Bearer|Basic|token)\s+[A-Za-z0-9._~+/=-]+/gi, '$1 ***'],
  [/\b([\w-]*(?:token|secret|password|passwd|authorization|signature|api[_-]?key)[\w-]*)(["']?\s*[=:]\s*["']?)[^\s&"',;]+/gi, '$1$2***'],
  [/([?&](?:X-Amz-[\w-]+|sig|signature|token)=)[^&\s]+/gi, '$1***'],
];

/** `text` with anything that looks like a credential replaced by `***`. */
export function scrubCredentials(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRETS) out = out.replace(pattern, replacement);
  return out;
}

/**
 * The last `RECENT_ERRORS` warn and error records, newest last: what the status page lists as
 * recent errors. Bounded: a flood of errors costs the same memory as a few.
 */
export class RecentErrors {
  private readonly ring: RecentError[] = [];
  private next = 0;

  constructor(private readonly capacity = RECENT_ERRORS) {}

  add(level: 'warn' | 'error', message: string, source: string | undefined, time = Date.now()): void {
    const record: RecentError = { time, level, message: scrubCredentials(message).slice(0, MAX_MESSAGE), source };
    if (this.ring.length < this.capacity) this.ring.push(record);
    else this.ring[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Newest first. */
  list(): RecentError[] {
    const ordered = this.ring.length < this.capacity ? [...this.ring] : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
    return ordered.reverse();
  }

  /**
   * A pino `hooks.logMethod` that keeps warn (40) and error (50+) records here, then logs as
   * usual. Only the message and the error's message are kept, never the record's other fields.
   */
  logHook(): (this: { bindings(): Record<string, unknown> }, args: unknown[], method: (...a: unknown[]) => void, level: number) => void {
    const ring = this;
    return function (this: { bindings(): Record<string, unknown> }, args, method, level) {
      if (level >= 40) {
        try {
          ring.add(level >= 50 ? 'error' : 'warn', describe(args), sourceOf(this.bindings()));
        } catch {
          // The status page losing a record must never cost the log line.
        }
      }
      method.apply(this, args);
    };
  }
}

function sourceOf(bindings: Record<string, unknown>): string | undefined {
  const strategy = bindings['strategy'];
  return typeof strategy === 'string' ? strategy : undefined;
}

/** `message: error message` from pino's call arguments (`(obj, msg)` or `(msg)`). */
function describe(args: unknown[]): string {
  const [first, second] = args;
  if (typeof first === 'string') return first;
  const msg = typeof second === 'string' ? second : '';
  if (first instanceof Error) return msg ? `${msg}: ${first.message}` : first.message;
  const obj = (first ?? {}) as Record<string, unknown>;
  const err = obj['err'];
  const detail = err instanceof Error ? err.message : typeof err === 'string' ? err : undefined;
  const where = typeof obj['upstream'] === 'string' ? ` (${obj['upstream']})` : '';
  return `${msg}${where}${detail ? `: ${detail}` : ''}`;
}
