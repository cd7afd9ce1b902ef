import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * `.ci/run`'s tool installation, run for real against stand-ins: a PATH holding only what the
 * script needs, with `id`, `sudo`, `apt-get` and `npm` replaced by logging fakes (apt-get
 * "installs" zstd by creating it). The npm steps become no-ops, so this checks the install
 * logic alone, in seconds.
 */
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await fs.rm(d, { recursive: true, force: true });
});

function which(tool: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  assert.ok(found, `${tool} must be installed for this test`);
  return found;
}

async function sandbox(opts: { uid: number; sudo: boolean }): Promise<{ run(): { status: number | null; out: string }; log(): Promise<string> }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-ci-'));
  dirs.push(dir);
  const bin = path.join(dir, 'bin');
  const repo = path.join(dir, 'repo');
  await fs.mkdir(bin);
  await fs.mkdir(path.join(repo, '.ci'), { recursive: true });
  await fs.copyFile('.ci/run', path.join(repo, '.ci', 'run'));
  const logFile = path.join(dir, 'log');
  for (const tool of ['bash', 'env', 'dirname', 'chmod', 'git', 'tar', 'go', 'curl', 'grep', 'head', 'mkdir']) await fs.symlink(which(tool), path.join(bin, tool));
  await fs.symlink(process.execPath, path.join(bin, 'node'));
  const script = async (name: string, body: string) => fs.writeFile(path.join(bin, name), `#!${which('bash')}\n${body}\n`, { mode: 0o755 });
  await script('id', `echo ${opts.uid}`);
  if (opts.sudo) await script('sudo', `echo "sudo $*" >> ${logFile}\n[ "$1" = -n ] && shift\nexec "$@"`);
  // apt-get records who ran it (the fake id answers for sudo too, so the log says whether sudo was used).
  await script('apt-get', `echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >> ${logFile}\nif [ "$1" = install ]; then printf '#!${which('bash')}\\necho "zstd fake"\\n' > ${bin}/zstd; chmod +x ${bin}/zstd; fi`);
  await script('npm', `echo "npm $*" >> ${logFile}`);
  // The pinned opa is already there: .ci/run must not rebuild it.
  await script('opa', 'echo "Version: 1.22.3"');
  return {
    run: () => {
      const r = spawnSync(path.join(repo, '.ci', 'run'), [], { encoding: 'utf8', env: { PATH: bin, HOME: dir, CI: 'true' }, timeout: 30_000 });
      return { status: r.status, out: `${r.stdout}${r.stderr}` };
    },
    log: () => fs.readFile(logFile, 'utf8').catch(() => ''),
  };
}

describe('.ci/run', () => {
  test('not root: installs the missing zstd through non-interactive sudo', async () => {
    const box = await sandbox({ uid: 1000, sudo: true });
    const r = box.run();
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /installing missing system tools: zstd/);
    const log = await box.log();
    assert.match(log, /^sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq$/m);
    assert.match(log, /^sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd$/m);
    assert.match(log, /^apt-get install -y -qq zstd DEBIAN_FRONTEND=noninteractive$/m);
    assert.match(log, /^npm ci --no-audit --no-fund$/m);
    assert.match(log, /^npm test$/m);
  });

  test('root: runs apt-get directly', async () => {
    const box = await sandbox({ uid: 0, sudo: true });
    const r = box.run();
    assert.equal(r.status, 0, r.out);
    const log = await box.log();
    assert.doesNotMatch(log, /^sudo/m);
    assert.match(log, /^apt-get install -y -qq zstd DEBIAN_FRONTEND=noninteractive$/m);
  });

  test('not root and no sudo: a clear error instead of a failing apt-get', async () => {
    const box = await sandbox({ uid: 1000, sudo: false });
    const r = box.run();
    assert.equal(r.status, 1);
    assert.match(r.out, /\.ci\/run: not root and sudo is not installed; install zstd yourself/);
    assert.equal(await box.log(), '');
  });
});
