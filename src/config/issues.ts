import type { z } from 'zod';
import type { HclValuePositions } from './hcl.js';

/**
 * Turns zod 4 validation issues into what a person editing the file needs: which attribute (and
 * which element of it), what was expected and what was found, and where. zod 4's own messages
 * ("Invalid input: expected number, received string") name neither the attribute nor the place,
 * and it only reports the offending value when asked (`reportInput`), so load.ts parses with
 * `{ reportInput: true }` and this file reads the issue's structured fields (`code`, `expected`,
 * `input`, `values`, `minimum`, ...) instead of its message.
 */

/** One issue, described: `field` is `allowed-hosts[1]`-style, `text` the problem itself. */
export interface DescribedIssue {
  /** The attribute path as written in HCL, or undefined for the block as a whole. */
  field: string | undefined;
  text: string;
  /** Path into the block's values, for finding the position. */
  path: PropertyKey[];
  /** Set for an attribute the schema does not know (the text then needs the valid names). */
  unknownAttribute?: string;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'a boolean (true or false)',
  array: 'a list',
  record: 'an object',
  object: 'an object',
  map: 'an object',
};

/** What a value from the file is, in HCL words. */
export function describeValue(input: unknown): string {
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  switch (typeof input) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'an object';
    default:
      return typeof input;
  }
}

/** `allowed-hosts[1]`, `headers["X-A"]`. */
export function formatField(path: PropertyKey[]): string | undefined {
  if (!path.length) return undefined;
  const [first, ...rest] = path;
  return `${String(first)}${rest.map((p) => (typeof p === 'number' ? `[${p}]` : `[${JSON.stringify(String(p))}]`)).join('')}`;
}

function bound(kind: 'small' | 'big', issue: { origin: string; inclusive?: boolean; minimum?: unknown; maximum?: unknown }, input: unknown): string {
  const limit = kind === 'small' ? issue.minimum : issue.maximum;
  const n = Number(limit);
  switch (issue.origin) {
    case 'string':
      if (kind === 'small' && n === 1) return 'must not be empty';
      return `expected ${kind === 'small' ? 'at least' : 'at most'} ${n} characters, got ${String(input).length}`;
    case 'array':
    case 'set':
      return `expected ${kind === 'small' ? 'at least' : 'at most'} ${n} element${n === 1 ? '' : 's'}, got ${Array.isArray(input) ? input.length : '?'}`;
    default: {
      const op = kind === 'small' ? (issue.inclusive === false ? '>' : '>=') : issue.inclusive === false ? '<' : '<=';
      return `expected a number ${op} ${String(limit)}, got ${String(input)}`;
    }
  }
}

/**
 * Describes each issue. `isGiven(path)` says whether the attribute at `path[0]` was written (or
 * injected): a type or enum issue on an absent attribute means it is required and missing.
 */
export function describeIssues(error: z.ZodError, isGiven: (attribute: string) => boolean): DescribedIssue[] {
  const out: DescribedIssue[] = [];
  for (const issue of error.issues) {
    const path = issue.path;
    const field = formatField(path);
    const absent = path.length === 1 && !isGiven(String(path[0]));
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case 'unrecognized_keys':
        // One problem per key: each was written on its own line.
        for (const key of issue.keys) out.push({ field, text: `unknown attribute ${JSON.stringify(key)}`, path: [...path, key], unknownAttribute: key });
        continue;
      case 'invalid_type':
        if (absent) out.push({ field, text: 'required attribute is missing', path });
        else if (issue.expected === 'int' && typeof input === 'number') out.push({ field, text: `expected a whole number, got ${input}`, path });
        else out.push({ field, text: `expected ${EXPECTED[issue.expected] ?? issue.expected}, got ${describeValue(input)}`, path });
        continue;
      case 'invalid_value': {
        if (absent) {
          out.push({ field, text: 'required attribute is missing', path });
          continue;
        }
        const choices = issue.values.map((v) => JSON.stringify(v)).join(', ');
        const got = typeof input === 'string' ? JSON.stringify(input) : describeValue(input);
        out.push({ field, text: issue.values.length === 1 ? `expected ${choices}, got ${got}` : `expected one of ${choices}, got ${got}`, path });
        continue;
      }
      case 'too_small':
        out.push({ field, text: bound('small', issue, input), path });
        continue;
      case 'too_big':
        out.push({ field, text: bound('big', issue, input), path });
        continue;
      case 'not_multiple_of':
        out.push({ field, text: `expected a multiple of ${String(issue.divisor)}, got ${String(input)}`, path });
        continue;
      case 'invalid_format':
        // Formats carry their own explanation (a regex's message says what the pattern means).
        out.push({ field, text: `${issue.message}, got ${JSON.stringify(input)}`, path });
        continue;
      default:
        // custom (duration), invalid_union, invalid_key, invalid_element: the message is the detail.
        out.push({ field, text: issue.message, path });
    }
  }
  return out;
}

/** The deepest known position along `path` inside one attribute's value. */
export function positionWithin(at: HclValuePositions, path: PropertyKey[]): HclValuePositions {
  let here = at;
  for (const step of path) {
    const next = typeof step === 'number' ? here.items?.[step] : here.entries && Object.hasOwn(here.entries, String(step)) ? here.entries[String(step)] : undefined;
    if (!next) break;
    here = next;
  }
  return here;
}
