import type { z } from 'zod';
import { formatDuration } from './duration.js';

/** What `--schema` and env injection need to know about one attribute. */
export interface FieldInfo {
  /** `string`, `number`, `bool`, `duration`, `list(string)`, `map(string)`, `enum(a|b)`. */
  type: string;
  /** Rendered default, or undefined when the attribute is required or has none. */
  defaultText: string | undefined;
  required: boolean;
  help: string;
}

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  defaultValue?: unknown;
  element?: z.ZodType;
  valueType?: z.ZodType;
  entries?: Record<string, string>;
}

function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

function typeName(schema: z.ZodType): string {
  const def = defOf(schema);
  switch (def.type) {
    case 'default':
    case 'optional':
    case 'nullable':
      return typeName(def.innerType as z.ZodType);
    case 'pipe':
      // Our only pipes are duration() (string → transform to ms).
      return 'duration';
    case 'array':
      return `list(${typeName(def.element as z.ZodType)})`;
    case 'record':
      return `map(${typeName(def.valueType as z.ZodType)})`;
    case 'enum':
      return `enum(${Object.values(def.entries ?? {}).join('|')})`;
    case 'boolean':
      return 'bool';
    default:
      return def.type;
  }
}

/** Describes one zod field of a config schema. */
export function describeField(schema: z.ZodType): FieldInfo {
  const type = typeName(schema);
  const def = defOf(schema);
  let defaultText: string | undefined;
  if (def.type === 'default') {
    const value = typeof def.defaultValue === 'function' ? (def.defaultValue as () => unknown)() : def.defaultValue;
    defaultText = type === 'duration' && typeof value === 'number' ? JSON.stringify(formatDuration(value)) : JSON.stringify(value);
  }
  const required = def.type !== 'default' && def.type !== 'optional';
  return { type, defaultText, required, help: schema.description ?? '' };
}

/** Attribute names → schemas of a zod object. */
export function shapeOf(schema: z.ZodObject): Record<string, z.ZodType> {
  return schema.shape as Record<string, z.ZodType>;
}
