import type { z } from 'zod';

/** Which top-level HCL block a provider answers to. */
export type ProviderKind = 'cache' | 'metadata' | 'strategy';

/**
 * Describes one configurable provider block, e.g. `cache disk {}` or `strategy host "<url>" {}`.
 *
 * `schema` is a zod object whose keys are the HCL attribute names exactly as written (kebab-case).
 * Every field carries `.describe(help)` and, when optional, a `.default(...)`; durations use
 * `duration()` from ./duration.js. `--schema` output and validation errors are derived from it,
 * and unknown attributes are rejected (the object is strict).
 */
export interface ProviderSpec<S extends z.ZodObject = z.ZodObject> {
  kind: ProviderKind;
  name: string;
  description: string;
  schema: S;
  /** Whether the block takes a label after its name (`strategy host "https://…"`). */
  label?: 'none' | 'optional' | 'required';
}
