import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitRig, type GitRig } from '../fixtures/git-hoard.js';
import { gitClientEnv, type GitUpstream } from '../fixtures/git-upstream.js';
import { type TestServer } from '../fixtures/server.js';

const run = promisify(execFile);
let rig: GitRig;
let upstream: GitUpstream;
let hoard: TestServer;
let work: string;
let logs: Array<Record<string, unknown>>;

before(async () => {
  rig = await startGitRig({ workPrefix: 'hoard-periodic-', git: 'snapshot-interval = "1s"\n  mirror-snapshot-interval = "1s"\n  repack-interval = "1s"' });
  ({ upstream, hoard, work, logs } = rig);
  await upstream.createRepo('org/tick.git', { files: 20 });
});
after(() => rig.close());

const runs = (msg: string) => logs.filter((l) => l['msg'] === msg).map((l) => l['commit'] as string);

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(logs.filter((l) => (l['level'] as number) >= 40))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('periodic generation publishes both snapshots, skips while HEAD is unchanged, and regenerates after a push', async () => {
  await run('git', ['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/org/tick.git`, path.join(work, 'c')], { env: gitClientEnv });
  await until(() => runs('workstation snapshot').includes('unchanged') && runs('mirror snapshot').includes('unchanged'), 'an unchanged run');
  const first = runs('workstation snapshot').find((c) => c !== 'unchanged');
  assert.match(first ?? '', /^[0-9a-f]{40}$/);
  assert.equal(runs('workstation snapshot').filter((c) => c !== 'unchanged').length, 1, 'unchanged HEAD: no new snapshot');
  const head = await upstream.commit('org/tick.git', 'new work');
  await until(() => runs('workstation snapshot').includes(head), 'a snapshot of the new HEAD');
  const res = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/tick/snapshot.tar.zst`, { method: 'HEAD' });
  assert.equal(res.headers.get('x-cachew-snapshot-commit'), head);
});

test('periodic geometric repack writes a multi-pack index and bitmap and keeps the mirror serving', async () => {
  const packDir = path.join(hoard.stateDir, 'git-mirrors', upstream.hostPort, 'org', 'tick.git', 'objects', 'pack');
  const deadline = Date.now() + 30_000;
  let files: string[] = [];
  while (Date.now() < deadline) {
    files = await fs.readdir(packDir).catch(() => []);
    if (files.includes('multi-pack-index') && files.some((f) => f.endsWith('.bitmap'))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(files.includes('multi-pack-index'), `pack dir: ${files.join(', ')}`);
  await run('git', ['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/org/tick.git`, path.join(work, 'after-repack')], { env: gitClientEnv });
  const { stdout } = await run('git', ['-C', path.join(work, 'after-repack'), 'fsck', '--no-progress'], { env: gitClientEnv });
  assert.equal(stdout.trim(), '');
});
