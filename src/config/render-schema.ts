import type { z } from 'zod';
import type { ProviderSpec } from './provider.js';
import { globalAttributeSchemas, globalBlockSchemas, repeatableBlocks } from './global-schema.js';
import { describeField, shapeOf } from './schema-info.js';

function renderAttributes(schema: z.ZodObject, indent: string): string[] {
  const out: string[] = [];
  for (const [name, field] of Object.entries(shapeOf(schema))) {
    const info = describeField(field);
    const help = info.help ? `${info.help} ` : '';
    const tail = info.required ? '(required)' : info.defaultText === undefined ? '(optional)' : '';
    out.push(`${indent}// ${help}${tail}`.trimEnd());
    out.push(`${indent}${name} = ${info.defaultText ?? `<${info.type}>`} # ${info.type}`);
  }
  return out;
}

/**
 * Renders every global attribute and block and every provider block as commented HCL: type,
 * default and help for each attribute. This is what `hoard serve --schema` prints.
 */
export function renderSchema(specs: ProviderSpec[]): string {
  const lines: string[] = ['# hoard configuration schema', '', '# Global attributes'];
  for (const [name, field] of Object.entries(globalAttributeSchemas)) {
    const info = describeField(field as z.ZodType);
    lines.push(`// ${info.help}`, `${name} = ${info.defaultText ?? `<${info.type}>`} # ${info.type}`);
  }
  for (const [name, schema] of Object.entries(globalBlockSchemas) as Array<[string, z.ZodObject]>) {
    lines.push('', `// ${schema.description ?? ''}${repeatableBlocks.has(name) ? ' (repeatable)' : ''}`, `${name} {`);
    lines.push(...renderAttributes(schema, '  '), '}');
  }
  for (const kind of ['cache', 'metadata', 'strategy'] as const) {
    for (const spec of specs.filter((s) => s.kind === kind).sort((a, b) => a.name.localeCompare(b.name))) {
      const label = spec.label === 'required' ? ' "<label>"' : spec.label === 'optional' ? ' ["<label>"]' : '';
      lines.push('', `// ${spec.description}`, `${kind} ${spec.name}${label} {`);
      lines.push(...renderAttributes(spec.schema, '  '), '}');
    }
  }
  return lines.join('\n') + '\n';
}
