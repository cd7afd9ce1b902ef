import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ProviderKind, ProviderSpec } from './provider.js';
import { HclSyntaxError, parseHcl, type HclAttribute, type HclBlock, type HclBody, type HclPosition, type HclValue, type HclValuePositions } from './hcl.js';
import { Problems, reportIssues, validList, type ProblemPlace } from './problems.js';
import { convertEnvValue, injectedFrom, isInjectable } from './env-injection.js';
import { globalAttributeSchemas, globalBlockSchemas, repeatableBlocks, type GlobalConfig } from './global-schema.js';
import { expandVariables } from './expand.js';
import { shapeOf } from './schema-info.js';

export type { GlobalConfig } from './global-schema.js';

/** One or more config problems; the message holds one `file:line:col: …` line per problem. */
export class ConfigError extends Error {
  readonly file: string;
  readonly line: number | undefined;
  readonly problems: string[];

  constructor(file: string, problems: string[], line?: number) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.file = file;
    this.line = line;
    this.problems = problems;
  }
}

/** A validated `cache`, `metadata` or `strategy` block. */
export interface ProviderBlock {
  kind: ProviderKind;
  name: string;
  label?: string;
  config: Record<string, unknown>;
  file: string;
  line: number;
}

/** The whole validated configuration. */
export interface LoadedConfig {
  /** Where it came from: a file path or `embedded default`. */
  source: string;
  global: GlobalConfig;
  providers: ProviderBlock[];
}

const PROVIDER_KINDS: ProviderKind[] = ['cache', 'metadata', 'strategy'];

/** The attributes of one body by name (the first of a duplicate), and its nested blocks. */
interface BodyItems {
  attrs: Map<string, HclAttribute>;
  nested: HclBlock[];
}

/** Splits a body; an attribute set twice is a problem naming both places (`where`: "in cache disk"). */
function itemsOf(body: HclBody, where: string, problems: Problems): BodyItems {
  const attrs = new Map<string, HclAttribute>();
  const nested: HclBlock[] = [];
  for (const item of body.items) {
    if (item.kind === 'block') {
      nested.push(item);
      continue;
    }
    const first = attrs.get(item.name);
    if (first) {
      problems.add(item, `duplicate attribute ${JSON.stringify(item.name)}${where} (first set at ${problems.at(first)})`);
      continue;
    }
    attrs.set(item.name, item);
  }
  return { attrs, nested };
}

/**
 * cachew's README still writes provider blocks bare (`git {}`, `disk {}`), a form cachew itself
 * refuses since its #230: name the block the user meant.
 */
function bareProviderHint(block: HclBlock, specsByKind: Map<ProviderKind, Map<string, ProviderSpec>>): string {
  const kinds = PROVIDER_KINDS.filter((k) => specsByKind.get(k)?.has(block.type));
  if (!kinds.length) return '';
  const label = block.labels.length ? ` ${block.labels.map((l) => JSON.stringify(l)).join(' ')}` : '';
  return `; did you mean ${kinds.map((k) => `${k} ${block.type}${label} { ... }`).join(' or ')}? (provider blocks take their kind first, as cachew requires since #230)`;
}

/** zod reports the offending value only when asked; the messages need it. */
const PARSE_OPTIONS = { reportInput: true } as const;

/**
 * Loads and validates a configuration. Every problem is reported as `file:line:col: …` at the
 * offending attribute, value or list element: unknown blocks and attributes (with the valid
 * choices), wrong types, values out of range, attributes set twice, and `${VAR}`s that are not
 * set. Strings are expanded from `env` plus HOARD_STATE/CACHEW_STATE and HOARD_URL/CACHEW_URL;
 * absent global attributes may be injected from `HOARD_<PATH>` (or `CACHEW_<PATH>`), and a bad
 * injected value names its variable. Throws ConfigError with every problem found.
 */
