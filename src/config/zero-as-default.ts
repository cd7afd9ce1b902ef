import type { z } from 'zod';

/**
 * `config[attribute]`, or the schema's own default for it when the file wrote 0. cachew's configs
 * write 0 for limits and TTLs they mean as "unset"; hoard reads such a 0 as the default rather
 * than as "nothing" or "unbounded". The default is read from the schema, so it is written once.
 */
export function zeroAsDefault<C extends Record<string, unknown>, K extends keyof C & string>(schema: z.ZodObject, config: C, attribute: K): C[K] {
  const value = config[attribute];
  if (value !== 0) return value;
  const field = schema.shape[attribute] as z.ZodType | undefined;
  if (!field) throw new Error(`zeroAsDefault: the schema has no attribute ${attribute}`);
  return field.parse(undefined) as C[K];
}
