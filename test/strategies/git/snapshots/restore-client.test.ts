import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { gitRestore } from '../../../../src/client/git-restore.js';
import { gitAsync } from '../../../fixtures/git-client.js';
import { startGitRig, type GitRig } from '../../../fixtures/git-hoard.js';
import { type GitUpstream } from '../../../fixtures/git-upstream.js';
import { type TestServer } from '../../../fixtures/server.js';

let rig: GitRig;
let upstream: GitUpstream;
let hoard: TestServer;
let work: string;

const upstreamUrl = (repo: string) => `http://${upstream.hostPort}/${repo}`;
const cli = ['--import', 'tsx', path.resolve('src/cli/main.ts')];

/** Runs the real CLI; with `tty`, under `script` so stderr is a terminal as on a developer's machine. */
function hoardCli(args: string[], opts: { tty?: boolean } = {}): Promise<{ code: number | null; output: string }> {
  const argv = [process.execPath, ...cli, '--url', hoard.url, ...args];
  const [cmd, cmdArgs] = opts.tty
    ? ['script', ['-qfec', argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' '), '/dev/null']]
    : [argv[0] as string, argv.slice(1)];
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs as string[], { env: { ...process.env, HOARD_URL: '', CACHEW_URL: '', COLUMNS: '100' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c));
    child.stderr.on('data', (c: Buffer) => (output += c));
    child.on('close', (code) => resolve({ code, output }));
  });
}

before(async () => {
  rig = await startGitRig({ workPrefix: 'hoard-restore-client-' });
  ({ upstream, hoard, work } = rig);
  // Incompressible bytes so the snapshot spans several 64 KiB chunks (many ranged requests).
  await upstream.createRepo('org/merge.git', { files: 300, branches: ['develop'], randomBytes: 400_000 });
});
after(() => rig.close());

describe('hoard git restore (client)', () => {
  test('restoring into an existing non-empty directory merges: the repository lands and the files already there stay', async () => {
    const target = path.join(work, 'existing');
    await fs.mkdir(target);
    await fs.writeFile(path.join(target, 'notes.local'), 'mine\n');
    const result = await gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/merge'), dir: target, chunkBytes: 64 * 1024, concurrency: 4 });
    const size = Number((await fetch(`${hoard.url}/git/${upstream.hostPort}/org/merge/snapshot.tar.zst`, { method: 'HEAD' })).headers.get('content-length'));
    assert.ok(size > 4 * 64 * 1024, `snapshot of ${size} bytes spans several chunks`);
    assert.equal(await fs.readFile(path.join(target, 'notes.local'), 'utf8'), 'mine\n');
    const head = await gitAsync(['rev-parse', 'HEAD'], target);
    assert.equal(head, result.head);
    assert.equal(head, await gitAsync(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', 'org/merge.git')));
    // The only difference from a clean checkout is the file that was already there.
    assert.equal(await gitAsync(['status', '--porcelain'], target), '?? notes.local');
    assert.equal(await gitAsync(['remote', 'get-url', 'origin'], target), upstreamUrl('org/merge'));
  });

  test('a new target that cannot be completed leaves nothing behind (no target, no staging directory)', async () => {
    const target = path.join(work, 'fails');
    await assert.rejects(
      gitRestore({ server: hoard.url, repoUrl: upstreamUrl('org/merge'), dir: target, commits: ['0123456789abcdef0123456789abcdef01234567'] }),
      /missing|ensure refs/,
    );
    assert.equal(await fs.stat(target).then(() => true, () => false), false);
    assert.deepEqual((await fs.readdir(work)).filter((n) => n.startsWith('.hoard-restore-')), []);
  });

  test('the CLI draws a progress bar on a terminal and stays quiet otherwise (and with --quiet)', async () => {
    const plain = await hoardCli(['git', 'restore', upstreamUrl('org/merge'), path.join(work, 'cli-plain')]);
    assert.equal(plain.code, 0, plain.output);
    assert.doesNotMatch(plain.output, /█|░|\d+%/, 'no bar when stderr is not a terminal');
    assert.match(plain.output, /Restored .*org\/merge/);

    const tty = await hoardCli(['git', 'restore', upstreamUrl('org/merge'), path.join(work, 'cli-tty')], { tty: true });
    assert.equal(tty.code, 0, tty.output);
    assert.match(tty.output, /restore.*\d+%/, 'a bar with a percentage on a terminal');

    const quiet = await hoardCli(['--quiet', 'git', 'restore', upstreamUrl('org/merge'), path.join(work, 'cli-quiet')], { tty: true });
    assert.equal(quiet.code, 0, quiet.output);
    assert.doesNotMatch(quiet.output, /\d+%/, '--quiet silences the bar even on a terminal');
  });
});
