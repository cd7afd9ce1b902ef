import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { ProviderKind, ProviderSpec } from './provider.js';
import { HclSyntaxError, parseHcl, type HclAttribute, type HclBlock, type HclBody, type HclValue } from './hcl.js';
import { globalAttributeSchemas, globalBlockSchemas, repeatableBlocks, type GlobalConfig } from './global-schema.js';
import { expandVariables } from './expand.js';
import { describeField, shapeOf } from './schema-info.js';

export type { GlobalConfig } from './global-schema.js';

/** One or more config problems; the message holds one `file:line: …` line per problem. */
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

/**
 * The configuration used when no file is given (DESIGN §2). `state` and `bind` are deliberately
 * not written here: their schema defaults (`./state`, `127.0.0.1:8080`) are the same values, and
 * leaving them out lets env injection (`HOARD_BIND`/`CACHEW_BIND`, `HOARD_STATE`, …, §9.4) apply
 * to the default as it does to any file that omits them; a value written in a file always wins.
 */
export const EMBEDDED_DEFAULT_CONFIG = `# hoard embedded default configuration
# state = "./state"          (default; HOARD_STATE or CACHEW_STATE overrides)
# bind  = "127.0.0.1:8080"   (default; HOARD_BIND or CACHEW_BIND overrides)

cache disk {}
metadata memory {}

strategy git {}
strategy gomod {}
strategy github-releases {
  private-orgs = []
}
strategy hermit {}
`;

const PROVIDER_KINDS: ProviderKind[] = ['cache', 'metadata', 'strategy'];

/**
 * Picks the config source: `--config`, else `$HOARD_CONFIG`, else `$CACHEW_CONFIG`, else
 * `./hoard.hcl` when it exists, else the embedded default.
 */
export function resolveConfigSource(opts: { flag?: string | undefined; env: NodeJS.ProcessEnv; cwd: string }): {
  path?: string;
  text?: string;
  source: string;
} {
  const chosen = opts.flag || opts.env['HOARD_CONFIG'] || opts.env['CACHEW_CONFIG'];
  if (chosen) {
    const abs = path.resolve(opts.cwd, chosen);
    return { path: abs, source: abs };
  }
  const local = path.join(opts.cwd, 'hoard.hcl');
  if (existsSync(local)) return { path: local, source: local };
  return { text: EMBEDDED_DEFAULT_CONFIG, source: 'embedded default' };
}

function formatZodIssues(error: z.ZodError, file: string, fallbackLine: number, lines: Map<string, number>, where: string): string[] {
  return error.issues.map((issue) => {
    const first = String(issue.path[0] ?? '');
    const line = lines.get(first) ?? fallbackLine;
    const field = issue.path.length ? issue.path.join('.') : where;
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') {
      return `${file}:${line}: unknown attribute ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} in ${where}`;
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) message = 'required attribute is missing';
    return `${file}:${line}: ${where}: ${field}: ${message}`;
  });
}

function attributesOf(body: HclBody): { values: Record<string, HclValue>; lines: Map<string, number>; nested: HclBlock[] } {
  const values: Record<string, HclValue> = {};
  const lines = new Map<string, number>();
  const nested: HclBlock[] = [];
  for (const item of body.items) {
    if (item.kind === 'attribute') {
      values[item.name] = item.value;
      lines.set(item.name, item.line);
    } else {
      nested.push(item);
    }
  }
  return { values, lines, nested };
}

function validList(names: Iterable<string>): string {
  return [...names].sort().join(', ');
}

/** Parses the schema type of one field to pick how an env string is converted. */
function convertEnvValue(schema: z.ZodType, raw: string): unknown {
  const type = describeField(schema).type;
  if (type === 'number') return Number(raw);
  if (type === 'bool') return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
  return raw;
}

function envName(prefix: string, parts: string[]): string {
  return `${prefix}_${parts.join('_')}`.toUpperCase().replace(/-/g, '_');
}

function injectedValue(env: NodeJS.ProcessEnv, parts: string[]): string | undefined {
  return env[envName('HOARD', parts)] ?? env[envName('CACHEW', parts)];
}

function isInjectable(schema: z.ZodType): boolean {
  const type = describeField(schema).type;
  return !type.startsWith('list') && !type.startsWith('map');
}

