import { z } from 'zod';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  // Beyond Go's syntax (a superset, so cachew's values still parse): windows such as
  // stale-if-error = "7d" read better in days.
  d: 86_400_000,
};

/**
 * Parses a Go-syntax duration (`90s`, `1h30m`, `1.5h`, `0`) into milliseconds. Returns undefined
 * for anything else, including negative values, so callers can produce their own message.
 */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (s === '' || s.startsWith('-')) return undefined;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)/y;
  let total = 0;
  let pos = s.startsWith('+') ? 1 : 0;
  if (pos === s.length) return undefined;
  while (pos < s.length) {
    part.lastIndex = pos;
    const m = part.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? NaN);
    pos = part.lastIndex;
  }
  return Number.isFinite(total) ? Math.round(total) : undefined;
}

/** Formats milliseconds as a compact Go-style duration (`1h30m`, `250ms`, `0s`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  let rest = Math.round(ms / 1000);
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const m = Math.floor(rest / 60);
  const s = rest - m * 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || (!h && !m) ? `${s}s` : ''}`;
}

/** Zod type for a duration attribute: a Go duration string in, milliseconds out. */
export function duration() {
  return z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `invalid duration ${JSON.stringify(text)} (use Go syntax such as "90s", "1h30m")` });
      return z.NEVER;
    }
    return ms;
  });
}
