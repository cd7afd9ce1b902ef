import { readFileSync } from 'node:fs';

/** The package version, found from src/cli (tsx) and dist/src/cli (compiled) alike. */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'hoard') return pkg.version ?? '0.0.0';
    } catch {
      // try the next level
    }
  }
  return '0.0.0';
}
