/**
 * Shell-like `${VAR}` / `$VAR` expansion for config strings; `$$` yields a literal `$`, so secrets
 * containing `$` can still be written. A variable that is not set expands to the empty string (as
 * cachew does) and is reported to `onUnset`, once per name: the loader turns that into an error,
 * because a config that silently became `state = "/x"` puts data in the wrong place. A variable
 * set to the empty string is set. There is no `${VAR:-default}` form (cachew has none either).
 */
export function expandVariables(text: string, env: NodeJS.ProcessEnv, onUnset?: (name: string) => void): string {
  const reported = new Set<string>();
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, braced?: string, bare?: string) => {
    if (match === '$$') return '$';
    const name = braced ?? bare ?? '';
    const value = env[name];
    if (value === undefined && onUnset && !reported.has(name)) {
      reported.add(name);
      onUnset(name);
    }
    return value ?? '';
  });
}
