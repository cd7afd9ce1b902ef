import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitUpstream, type GitUpstream } from '../../../fixtures/git-upstream.js';
import { startTestServer, type TestServer } from '../../../fixtures/server.js';
import { mountSmallDisk, type SmallDisk } from '../../../fixtures/small-disk.js';

const run = promisify(execFile);
let upstream: GitUpstream;
let hoard: TestServer | undefined;
let disk: SmallDisk | { unavailable: string };
let work: string;
const logs: Array<Record<string, unknown>> = [];

before(async () => {
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-snap-fill-'));
  upstream = await startGitUpstream();
  // The cache lives on a 2 MiB disk; the snapshot (incompressible content) is several times that.
  disk = await mountSmallDisk(2);
  if ('unavailable' in disk) return;
  hoard = await startTestServer({
    logs,
    hcl: `cache disk { root = "${disk.dir}" }
metadata memory {}
metrics { port = 0 }
strategy git {
  plain-http-hosts = ["${upstream.hostPort}"]
  zstd-threads = 2
}
`,
  });
});
after(async () => {
  await hoard?.close();
  if (!('unavailable' in disk)) await disk.close();
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
});

test('on-demand snapshot generation whose cache write fails mid-stream (disk full) streams the whole archive, logged once, nothing cached', async (t) => {
  if (!hoard) return t.skip((disk as { unavailable: string }).unavailable);
  const tree = await upstream.createRepo('org/big.git', { files: 3 });
  const blob = randomBytes(8 << 20);
  await fs.writeFile(path.join(tree, 'blob.bin'), blob);
  await upstream.commit('org/big.git', 'a big blob');
  const ready = await fetch(`${hoard.url}/git/${upstream.hostPort}/org/big/ensure-refs`, { method: 'POST', body: '{"refs":{"refs/heads/main":""}}' });
  assert.equal(ready.status, 200, await ready.text());

  const url = `${hoard.url}/git/${upstream.hostPort}/org/big/snapshot.tar.zst`;
  const archive = path.join(work, 'snapshot.tar.zst');
  // A stalled response fails at --max-time instead of hanging the suite.
  await run('curl', ['-sS', '--fail', '--max-time', '60', '-o', archive, url]);
  const out = path.join(work, 'restored');
  await fs.mkdir(out);
  await run('sh', ['-c', 'zstd -dc "$1" | tar -x -C "$2"', 'sh', archive, out]);
  assert.ok((await fs.readFile(path.join(out, 'blob.bin'))).equals(blob), `the archive is whole (cache on ${(disk as SmallDisk).kind})`);

  const failures = logs.filter((l) => l['msg'] === 'snapshot cache write failed; serving without caching');
  assert.equal(failures.length, 1, 'logged once');
  assert.equal(failures[0]?.['level'], 40, 'at warn');
  assert.match(JSON.stringify(failures[0]?.['err']), /ENOSPC|full/);
  assert.equal((await fetch(url, { method: 'HEAD' })).status, 404, 'the partial archive was not cached');
});
