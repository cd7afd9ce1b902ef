#!/usr/bin/env node
/**
 * The `hoard` executable. `hoard --version` is answered before any dependency loads (commander
 * and the command modules cost tens of milliseconds, and version probes run on every CI job);
 * everything else loads the command-line program.
 */
import { packageVersion } from './version.js';

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  process.stdout.write(`hoard ${packageVersion()}\n`);
} else {
  await import('./program.js');
}
