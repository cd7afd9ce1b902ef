import type { z } from 'zod';
import { describeField } from './schema-info.js';

/**
 * Converts an env string by the field's schema type. A string that is no number (or boolean) is
 * passed on unchanged, so validation says "expected a number, got a string" and names the variable.
 */
export function convertEnvValue(schema: z.ZodType, raw: string): unknown {
  const type = describeField(schema).type;
  if (type === 'number') return raw.trim() !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  if (type === 'bool') return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
  return raw;
}

function envName(prefix: string, parts: string[]): string {
  return `${prefix}_${parts.join('_')}`.toUpperCase().replace(/-/g, '_');
}

/** The `HOARD_<PATH>` (else `CACHEW_<PATH>`) variable that injects an attribute, when set. */
export function injectedFrom(env: NodeJS.ProcessEnv, parts: string[]): { env: string; value: string } | undefined {
  for (const prefix of ['HOARD', 'CACHEW']) {
    const name = envName(prefix, parts);
    const value = env[name];
    if (value !== undefined) return { env: name, value };
  }
  return undefined;
}

export function isInjectable(schema: z.ZodType): boolean {
  const type = describeField(schema).type;
  return !type.startsWith('list') && !type.startsWith('map');
}
