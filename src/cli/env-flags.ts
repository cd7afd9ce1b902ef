import type { Command, Option } from 'commander';

/**
 * cachew's CLI reads every flag from `CACHEW_<FLAG>` as well (kong's env mapping, reference §6.1),
 * so CI set-ups configure it through the environment. hoard reads `HOARD_<FLAG>` first, then
 * `CACHEW_<FLAG>`, for every option of every command; a flag on the command line wins. Empty
 * values count as unset, as a shell's `X= cmd` means.
 */

/** The environment variable names that may supply `option` (`--zstd-threads` → HOARD_ZSTD_THREADS, CACHEW_ZSTD_THREADS). */
export function envNamesFor(option: Option): string[] {
  const flag = (option.long ?? '').replace(/^--/, '');
  const name = flag.toUpperCase().replace(/-/g, '_');
  return [`HOARD_${name}`, `CACHEW_${name}`];
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** Parses a boolean flag's environment value; anything else is an error naming the variable. */
export function envBoolean(name: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new Error(`${name} must be true or false (1/0, yes/no), got ${JSON.stringify(value)}`);
}

/** Options never taken from the environment: they are not settings. */
const NOT_FROM_ENV = new Set(['--help', '--version']);

/**
 * Gives every option of `root` and its subcommands an environment default, resolved now from
 * `env`. Help shows the variable names, never the value (it may be a credential). Variadic
 * options split their value on commas, as kong does.
 */
export function applyEnvDefaults(root: Command, env: NodeJS.ProcessEnv): void {
  const visit = (cmd: Command) => {
    for (const option of cmd.options as Option[]) {
      if (!option.long || NOT_FROM_ENV.has(option.long) || option.negate || option.hidden) continue;
      const names = envNamesFor(option);
      const found = names.find((n) => env[n]);
      if (!option.defaultValueDescription) option.defaultValueDescription = `env ${names.join(', then ')}`;
      if (found === undefined) continue;
      const raw = env[found] as string;
      const value = option.isBoolean() ? envBoolean(found, raw) : option.variadic ? raw.split(',').map((s) => s.trim()).filter(Boolean) : raw;
      // Commander checks choices only on the command line; an environment value gets the same check.
      if (option.argChoices && typeof value === 'string' && !option.argChoices.includes(value)) {
        throw new Error(`${found} must be one of ${option.argChoices.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      // Commander copied the default into the command's values when the option was added; set the
      // value itself, marked as coming from the environment (a command-line flag still wins).
      option.defaultValue = value;
      cmd.setOptionValueWithSource(option.attributeName(), value, 'env');
    }
    for (const sub of cmd.commands as Command[]) visit(sub);
  };
  visit(root);
}
