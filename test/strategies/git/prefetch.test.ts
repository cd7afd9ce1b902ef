import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gitHoardHcl } from '../../fixtures/git-hoard.js';
import { startGitUpstream, git, gitClientEnv, type GitUpstream } from '../../fixtures/git-upstream.js';
import { waitFor } from '../../fixtures/poll.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';
import { startGitStrategy } from './strategy-harness.js';

/** HEAD of the workstation snapshot: answers from the cache only, never generates or warms a mirror. */
async function snapshotCached(hoard: TestServer, hostPort: string, repo: string): Promise<boolean> {
  const res = await fetch(`${hoard.url}/git/${hostPort}/${repo}/snapshot.tar.zst`, { method: 'HEAD' });
  return res.status === 200;
}

function mirrorMain(hoard: TestServer, hostPort: string, repo: string): string {
  try {
    return git(['rev-parse', 'refs/heads/main'], path.join(hoard.stateDir, 'git-mirrors', hostPort, `${repo}.git`));
  } catch {
    return '';
  }
}

const logged = (logs: Array<Record<string, unknown>>, msg: string, repo: string) => logs.filter((l) => l['msg'] === msg && String(l['upstream'] ?? '').endsWith(`/${repo}`));

describe('git prefetch: warm from start-up, pinned in the refresher', () => {
  let upstream: GitUpstream;
  let hoard: TestServer;
  const logs: Array<Record<string, unknown>> = [];
  before(async () => {
    upstream = await startGitUpstream();
    await upstream.createRepo('org/warm.git');
    await upstream.createRepo('org/other.git');
    // refresh-idle is tiny: an unpinned repository would stop being refreshed at its first tick.
    // The ref check is an hour, so only the refresher brings upstream commits in.
    hoard = await startTestServer({
      logs,
      hcl: gitHoardHcl(upstream.hostPort, { clone: 'ref-check-interval = "1h"\n  fetch-interval = "200ms"\n  refresh-idle = "1ms"', git: `prefetch = ["${upstream.hostPort}/org/warm"]` }),
    });
  });
  after(async () => {
    await hoard?.close();
    await upstream?.close();
  });

  test('the mirror becomes Ready and a snapshot exists without any client request', async () => {
    await waitFor('the prefetched snapshot', () => snapshotCached(hoard, upstream.hostPort, 'org/warm'));
    assert.ok(existsSync(path.join(hoard.stateDir, 'git-mirrors', upstream.hostPort, 'org/warm.git', 'HEAD')), 'the mirror is on disk');
    assert.equal(logged(logs, 'mirror ready', 'org/warm').length, 1);
    assert.ok(upstream.requests.length > 0 && upstream.requests.every((r) => (r.userAgent ?? '').startsWith('git/')), 'only hoard itself went upstream');
    // Only the listed repository was warmed.
    assert.equal(await snapshotCached(hoard, upstream.hostPort, 'org/other'), false);
    assert.equal(upstream.requests.filter((r) => r.path.includes('/org/other')).length, 0);
  });

  test('an upstream commit is fetched by the refresher although refresh-idle is tiny (pinned)', async () => {
    await waitFor('the mirror', () => logged(logs, 'mirror ready', 'org/warm').length > 0);
    const head = await upstream.commit('org/warm.git', 'pushed while no client asked');
    await waitFor('the refresher to fetch the new commit', () => mirrorMain(hoard, upstream.hostPort, 'org/warm') === head);
    assert.equal(logged(logs, 'background refresh stopped: no client request for refresh-idle', 'org/warm').length, 0);
  });

  test('refresh-idle still stops a repository that is not listed', async () => {
    const work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-prefetch-'));
    try {
      await promisify(execFile)('git', ['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/org/other`, path.join(work, 'other')], { env: gitClientEnv });
      await waitFor('the unlisted repository to go idle', () => logged(logs, 'background refresh stopped: no client request for refresh-idle', 'org/other').length > 0);
      assert.equal(logged(logs, 'background refresh stopped: no client request for refresh-idle', 'org/warm').length, 0);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
  });
});

describe('git prefetch: entries are validated at start-up', () => {
  const refused = async (strategyBody: string): Promise<string> => {
    const hcl = `cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\nstrategy git {\n${strategyBody}\n}\n`;
    try {
      const hoard = await startTestServer({ hcl });
      await hoard.close();
    } catch (err) {
      return (err as Error).message;
    }
    assert.fail('start-up succeeded');
  };

  test('a bad entry refuses start-up, naming the entry and its line', async () => {
    // Line 1 is `state = ...` (added by the fixture); `prefetch = [` is line 6, its second element line 8.
    const message = await refused(['  prefetch = [', '    "github.com/org/ok",', '    "github.com/org/../escape",', '  ]'].join('\n'));
    assert.match(message, /test\.hcl:8:\d+: strategy git: prefetch\[1\]: "github\.com\/org\/\.\.\/escape" is not a repository hoard could serve: relative path segment "\.\." is not allowed/);
    assert.doesNotMatch(message, /prefetch\[0\]/);
  });

  test('a scheme, an operation or a host alone are refused precisely', async () => {
    const message = await refused('  prefetch = ["https://github.com/org/repo", "github.com/org/repo.git/info/refs", "github.com"]');
    assert.match(message, /prefetch\[0\]: "https:\/\/github\.com\/org\/repo" is not a repository hoard could serve: write host\/repository without a scheme \(e\.g\. "github\.com\/org\/repo"\)/);
    assert.match(message, /prefetch\[1\]: .*names "info\/refs" after the repository/);
    assert.match(message, /prefetch\[2\]: "github\.com" is not a repository hoard could serve/);
  });

  test('two entries naming one repository are refused', async () => {
    const message = await refused('  prefetch = ["GitHub.com/org/repo", "github.com/org/repo.git"]');
    assert.match(message, /prefetch\[1\]: "github\.com\/org\/repo\.git" names the same repository as prefetch\[0\]/);
  });

  test('an entry whose host is not in allowed-hosts refuses start-up', async () => {
    const message = await refused('  allowed-hosts = ["github.com"]\n  prefetch = ["github.com/org/a", "gitlab.com/org/b"]');
    assert.match(message, /test\.hcl:7:\d+: strategy git: prefetch\[1\]: "gitlab\.com\/org\/b": host gitlab\.com is not in allowed-hosts \(github\.com\)/);
  });

  test('names git servers accept are taken as written (spaces, non-ASCII, @ and +)', async () => {
    const hoard = await startTestServer({ hcl: 'cache disk {}\nmetadata memory {}\nmetrics { port = 0 }\ngit-clone { fetch-interval = "0" }\nstrategy git {\n  allowed-hosts = ["127.0.0.1:1"]\n  plain-http-hosts = ["127.0.0.1:1"]\n  mirror-restore-retry = "1h"\n  prefetch = ["127.0.0.1:1/org/ünï cödé", "127.0.0.1:1/user@x/a+b.git"]\n}\n' });
    await hoard.close();
  });
});

describe('git prefetch: an unreachable upstream', () => {
  let upstream: GitUpstream;
  let hoard: TestServer;
  const logs: Array<Record<string, unknown>> = [];
  // An upstream that accepts connections and never answers (a firewall dropping packets, a hung
  // server): a start-up that waited for its clone would not come up before clone-timeout.
  let blackhole: net.Server;
  const held = new Set<net.Socket>();
  let blackholeHost = '';
  before(async () => {
    upstream = await startGitUpstream();
    await upstream.createRepo('org/down.git');
    upstream.setUp(false);
    blackhole = net.createServer((socket) => {
      held.add(socket);
      socket.on('close', () => held.delete(socket));
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    blackholeHost = `127.0.0.1:${(blackhole.address() as AddressInfo).port}`;
    hoard = await startTestServer({
      logs,
      hcl: `cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { clone-timeout = "5s" }
strategy git {
  plain-http-hosts = ["${upstream.hostPort}", "${blackholeHost}"]
  mirror-restore-retry = "100ms"
  prefetch = ["${upstream.hostPort}/org/down", "${blackholeHost}/org/hung"]
}
`,
    });
  });
  after(async () => {
    await hoard?.close();
    await upstream?.close();
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => (blackhole ? blackhole.close(() => resolve()) : resolve()));
  });

  test('a hung upstream: start-up and liveness do not wait for its clone, which times out and is retried', async () => {
    // hoard is up (startTestServer returned) and answers, and the clone has not ended: start-up did not wait for it.
    assert.equal((await fetch(`${hoard.url}/_liveness`)).status, 200);
    assert.equal((await fetch(`${hoard.url}/_readiness`)).status, 200);
    assert.equal(logged(logs, 'clone failed', 'org/hung').length, 0, 'the clone of the hung upstream is still in flight');
    await waitFor('the clone of the hung upstream to connect', () => held.size > 0);
    await waitFor('the hung clone to time out and be retried', () => logged(logs, 'prefetch failed; will retry', 'org/hung').length > 0, 30_000);
  });

  test('does not block liveness or readiness; failures are logged and retried with backoff until it is back', async () => {
    assert.equal((await fetch(`${hoard.url}/_liveness`)).status, 200);
    assert.equal((await fetch(`${hoard.url}/_readiness`)).status, 200);
    await waitFor('three failed prefetch attempts', () => logged(logs, 'prefetch failed; will retry', 'org/down').length >= 3);
    assert.deepEqual(
      logged(logs, 'prefetch failed; will retry', 'org/down').slice(0, 3).map((l) => l['retryInMs']),
      [100, 200, 400],
    );
    assert.equal((await fetch(`${hoard.url}/_liveness`)).status, 200);
    upstream.setUp(true);
    await waitFor('the prefetch to succeed once upstream is back', () => snapshotCached(hoard, upstream.hostPort, 'org/down'), 60_000);
  });
});

describe('git prefetch: a mirror left by a previous run', () => {
  test('is kept, not cloned again; its snapshot is of upstream HEAD; with upstream down and snapshot-interval set, the mirror as it is still gets one', async () => {
    const upstream = await startGitUpstream();
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-prefetch-restart-'));
    const gitBlock = { 'plain-http-hosts': [upstream.hostPort], prefetch: [`${upstream.hostPort}/org/kept`], 'mirror-restore-retry': '100ms' };
    // Each harness has its own memory cache: a snapshot after a restart was made by that run.
    const snapshotCommit = async (url: string) => {
      const res = await fetch(`${url}/git/${upstream.hostPort}/org/kept/snapshot.tar.zst`, { method: 'HEAD' });
      return res.status === 200 ? (res.headers.get('x-cachew-snapshot-commit') ?? '') : '';
    };
    try {
      await upstream.createRepo('org/kept.git');
      const first = await startGitStrategy({ stateDir, git: gitBlock, clone: { 'fetch-interval': 0 } });
      try {
        await waitFor('the first run to prefetch', async () => (await snapshotCommit(first.url)) !== '');
      } finally {
        await first.close();
      }

      const head = await upstream.commit('org/kept.git', 'while hoard was down');
      const second = await startGitStrategy({ stateDir, git: gitBlock, clone: { 'fetch-interval': 0 } });
      try {
        await waitFor('the second run to snapshot upstream HEAD', async () => (await snapshotCommit(second.url)) === head);
        assert.equal(second.logs.filter((l) => l['msg'] === 'mirror ready').length, 0, 'no clone: the discovered mirror was kept');
      } finally {
        await second.close();
      }

      upstream.setUp(false);
      const third = await startGitStrategy({ stateDir, git: { ...gitBlock, 'snapshot-interval': '1h' }, clone: { 'fetch-interval': 0 } });
      try {
        await waitFor('the third run to snapshot the mirror as it is', async () => (await snapshotCommit(third.url)) === head);
      } finally {
        await third.close();
      }
    } finally {
      await upstream.close();
      await fs.rm(stateDir, { recursive: true, force: true });
    }
  });
});