/**
 * Loads and validates a configuration. Unknown blocks and attributes are errors everywhere
 * (including strategy blocks), each reported as `file:line: … (valid: …)`. Strings are expanded
 * from `env` plus HOARD_STATE/CACHEW_STATE and HOARD_URL/CACHEW_URL; absent global attributes
 * may be injected from `HOARD_<PATH>` (or `CACHEW_<PATH>`). Throws ConfigError.
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

  const problems: string[] = [];
  const top = attributesOf(body);

  // Pass 1: resolve `state` and `url` so they can be expanded everywhere else.
  const baseEnv: NodeJS.ProcessEnv = { ...env };
  const rawState = typeof top.values['state'] === 'string' ? top.values['state'] : injectedValue(env, ['state']) ?? './state';
  const state = path.resolve(cwd, expandVariables(rawState, baseEnv));
  const rawBind = typeof top.values['bind'] === 'string' ? top.values['bind'] : injectedValue(env, ['bind']) ?? '127.0.0.1:8080';
  const bind = expandVariables(rawBind, baseEnv);
  const rawUrl = typeof top.values['url'] === 'string' ? top.values['url'] : injectedValue(env, ['url']);
  const url = (rawUrl !== undefined ? expandVariables(rawUrl, baseEnv) : `http://${bind}`).replace(/\/+$/, '');
  const expandEnv: NodeJS.ProcessEnv = {
    ...env,
    HOARD_STATE: state,
    CACHEW_STATE: state,
    HOARD_URL: env['HOARD_URL'] ?? url,
    CACHEW_URL: env['CACHEW_URL'] ?? url,
  };
  const expand = (value: HclValue): HclValue => {
    if (typeof value === 'string') return expandVariables(value, expandEnv);
    if (Array.isArray(value)) return value.map(expand);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]));
    return value;
  };
  const expandDefaults = (value: unknown): unknown => (typeof value === 'string' ? expandVariables(value, expandEnv) : value);

  // Top-level attributes.
  const globalValues: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(top.values)) {
    if (!(name in globalAttributeSchemas)) {
      problems.push(`${file}:${top.lines.get(name)}: unknown attribute ${JSON.stringify(name)} (valid: ${validList(Object.keys(globalAttributeSchemas))})`);
      continue;
    }
    globalValues[name] = expand(value);
  }
  for (const [name, schema] of Object.entries(globalAttributeSchemas)) {
    if (name in globalValues || !isInjectable(schema)) continue;
    const injected = injectedValue(env, [name]);
    if (injected !== undefined) globalValues[name] = convertEnvValue(schema, injected);
  }
  globalValues['state'] = state;
  globalValues['url'] = url;
  const attrResult = z.strictObject(globalAttributeSchemas).safeParse(globalValues);
  if (!attrResult.success) problems.push(...formatZodIssues(attrResult.error, file, 1, top.lines, 'global'));

  // Blocks.
  const blockInputs = new Map<string, Array<{ values: Record<string, unknown>; lines: Map<string, number>; line: number }>>();
  const providers: ProviderBlock[] = [];
  const specsByKind = new Map<ProviderKind, Map<string, ProviderSpec>>();
  for (const kind of PROVIDER_KINDS) specsByKind.set(kind, new Map());
  for (const spec of opts.specs) specsByKind.get(spec.kind)?.set(spec.name, spec);
  const validBlocks = [...Object.keys(globalBlockSchemas), ...PROVIDER_KINDS];
  const declared: Record<ProviderKind, number[]> = { cache: [], metadata: [], strategy: [] };

  for (const block of top.nested) {
    const inner = attributesOf(block.body);
    for (const sub of inner.nested) {
      problems.push(`${file}:${sub.line}: unexpected block ${JSON.stringify(sub.type)} inside ${JSON.stringify(block.type)}`);
    }
    const values = Object.fromEntries(Object.entries(inner.values).map(([k, v]) => [k, expand(v)]));
    if (block.type in globalBlockSchemas) {
      if (block.labels.length) problems.push(`${file}:${block.line}: block ${JSON.stringify(block.type)} takes no label`);
      const list = blockInputs.get(block.type) ?? [];
      if (list.length && !repeatableBlocks.has(block.type)) {
        problems.push(`${file}:${block.line}: duplicate ${JSON.stringify(block.type)} block (first on line ${list[0]?.line})`);
        continue;
      }
      list.push({ values, lines: inner.lines, line: block.line });
      blockInputs.set(block.type, list);
      continue;
    }
    const kind = PROVIDER_KINDS.find((k) => k === block.type);
    if (!kind) {
      problems.push(`${file}:${block.line}: unknown block ${JSON.stringify(block.type)} (valid: ${validList(validBlocks)})`);
      continue;
    }
    declared[kind].push(block.line);
    const [name, label, ...extra] = block.labels;
    const specs = specsByKind.get(kind) ?? new Map<string, ProviderSpec>();
    if (!name) {
      problems.push(`${file}:${block.line}: ${kind} block needs a name, e.g. ${kind} ${[...specs.keys()][0] ?? 'name'} {} (valid: ${validList(specs.keys())})`);
      continue;
    }
    const spec = specs.get(name);
    if (!spec) {
      problems.push(`${file}:${block.line}: unknown ${kind} ${JSON.stringify(name)} (valid: ${validList(specs.keys())})`);
      continue;
    }
    const labelRule = spec.label ?? 'none';
    if (extra.length || (label !== undefined && labelRule === 'none')) {
      problems.push(`${file}:${block.line}: ${kind} ${name} takes ${labelRule === 'none' ? 'no label' : 'one label'}`);
      continue;
    }
    if (label === undefined && labelRule === 'required') {
      problems.push(`${file}:${block.line}: ${kind} ${name} needs a label, e.g. ${kind} ${name} "https://example.com" {}`);
      continue;
    }
    const withDefaults = applyExpandedDefaults(spec.schema, values, expandDefaults);
    const result = spec.schema.safeParse(withDefaults);
    if (!result.success) {
      problems.push(...formatZodIssues(result.error, file, block.line, inner.lines, `${kind} ${name}`).map((p) => appendValid(p, spec.schema)));
      continue;
    }
    providers.push({
      kind,
      name,
      ...(label !== undefined ? { label: expandVariables(label, expandEnv) } : {}),
      config: result.data as Record<string, unknown>,
      file,
      line: block.line,
    });
  }

  // Global blocks: validate what the file gave plus env injection for absent attributes.
  const globalBlocks: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(globalBlockSchemas) as Array<[string, z.ZodObject]>) {
    const given = blockInputs.get(name) ?? [];
    const injected: Record<string, unknown> = {};
    for (const [attr, fieldSchema] of Object.entries(shapeOf(schema))) {
      if (!isInjectable(fieldSchema)) continue;
      const raw = injectedValue(env, [name, attr]);
      if (raw !== undefined) injected[attr] = convertEnvValue(fieldSchema, raw);
    }
    const inputs = given.length ? given : Object.keys(injected).length || !repeatableBlocks.has(name) ? [{ values: {}, lines: new Map<string, number>(), line: 1 }] : [];
    const parsed: unknown[] = [];
    for (const input of inputs) {
      const merged = applyExpandedDefaults(schema, { ...injected, ...input.values }, expandDefaults);
      const result = schema.safeParse(merged);
      if (!result.success) {
        problems.push(...formatZodIssues(result.error, file, input.line, input.lines, `${name} block`).map((p) => appendValid(p, schema)));
      } else {
        parsed.push(result.data);
      }
    }
    globalBlocks[name] = repeatableBlocks.has(name) ? parsed : parsed[0];
  }

  if (declared.cache.length === 0) problems.push(`${file}: expected at least one cache backend, e.g. cache disk {}`);
  if (declared.metadata.length === 0) problems.push(`${file}: expected a metadata backend, e.g. metadata memory {}`);
  if (declared.metadata.length > 1) problems.push(`${file}:${declared.metadata[1]}: only one metadata block is allowed (first on line ${declared.metadata[0]})`);

  if (problems.length) throw new ConfigError(file, problems);
  const attrs = attrResult.data as Record<string, unknown>;
  const global = { ...attrs, ...globalBlocks } as unknown as GlobalConfig;
  return { source: opts.source ?? file, global, providers };
}

/** Adds the valid attribute names to unknown-attribute messages. */
function appendValid(problem: string, schema: z.ZodObject): string {
  if (!problem.includes('unknown attribute')) return problem;
  const names = Object.keys(shapeOf(schema));
  return names.length ? `${problem} (valid: ${validList(names)})` : `${problem} (this block takes no attributes)`;
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
