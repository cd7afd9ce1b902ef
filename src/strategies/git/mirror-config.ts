// The git configuration of a mirror: what is written into it for serving, and how settings ride
// in a git child's environment (above every config file) instead.

/**
 * The upload-pack settings that decide which objects a mirror hands out by id (`strategy git {
 * serve-unreachable }`): any object it holds, or only what its refs reach. Reachable-only still
 * lets clients fetch any commit upstream advertises or once did and still reaches (`git fetch
 * origin <sha>`); what it refuses is a commit a force-push orphaned. git enforces this for
 * protocol v0/v1 only; for v2 the strategy checks wants itself (`Repository.unreachableWants`).
 */
export function wantPolicyConfig(serveUnreachable: boolean): Array<[string, string]> {
  return [
    ['uploadpack.allowAnySHA1InWant', String(serveUnreachable)],
    ['uploadpack.allowReachableSHA1InWant', 'true'],
    ['uploadpack.allowTipSHA1InWant', 'true'],
  ];
}

/**
 * `config` as environment variables (GIT_CONFIG_COUNT/KEY/VALUE, git ≥ 2.31): git ranks them above
 * every config file, so a mirror whose own config is older (made under another setting, not yet
 * re-configured after a restart) still follows them.
 */
export function configEnv(config: Array<[string, string]>): Record<string, string> {
  const env: Record<string, string> = { GIT_CONFIG_COUNT: String(config.length) };
  config.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/**
 * `env` with `config` appended to the GIT_CONFIG_COUNT entries it already has (the operator's
 * own, or hoard's), rather than replacing them.
 */
export function withConfigEnv(env: NodeJS.ProcessEnv, config: Array<[string, string]>): NodeJS.ProcessEnv {
  if (config.length === 0) return env;
  const first = Number(env['GIT_CONFIG_COUNT'] ?? 0) || 0;
  const out: NodeJS.ProcessEnv = { ...env, GIT_CONFIG_COUNT: String(first + config.length) };
  config.forEach(([key, value], i) => {
    out[`GIT_CONFIG_KEY_${first + i}`] = key;
    out[`GIT_CONFIG_VALUE_${first + i}`] = value;
  });
  return out;
}

/** Mirror configuration for serving (reference git §6.6). */
export function mirrorConfig(packThreads: number, serveUnreachable: boolean): Array<[string, string]> {
  return [
    ['protocol.version', '2'],
    ['uploadpack.allowFilter', 'true'],
    ...wantPolicyConfig(serveUnreachable),
    ['repack.writeBitmaps', 'true'],
    ['pack.useBitmaps', 'true'],
    ['core.commitGraph', 'true'],
    ['gc.writeCommitGraph', 'true'],
    ['fetch.writeCommitGraph', 'true'],
    ['core.multiPackIndex', 'true'],
    ['transfer.unpackLimit', '1'],
    ['fetch.unpackLimit', '1'],
    ['gc.auto', '0'],
    ['pack.deltaCacheSize', '512m'],
    ['pack.windowMemory', '1g'],
    ...(packThreads > 0 ? ([['pack.threads', String(packThreads)]] as Array<[string, string]>) : []),
  ];
}
