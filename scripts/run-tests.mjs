#!/usr/bin/env node
// Node 20's test runner does not expand globs, so we find the suites ourselves.
// Usage: npm test [-- <dir-or-file>...]   (default: every test/**/*.test.ts)
import { spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { globSync } from 'tinyglobby';

const args = process.argv.slice(2);
const roots = args.length > 0 ? args : ['test'];
const files = [];
for (const root of roots) {
  const isFile = statSync(root, { throwIfNoEntry: false })?.isFile();
  if (isFile) files.push(root);
  else files.push(...globSync(`${root.replace(/\/$/, '')}/**/*.test.ts`).sort());
}
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}`);
  process.exit(1);
}
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=240000', ...files],
  { stdio: 'inherit' },
);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
