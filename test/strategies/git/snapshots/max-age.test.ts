/**
 * Periodic generation details: `snapshot-max-age` bounds the unchanged-skip (an unchanged snapshot
 * is still regenerated once it is that old), and a failing pre-fetch does not cost the interval's
 * snapshot (§4.5: logged, generation goes on from the mirror as it is).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitRig, type GitRig } from '../../../fixtures/git-hoard.js';
import { gitClientEnv } from '../../../fixtures/git-upstream.js';
import { waitFor } from '../../../fixtures/poll.js';

const run = promisify(execFile);
let rig: GitRig;

before(async () => {
  rig = await startGitRig({ workPrefix: 'hoard-maxage-', git: 'snapshot-interval = "1s"\n  mirror-snapshot-interval = "1s"\n  snapshot-max-age = "3s"' });
  await rig.upstream.createRepo('org/aged.git', { files: 10 });
});
after(() => rig.close());

const runs = (msg: string) => rig.logs.filter((l) => l['msg'] === msg).map((l) => l['commit'] as string);

/** Polls every 100 ms; a timeout names the warnings and errors hoard logged. */
const until = (check: () => boolean, what: string, timeoutMs = 30_000) => waitFor(what, check, timeoutMs, 100, rig.loggedProblems);

test('an unchanged snapshot is skipped while young and regenerated once older than snapshot-max-age', async () => {
  await run('git', ['clone', '-q', `${rig.hoard.url}/git/${rig.upstream.hostPort}/org/aged.git`, path.join(rig.work, 'c')], { env: gitClientEnv });
  for (const msg of ['workstation snapshot', 'mirror snapshot']) {
    await until(() => runs(msg).includes('unchanged'), `an unchanged ${msg} run`);
    const head = runs(msg).find((c) => c !== 'unchanged') ?? '';
    assert.match(head, /^[0-9a-f]{40}$/);
    // Same HEAD throughout, yet a second upload of it follows the skipped runs.
    await until(() => runs(msg).filter((c) => c === head).length >= 2, `a ${msg} regenerated after max-age`);
    const sequence = runs(msg);
    const second = sequence.indexOf(head, sequence.indexOf(head) + 1);
    assert.ok(sequence.slice(0, second).includes('unchanged'), `skipped while young: ${sequence.join(',')}`);
  }
});

test('a failing fetch before the workstation snapshot is logged and the snapshot job still runs', async () => {
  rig.upstream.setUp(false);
  try {
    const mark = rig.logs.length;
    await until(() => rig.logs.slice(mark).some((l) => l['msg'] === 'fetch before the workstation snapshot failed; snapshotting the mirror as it is'), 'the pre-fetch failure');
    await until(() => rig.logs.slice(mark).filter((l) => l['msg'] === 'workstation snapshot').length >= 2, 'snapshot runs while upstream is down');
    const failed = rig.logs.slice(mark).filter((l) => l['msg'] === 'periodic job failed' && String(l['job']).includes('snapshot') && !String(l['job']).includes('mirror'));
    assert.deepEqual(failed, [], 'the snapshot job itself did not fail');
  } finally {
    rig.upstream.setUp(true);
  }
});
