import { Command, Option } from 'commander';
import type { GlobalOptions } from './options.js';
import { applyEnvDefaults } from './env-flags.js';
import { packageVersion } from './version.js';


function fail(err: unknown): never {
  process.stderr.write(`hoard: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
}

const program = new Command('hoard')
  .description('Tiered caching proxy for git, Go modules, release assets and build artifacts, and its client.')
  .version(`hoard ${packageVersion()}`, '-v, --version', 'print the version')
  .addOption(new Option('--url <url>', 'hoard server URL (default http://127.0.0.1:8080)').default('http://127.0.0.1:8080'))
  .addOption(new Option('--authorization <value>', 'Authorization header sent to the server'))
  .option('--platform', 'prefix keys with the OS and architecture as Go names them (linux-amd64-)')
  .addOption(new Option('--daily', 'prefix keys with the local date (YYYY-MM-DD-, before any platform)').conflicts('hourly'))
  .addOption(new Option('--hourly', 'prefix keys with the local date and hour (YYYY-MM-DD-HH-)').conflicts('daily'))
  .option('-q, --quiet', 'no progress bars or status lines')
  .addOption(new Option('--log-level <level>', 'client log level: debug adds a line per HTTP request; warn or error hide status lines').choices(['debug', 'info', 'warn', 'error']).default('info'))
  .option('--log-json', 'status and debug lines as JSON objects')
  .option('--log-remap <spec>', "cachew's log attribute remapping; hoard's client logs no attributes, so it has no effect (warned)")
  .option('--log-headers <spec>', "cachew's request-header log attributes; no effect in hoard's client (warned)")
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Exit codes: 0 success; 2 the object or snapshot is not in the cache (get, stat, restore,
git restore); 1 any other error.

Examples:
  hoard serve                                   run the server on the embedded default config
  echo hi | hoard put default greeting --ttl 1h store stdin
  hoard get default greeting -o greeting.txt    fetch it
  hoard save deps . node_modules -H package-lock.json
  hoard restore deps . -H package-lock.json     exit 0 hit, 2 miss, 1 error
  hoard git restore https://github.com/org/repo ./repo`,
  );

program
  .command('serve')
  .description('run the hoard server')
  .option('-c, --config <file>', 'config file (default: $HOARD_CONFIG, ./hoard.hcl, else the embedded default)')
  .option('--schema', 'print every config block and attribute with type, default and help, then exit')
  .action(async (opts: { config?: string; schema?: boolean }) => {
    const { runServer } = await import('../app/run.js');
    const code = await runServer({ configPath: opts.config, schema: opts.schema ?? false });
    process.exit(code);
  });

const lazyObjects = () => import('./object-commands.js');

program
  .command('get <namespace> <key>')
  .description('download an object (headers to stderr)')
  .option('-o, --output <file>', 'write to a file instead of stdout')
  .addHelpText('after', '\nExit codes: 0 found, 2 not in the cache, 1 error.')
  .action(async (ns: string, key: string, opts: { output?: string }) => (await lazyObjects()).getCommand(program.opts<GlobalOptions>(), ns, key, opts).catch(fail));

program
  .command('put <namespace> <key> [file]')
  .description('upload an object from a file or stdin')
  .option('--ttl <duration>', 'time to live, e.g. 1h')
  .option('-H, --header <k=v...>', 'extra header to store (repeatable)')
  .action(async (ns: string, key: string, file: string | undefined, opts: { ttl?: string; header?: string[] }) =>
    (await lazyObjects()).putCommand(program.opts<GlobalOptions>(), ns, key, file, opts).catch(fail),
  );

program
  .command('stat <namespace> <key>')
  .description('print the headers of an object')
  .addHelpText('after', '\nExit codes: 0 found, 2 not in the cache, 1 error.')
  .action(async (ns: string, key: string) => (await lazyObjects()).statCommand(program.opts<GlobalOptions>(), ns, key).catch(fail));

program
  .command('delete <namespace> <key>')
  .description('delete an object')
  .action(async (ns: string, key: string) => (await lazyObjects()).deleteCommand(program.opts<GlobalOptions>(), ns, key).catch(fail));

program
  .command('namespaces')
  .description('list namespaces holding objects')
  .action(async () => (await lazyObjects()).namespacesCommand(program.opts<GlobalOptions>()).catch(fail));

/** `-H/--hash-files` as cachew spells it; `--hash` (hoard's first spelling) still works, unlisted. */
function keyOptions(cmd: Command): Command {
  return cmd
    .option('--key <key>', 'cache key')
    .option('-H, --hash-files <glob...>', 'derive the key from the contents of matching files (repeatable; ** crosses directories)')
    .addOption(new Option('--hash <glob...>').hideHelp());
}

/** Merges the hidden `--hash` spelling into `hashFiles`. */
function keyFlags<T extends { key?: string; hashFiles?: string[]; hash?: string[] }>(opts: T): T {
  const hashFiles = [...(opts.hashFiles ?? []), ...(opts.hash ?? [])];
  return { ...opts, hashFiles };
}

keyOptions(
  program
    .command('save <namespace> <dir> [paths...]')
    .description('archive a directory (tar + zstd) and upload it; nothing is stored if archiving fails'),
)
  .option('--ttl <duration>', 'time to live, e.g. 24h')
  .option('--exclude <pattern...>', 'tar exclude pattern (repeatable)')
  .option('--zstd-threads <n>', 'zstd threads (0 = all cores)', '0')
  .action(async (ns: string, dir: string, paths: string[], opts: { key?: string; hashFiles?: string[]; hash?: string[]; ttl?: string; exclude?: string[]; zstdThreads: string }) =>
    (await lazyObjects()).saveCommand(program.opts<GlobalOptions>(), ns, dir, paths, keyFlags(opts)).catch(fail),
  );

keyOptions(
  program
    .command('restore <namespace> <dir>')
    .description('download an archive and extract it')
    .addHelpText('after', '\nExit codes: 0 restored, 2 not in the cache, 1 error.'),
)
  .option('--zstd-threads <n>', 'zstd threads', '0')
  .action(async (ns: string, dir: string, opts: { key?: string; hashFiles?: string[]; hash?: string[]; zstdThreads: string }) =>
    (await lazyObjects()).restoreCommand(program.opts<GlobalOptions>(), ns, dir, keyFlags(opts)).catch(fail),
  );

const gitGroup = program.command('git').description('git repository commands');
gitGroup
  .command('restore <repo-url> <dir>')
  .description('restore a repository from its hoard snapshot plus delta bundle (exit 2 when no snapshot exists)')
  .option('--no-bundle', 'do not apply the delta bundle')
  .option('--ref <name=sha...>', 'make sure a ref exists (at sha when given) after restoring')
  .option('--commit <sha...>', 'make sure a commit exists after restoring')
  .option('--concurrency <n>', 'parallel ranged downloads (default: 1 when the server is on this machine, else 8)')
  .option('--chunk-mb <n>', 'download chunk size in MiB', '16')
  .option('--download-concurrency <n>', "cachew's name for --concurrency")
  .option('--download-chunk-size-mb <n>', "cachew's name for --chunk-mb")
  .option('--zstd-threads <n>', 'zstd threads (0 = all cores)', '0')
  .action(async (repoUrl: string, dir: string, flags: import('./git-commands.js').GitRestoreFlags) =>
    (await import('./git-commands.js')).gitRestoreCommand(program.opts<GlobalOptions>(), repoUrl, dir, flags).catch(fail),
  );

// Every flag also comes from HOARD_<FLAG>, then CACHEW_<FLAG> (cachew's env mapping).
try {
  applyEnvDefaults(program, process.env);
} catch (err) {
  fail(err);
}
program.hook('preAction', () => {
  const g = program.opts<GlobalOptions>();
  for (const [flag, value] of [['--log-remap', g.logRemap], ['--log-headers', g.logHeaders]] as const) {
    if (value !== undefined) process.stderr.write(`hoard: warning: ${flag} has no effect in hoard's client (it writes no structured request logs); accepted for cachew compatibility\n`);
  }
});
await program.parseAsync(process.argv);