export function loadConfig(opts: {
  path?: string | undefined;
  text?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  specs: ProviderSpec[];
  source?: string;
}): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.path ?? opts.source ?? 'embedded default';
  let text = opts.text;
  if (text === undefined) {
    if (!opts.path) throw new ConfigError(file, ['no configuration given']);
    try {
      text = readFileSync(opts.path, 'utf8');
    } catch (err) {
      throw new ConfigError(file, [`${file}: cannot read config: ${(err as Error).message}`]);
    }
  }
  let body: HclBody;
  try {
    body = parseHcl(text, file);
  } catch (err) {
    if (err instanceof HclSyntaxError) throw new ConfigError(file, [err.message], err.line);
    throw err;
  }

  const problems = new Problems(file);
  const top = itemsOf(body, '', problems);
  const unsetReporter = (place: ProblemPlace, context: string) => (name: string) =>
    problems.add(place, `${context}: environment variable ${name} is not set (an empty value counts as set; write $$ for a literal $)`);

  // Pass 1: resolve `state`, `bind` and `url` so they can be expanded everywhere else. A value of
  // the wrong type is left to validation (which reports it); the default stands in meanwhile.
  const baseEnv: NodeJS.ProcessEnv = { ...env };
  const resolveTop = (name: string): string | undefined => {
    const attr = top.attrs.get(name);
    if (attr) return typeof attr.value === 'string' ? expandVariables(attr.value, baseEnv, unsetReporter(attr.valueAt, name)) : undefined;
    const injected = injectedFrom(env, [name]);
    return injected ? expandVariables(injected.value, baseEnv, unsetReporter(injected, name)) : undefined;
  };
  const state = path.resolve(cwd, resolveTop('state') ?? './state');
  const bind = resolveTop('bind') ?? '127.0.0.1:8080';
  const url = (resolveTop('url') ?? `http://${bind}`).replace(/\/+$/, '');
  const expandEnv: NodeJS.ProcessEnv = {
    ...env,
    HOARD_STATE: state,
    CACHEW_STATE: state,
    HOARD_URL: env['HOARD_URL'] ?? url,
    CACHEW_URL: env['CACHEW_URL'] ?? url,
  };
  /** Expands every string inside a value, reporting unset variables at the string's position. */
  const expand = (value: HclValue, at: HclValuePositions, context: string): HclValue => {
    if (typeof value === 'string') return expandVariables(value, expandEnv, unsetReporter(at, context));
    if (Array.isArray(value)) return value.map((v, i) => expand(v, at.items?.[i] ?? at, context));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, at.entries?.[k] ?? at, context)]));
    return value;
  };
  /** A block's attribute values, expanded; attributes its schema does not know are left as written. */
  const valuesOf = (attrs: Map<string, HclAttribute>, known: Record<string, unknown>, where: string): Record<string, unknown> =>
    Object.fromEntries([...attrs].map(([name, attr]) => [name, Object.hasOwn(known, name) ? expand(attr.value, attr.valueAt, `${where}: ${name}`) : attr.value]));
  const expandDefaults = (value: unknown): unknown => (typeof value === 'string' ? expandVariables(value, expandEnv) : value);

  // Top-level attributes.
  const globalValues: Record<string, unknown> = {};
  const topInjected = new Map<string, { env: string; value: string }>();
  for (const [name, attr] of top.attrs) {
    if (!Object.hasOwn(globalAttributeSchemas, name)) {
      problems.add(attr, `unknown attribute ${JSON.stringify(name)} (valid: ${validList(Object.keys(globalAttributeSchemas))})`);
      continue;
    }
    // state, bind and url were expanded in pass 1 (and their unset variables reported there).
    globalValues[name] = ['state', 'bind', 'url'].includes(name) ? attr.value : expand(attr.value, attr.valueAt, name);
  }
  for (const [name, schema] of Object.entries(globalAttributeSchemas)) {
    if (name in globalValues || !isInjectable(schema)) continue;
    const injected = injectedFrom(env, [name]);
    if (injected === undefined) continue;
    globalValues[name] = convertEnvValue(schema, injected.value);
    topInjected.set(name, injected);
  }
  const resolved: Record<string, string> = { state, bind, url };
  for (const [name, value] of Object.entries(resolved)) {
    const attr = top.attrs.get(name);
    if (!attr || typeof attr.value === 'string') globalValues[name] = value;
  }
  const attrResult = z.strictObject(globalAttributeSchemas).safeParse(globalValues, PARSE_OPTIONS);
  if (!attrResult.success) {
    reportIssues(attrResult.error, { where: undefined, attrs: top.attrs, blockAt: undefined, injected: topInjected, valid: Object.keys(globalAttributeSchemas) }, problems);
  }

  // Blocks.
  const blockInputs = new Map<string, Array<{ items: BodyItems; at: HclPosition }>>();
  const providers: ProviderBlock[] = [];
  const specsByKind = new Map<ProviderKind, Map<string, ProviderSpec>>();
  for (const kind of PROVIDER_KINDS) specsByKind.set(kind, new Map());
  for (const spec of opts.specs) specsByKind.get(spec.kind)?.set(spec.name, spec);
  const validBlocks = [...Object.keys(globalBlockSchemas), ...PROVIDER_KINDS];
  const declared: Record<ProviderKind, HclBlock[]> = { cache: [], metadata: [], strategy: [] };

  for (const block of top.nested) {
    if (Object.hasOwn(globalBlockSchemas, block.type)) {
      const items = itemsOf(block.body, ` in ${block.type} block`, problems);
      for (const sub of items.nested) problems.add(sub, `unexpected block ${JSON.stringify(sub.type)} inside ${JSON.stringify(block.type)}`);
      if (block.labels.length) problems.add(block, `block ${JSON.stringify(block.type)} takes no label`);
      const list = blockInputs.get(block.type) ?? [];
      if (list.length && !repeatableBlocks.has(block.type)) {
        problems.add(block, `duplicate ${JSON.stringify(block.type)} block (first at ${problems.at(list[0]!.at)})`);
        continue;
      }
      list.push({ items, at: block });
      blockInputs.set(block.type, list);
      continue;
    }
    const kind = PROVIDER_KINDS.find((k) => k === block.type);
    if (!kind) {
      problems.add(block, `unknown block ${JSON.stringify(block.type)} (valid: ${validList(validBlocks)})${bareProviderHint(block, specsByKind)}`);
      continue;
    }
    declared[kind].push(block);
    const [name, label, ...extra] = block.labels;
    const specs = specsByKind.get(kind) ?? new Map<string, ProviderSpec>();
    if (!name) {
      problems.add(block, `${kind} block needs a name, e.g. ${kind} ${[...specs.keys()][0] ?? 'name'} {} (valid: ${validList(specs.keys())})`);
      continue;
    }
    const spec = specs.get(name);
    if (!spec) {
      problems.add(block, `unknown ${kind} ${JSON.stringify(name)} (valid: ${validList(specs.keys())})`);
      continue;
    }
    const where = `${kind} ${name}`;
    const items = itemsOf(block.body, ` in ${where}`, problems);
    for (const sub of items.nested) problems.add(sub, `unexpected block ${JSON.stringify(sub.type)} inside ${JSON.stringify(block.type)}`);
    const labelRule = spec.label ?? 'none';
    if (extra.length || (label !== undefined && labelRule === 'none')) {
      problems.add(block, `${where} takes ${labelRule === 'none' ? 'no label' : 'one label'}`);
      continue;
    }
    if (label === undefined && labelRule === 'required') {
      problems.add(block, `${where} needs a label, e.g. ${kind} ${name} "https://example.com" {}`);
      continue;
    }
    const shape = shapeOf(spec.schema);
    const withDefaults = applyExpandedDefaults(spec.schema, valuesOf(items.attrs, shape, where), expandDefaults);
    const result = spec.schema.safeParse(withDefaults, PARSE_OPTIONS);
    if (!result.success) {
      reportIssues(result.error, { where, attrs: items.attrs, blockAt: block, injected: new Map(), valid: Object.keys(shape) }, problems);
      continue;
    }
    providers.push({
      kind,
      name,
      ...(label !== undefined ? { label: expandVariables(label, expandEnv, unsetReporter(block, `${where} label`)) } : {}),
      config: result.data as Record<string, unknown>,
      file,
      line: block.line,
    });
  }

  // Global blocks: validate what the file gave plus env injection for absent attributes.
  const globalBlocks: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(globalBlockSchemas) as Array<[string, z.ZodObject]>) {
    const given = blockInputs.get(name) ?? [];
    const shape = shapeOf(schema);
    const injectedValues: Record<string, unknown> = {};
    const injected = new Map<string, { env: string; value: string }>();
    for (const [attr, fieldSchema] of Object.entries(shape)) {
      if (!isInjectable(fieldSchema)) continue;
      const source = injectedFrom(env, [name, attr]);
      if (source === undefined) continue;
      injectedValues[attr] = convertEnvValue(fieldSchema, source.value);
      injected.set(attr, source);
    }
    const inputs: Array<{ items: BodyItems; at: HclPosition | undefined }> = given.length
      ? given
      : injected.size || !repeatableBlocks.has(name)
        ? [{ items: { attrs: new Map(), nested: [] }, at: undefined }]
        : [];
    const parsed: unknown[] = [];
    for (const input of inputs) {
      const where = `${name} block`;
      const merged = applyExpandedDefaults(schema, { ...injectedValues, ...valuesOf(input.items.attrs, shape, where) }, expandDefaults);
      const result = schema.safeParse(merged, PARSE_OPTIONS);
      if (!result.success) {
        reportIssues(result.error, { where, attrs: input.items.attrs, blockAt: input.at, injected, valid: Object.keys(shape) }, problems);
      } else {
        parsed.push(result.data);
      }
    }
    globalBlocks[name] = repeatableBlocks.has(name) ? parsed : parsed[0];
  }

  if (declared.cache.length === 0) problems.add(undefined, 'expected at least one cache backend, e.g. cache disk {}');
  if (declared.metadata.length === 0) problems.add(undefined, 'expected a metadata backend, e.g. metadata memory {}');
  if (declared.metadata.length > 1) problems.add(declared.metadata[1], `only one metadata block is allowed (first at ${problems.at(declared.metadata[0]!)})`);

  if (problems.size) throw new ConfigError(file, problems.messages());
  const attrs = attrResult.data as Record<string, unknown>;
  // Each block was parsed by its own schema above, through a loop TypeScript cannot follow:
  // this is the one place the typed view of the global config is asserted; everything downstream
  // (wiring, strategies, registries) receives it typed.
  const global = { ...attrs, ...globalBlocks } as unknown as GlobalConfig;
  return { source: opts.source ?? file, global, providers };
}

/** Fills absent string defaults that mention `${HOARD_STATE}` & co. with their expansion. */
function applyExpandedDefaults(schema: z.ZodObject, values: Record<string, unknown>, expand: (v: unknown) => unknown): Record<string, unknown> {
  const out = { ...values };
  for (const [attr, field] of Object.entries(shapeOf(schema))) {
    if (attr in out) continue;
    const def = (field as unknown as { _zod: { def: { type: string; defaultValue?: unknown } } })._zod.def;
    if (def.type === 'default' && typeof def.defaultValue === 'string' && def.defaultValue.includes('$')) {
      out[attr] = expand(def.defaultValue);
    }
  }
  return out;
}
