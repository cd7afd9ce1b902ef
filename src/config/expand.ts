/**
 * Shell-like `${VAR}` / `$VAR` expansion for config strings. Unset variables become empty strings
 * (as cachew does); `$$` yields a literal `$`, so secrets containing `$` can still be written.
 */
export function expandVariables(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (match, braced?: string, bare?: string) => {
    if (match === '$$') return '$';
    return env[braced ?? bare ?? ''] ?? '';
  });
}
