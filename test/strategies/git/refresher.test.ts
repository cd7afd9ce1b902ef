import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { gitAsync, hoardOwn } from '../../fixtures/git-client.js';
import { startGitRig, type GitRig } from '../../fixtures/git-hoard.js';
import { waitFor } from '../../fixtures/poll.js';
import { REFRESH_BACKOFF_CAP_MS, refreshBackoffMs } from '../../../src/strategies/git/refresher.js';

type Rig = GitRig;
const startRig = (clone: string) => startGitRig({ clone, workPrefix: 'hoard-refresher-' });

/** Clones through hoard and waits until the mirror is Ready (so the refresher runs for it). */
async function cloneAndWaitReady(rig: Rig, repo: string): Promise<void> {
  await rig.upstream.createRepo(`${repo}.git`);
  await gitAsync(['clone', '-q', rig.viaHoard(repo), path.join(rig.work, repo.replace(/\//g, '_'))]);
  await waitFor(`mirror of ${repo}`, () => rig.logged('mirror ready', repo).length > 0);
}

describe('background refresher: backoff schedule', () => {
  test('doubles from fetch-interval per failure, capped at max(fetch-interval, 1h)', () => {
    assert.deepEqual([0, 1, 2, 3].map((f) => refreshBackoffMs(300, f)), [300, 600, 1200, 2400]);
    assert.equal(refreshBackoffMs(15 * 60_000, 10), REFRESH_BACKOFF_CAP_MS);
    assert.equal(refreshBackoffMs(15 * 60_000, 5000), REFRESH_BACKOFF_CAP_MS, 'no overflow to NaN after many failures');
    assert.equal(refreshBackoffMs(2 * REFRESH_BACKOFF_CAP_MS, 3), 2 * REFRESH_BACKOFF_CAP_MS, 'never shorter than the interval');
  });
});

describe('background refresher', () => {
  let rig: Rig;
  before(async () => {
    // The ref check is an hour: only the refresher can bring upstream changes in.
    rig = await startRig('ref-check-interval = "1h"\n  fetch-interval = "300ms"\n  refresh-idle = "0"');
  });
  after(() => rig.close());

  test('an upstream commit reaches the mirror and clients with no client request triggering a fetch', async () => {
    await cloneAndWaitReady(rig, 'org/quiet');
    const clientRequests = () => rig.upstream.requests.filter((r) => r.userAgent === 'hoard-test-client').length;
    const clientsBefore = clientRequests();
    const head = await rig.upstream.commit('org/quiet.git', 'pushed while nobody fetched');
    assert.notEqual(rig.mirrorMain('org/quiet'), head);
    await waitFor('the refresher to fetch the new commit', () => rig.mirrorMain('org/quiet') === head);
    assert.equal(clientRequests(), clientsBefore, 'no client request went upstream meanwhile');
    // And a client fetch through hoard (served from the mirror: the ref check would say "fresh" for an hour) sees it.
    const clone = path.join(rig.work, 'org_quiet');
    await gitAsync(['fetch', '-q', 'origin'], clone);
    assert.equal(await gitAsync(['rev-parse', 'origin/main'], clone), head);
  });

  test('backs off while upstream fails, one upstream request per attempt, and resumes when it is back', async () => {
    await cloneAndWaitReady(rig, 'org/flaky');
    const seen = hoardOwn(rig.upstream.requests, 'org/flaky').length;
    rig.upstream.setUp(false);
    try {
      await waitFor('four failed refreshes', () => rig.logged('background refresh failed; backing off', 'org/flaky').length >= 4, 60_000);
    } finally {
      rig.upstream.setUp(true);
    }
    const failures = rig.logged('background refresh failed; backing off', 'org/flaky');
    assert.deepEqual(
      failures.slice(0, 4).map((f) => f['retryInMs']),
      [600, 1200, 2400, 4800],
    );
    // The gaps between attempts grow (each is about double the last; jitter is ±10%): a fixed
    // schedule would have attempted every 300 ms.
    const times = failures.slice(0, 4).map((f) => Number(f['time']));
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    assert.ok((gaps[2] as number) >= 2 * (gaps[0] as number), `gaps between failed attempts ${gaps.join(', ')} ms do not grow`);
    // At least the three backoff delays (600 + 1200 + 2400 ms, less 10% jitter) passed between the
    // first and the fourth failure; load only makes that longer.
    assert.ok((times[3] as number) - (times[0] as number) >= 0.9 * (600 + 1200 + 2400), `four failed attempts within ${(times[3] as number) - (times[0] as number)} ms`);
    // Every attempt was one request (no retry storm behind the backoff), counted while it was down.
    const attemptsWhileDown = hoardOwn(rig.upstream.requests, 'org/flaky').length - seen;
    assert.ok(attemptsWhileDown >= 4 && attemptsWhileDown <= failures.length + 1, `${attemptsWhileDown} upstream requests for ${failures.length} failed attempts`);

    const head = await rig.upstream.commit('org/flaky.git', 'after the outage');
    await waitFor('the refresher to recover and fetch', () => rig.mirrorMain('org/flaky') === head, 60_000);
    await waitFor('the recovery to be reported', () => rig.logged('background refresh succeeded again', 'org/flaky').length > 0);
    // Back on the normal interval: further refreshes follow without new failures.
    const after = hoardOwn(rig.upstream.requests, 'org/flaky').length;
    const failed = rig.logged('background refresh failed; backing off', 'org/flaky').length;
    await waitFor('two more refreshes', () => hoardOwn(rig.upstream.requests, 'org/flaky').length >= after + 2);
    assert.equal(rig.logged('background refresh failed; backing off', 'org/flaky').length, failed);
  });
});

describe('background refresher: idle repositories', () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig('ref-check-interval = "1h"\n  fetch-interval = "200ms"\n  refresh-idle = "5s"');
  });
  after(() => rig.close());

  test('a repository no client touched for refresh-idle is not refreshed; a request resumes it', async () => {
    await cloneAndWaitReady(rig, 'org/busy');
    // Keep org/busy in use from now on (ref listings are served from the mirror: the ref check is an hour).
    let stop = false;
    const busyClient = (async () => {
      while (!stop) {
        await gitAsync(['ls-remote', rig.viaHoard('org/busy')]);
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    try {
      await cloneAndWaitReady(rig, 'org/idle');
      await waitFor('org/idle to stop being refreshed', () => rig.logged('background refresh stopped: no client request for refresh-idle', 'org/idle').length > 0);
      const idleRequests = hoardOwn(rig.upstream.requests, 'org/idle').length;
      const busyRequests = hoardOwn(rig.upstream.requests, 'org/busy').length;
      await waitFor('org/busy to be refreshed five more times', () => hoardOwn(rig.upstream.requests, 'org/busy').length >= busyRequests + 5);
      assert.equal(hoardOwn(rig.upstream.requests, 'org/idle').length, idleRequests, 'the idle repository was not fetched meanwhile');
      assert.equal(rig.logged('background refresh stopped: no client request for refresh-idle', 'org/busy').length, 0, 'the busy repository kept its refresher');

      // A client comes back: its ls-remote is answered from the mirror, and the refresher resumes.
      const head = await rig.upstream.commit('org/idle.git', 'while idle');
      await gitAsync(['ls-remote', rig.viaHoard('org/idle')]);
      await waitFor('the refresher to resume and fetch', () => rig.mirrorMain('org/idle') === head);
      assert.equal(rig.logged('background refresh resumed: the repository is in use again', 'org/idle').length, 1);
    } finally {
      stop = true;
      await busyClient;
    }
  });
});
