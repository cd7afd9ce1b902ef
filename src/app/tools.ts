import { spawnSync } from 'node:child_process';

/** System tools the server runs as child processes. */
export const REQUIRED_TOOLS = [
  { name: 'git', args: ['--version'], pkg: 'git', why: 'to mirror repositories' },
  { name: 'tar', args: ['--version'], pkg: 'tar', why: 'for snapshots and archives' },
  { name: 'zstd', args: ['--version'], pkg: 'zstd', why: 'for snapshots and archives' },
] as const;

/**
 * Returns one message per missing tool, worded to follow the caller's `hoard: ` prefix, e.g.
 * `zstd was not found on PATH (hoard runs it for snapshots and archives); install it, e.g. apt-get install -y zstd`.
 */
export function missingTools(env: NodeJS.ProcessEnv = process.env): string[] {
  const missing: string[] = [];
  for (const tool of REQUIRED_TOOLS) {
    const result = spawnSync(tool.name, tool.args, { env, stdio: 'ignore', timeout: 10_000 });
    const fix = `install it, e.g. apt-get install -y ${tool.pkg}`;
    if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      missing.push(`${tool.name} was not found on PATH (hoard runs it ${tool.why}); ${fix}`);
    } else if (result.error || result.status !== 0) {
      const how = result.error ? result.error.message : `exited with status ${result.status ?? result.signal}`;
      missing.push(`${tool.name} is on PATH but \`${tool.name} ${tool.args.join(' ')}\` failed (${how}); reinstall it, e.g. apt-get install -y ${tool.pkg}`);
    }
  }
  return missing;
}
