import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitRig, type GitRig } from '../../../fixtures/git-hoard.js';
import { gitClientEnv } from '../../../fixtures/git-upstream.js';
import { waitFor } from '../../../fixtures/poll.js';

const run = promisify(execFile);
let rig: GitRig;

before(async () => {
  rig = await startGitRig({ workPrefix: 'hoard-periodic-', git: 'snapshot-interval = "1s"\n  mirror-snapshot-interval = "1s"\n  repack-interval = "1s"' });
  await rig.upstream.createRepo('org/tick.git', { files: 20 });
});
after(() => rig.close());

const runs = (msg: string) => rig.logs.filter((l) => l['msg'] === msg).map((l) => l['commit'] as string);

/** Polls every 100 ms; a timeout names the warnings and errors hoard logged. */
const until = (check: () => boolean, what: string, timeoutMs = 30_000) => waitFor(what, check, timeoutMs, 100, rig.loggedProblems);

test('periodic generation publishes both snapshots, skips while HEAD is unchanged, and regenerates after a push', async () => {
  await run('git', ['clone', '-q', `${rig.hoard.url}/git/${rig.upstream.hostPort}/org/tick.git`, path.join(rig.work, 'c')], { env: gitClientEnv });
  await until(() => runs('workstation snapshot').includes('unchanged') && runs('mirror snapshot').includes('unchanged'), 'an unchanged run');
  const first = runs('workstation snapshot').find((c) => c !== 'unchanged');
  assert.match(first ?? '', /^[0-9a-f]{40}$/);
  assert.equal(runs('workstation snapshot').filter((c) => c !== 'unchanged').length, 1, 'unchanged HEAD: no new snapshot');
  const head = await rig.upstream.commit('org/tick.git', 'new work');
  await until(() => runs('workstation snapshot').includes(head), 'a snapshot of the new HEAD');
  const res = await fetch(`${rig.hoard.url}/git/${rig.upstream.hostPort}/org/tick/snapshot.tar.zst`, { method: 'HEAD' });
  assert.equal(res.headers.get('x-cachew-snapshot-commit'), head);
});

test('periodic geometric repack writes a multi-pack index and bitmap and keeps the mirror serving', async () => {
  const packDir = path.join(rig.hoard.stateDir, 'git-mirrors', rig.upstream.hostPort, 'org', 'tick.git', 'objects', 'pack');
  const deadline = Date.now() + 30_000;
  let files: string[] = [];
  while (Date.now() < deadline) {
    files = await fs.readdir(packDir).catch(() => []);
    if (files.includes('multi-pack-index') && files.some((f) => f.endsWith('.bitmap'))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(files.includes('multi-pack-index'), `pack dir: ${files.join(', ')}`);
  await run('git', ['clone', '-q', `${rig.hoard.url}/git/${rig.upstream.hostPort}/org/tick.git`, path.join(rig.work, 'after-repack')], { env: gitClientEnv });
  const { stdout } = await run('git', ['-C', path.join(rig.work, 'after-repack'), 'fsck', '--no-progress'], { env: gitClientEnv });
  assert.equal(stdout.trim(), '');
});
