import { spawnSync } from 'node:child_process';

/** System tools the server runs as child processes. */
export const REQUIRED_TOOLS = [
  { name: 'git', args: ['--version'], pkg: 'git' },
  { name: 'tar', args: ['--version'], pkg: 'tar' },
  { name: 'zstd', args: ['--version'], pkg: 'zstd' },
] as const;

/** Returns one message per missing tool, e.g. `hoard needs zstd: install it with apt-get install -y zstd`. */
export function missingTools(env: NodeJS.ProcessEnv = process.env): string[] {
  const missing: string[] = [];
  for (const tool of REQUIRED_TOOLS) {
    const result = spawnSync(tool.name, tool.args, { env, stdio: 'ignore', timeout: 10_000 });
    if (result.error || result.status !== 0) {
      missing.push(`hoard needs ${tool.name} on the PATH: install it with apt-get install -y ${tool.pkg}`);
    }
  }
  return missing;
}
