/**
 * Cold start: a fresh replica (empty disk) serving a snapshot that another replica published to
 * the shared S3 tier (s3rver on loopback), against a warm replica serving it from its own disk;
 * and a full `hoard git restore` through a cold replica against `git clone` from the upstream.
 * Every case in one run; medians of 3 (a new replica for each cold sample).
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { sharedS3Client } from '../src/s3/client.js';
import { artifactKey } from '../src/strategies/git/artifacts.js';
import { startGitUpstream, gitClientEnv } from '../test/fixtures/git-upstream.js';
import { generateRepo } from '../test/fixtures/repo-generator.js';
import { startS3rver } from '../test/fixtures/s3rver.js';
import { median, printTable } from './table.js';
import { startHoard, time, type HoardProcess } from './harness.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SIZE_MB = Number(process.env['BENCH_REPO_MB'] ?? 120);
const FILES = Number(process.env['BENCH_REPO_FILES'] ?? 20_000);

/** curl's view of one GET: seconds to first byte and in total. */
async function curlTimes(url: string): Promise<{ firstByte: number; total: number; bytes: number }> {
  const { stdout } = await run('curl', ['-sf', '-o', '/dev/null', '-w', '%{time_starttransfer} %{time_total} %{size_download}', url]);
  const [firstByte, total, bytes] = stdout.trim().split(' ').map(Number) as [number, number, number];
  return { firstByte, total, bytes };
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-bench-cold-'));
const s3 = await startS3rver();
const upstream = await startGitUpstream();
const started: HoardProcess[] = [];
try {
  const s3Block = `s3 {\n  endpoint = "${s3.endpoint}"\n  region = "us-east-1"\n  use-ssl = false\n  use-path-style = true\n  access-key-id = "S3RVER"\n  secret-access-key = "S3RVER"\n}`;
  const replicaHcl = `${s3Block}
cache disk {}
cache s3 { bucket = "${s3.bucket}" }
metadata s3 { bucket = "${s3.bucket}" }
git-clone { ref-check-interval = "1h" }
strategy git {
  plain-http-hosts = ["${upstream.hostPort}"]
  snapshot-interval = "1h"
  mirror-snapshot-interval = "1h"
}
`;
  const replica = async () => {
    const h = await startHoard(replicaHcl);
    started.push(h);
    return h;
  };
  process.stderr.write(`generating a ${SIZE_MB} MiB repository with ${FILES} files...\n`);
  await generateRepo(path.join(upstream.root, 'repos', 'bench', 'big.git'), { sizeMB: SIZE_MB, files: FILES, commits: 4 });
  const repoUrl = `http://${upstream.hostPort}/bench/big`;
  const snapshotPath = `/git/${upstream.hostPort}/bench/big/snapshot.tar.zst`;

  process.stderr.write('seeding: clone through replica 1, publish snapshots to S3...\n');
  const seed = await replica();
  await run('git', ['clone', '-q', `${seed.url}/git/${upstream.hostPort}/bench/big.git`, path.join(work, 'seed')], { env: gitClientEnv, maxBuffer: 1 << 24 });
  const client = sharedS3Client({ endpoint: s3.endpoint, region: 'us-east-1', 'use-ssl': false, 'skip-ssl-verify': false, 'use-path-style': true, 'access-key-id': 'S3RVER', 'secret-access-key': 'S3RVER' });
  const published = (kind: 'snapshot' | 'mirror-snapshot') => {
    const key = artifactKey(repoUrl, kind);
    return client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `git/${key.slice(0, 2)}/${key}` })).then(() => true, () => false);
  };
  for (let i = 0; i < 1200 && !((await published('snapshot')) && (await published('mirror-snapshot'))); i++) await new Promise((r) => setTimeout(r, 500));
  if (!(await published('snapshot'))) throw new Error('the seed replica never published a snapshot');

  const warm = [];
  for (let i = 0; i < 3; i++) warm.push(await curlTimes(`${seed.url}${snapshotPath}`));
  const cold = [];
  for (let i = 0; i < 3; i++) {
    const fresh = await replica();
    cold.push(await curlTimes(`${fresh.url}${snapshotPath}`));
    await fresh.stop();
  }
  const size = warm[0]?.bytes ?? 0;

  const cloneTimes: number[] = [];
  const restoreTimes: number[] = [];
  const cli = path.join(root, 'dist/src/cli/main.js');
  const haveDist = await fs.stat(cli).then(() => true, () => false);
  const cliArgs = haveDist ? [cli] : ['--import', 'tsx', path.join(root, 'src/cli/main.ts')];
  for (let i = 0; i < 3; i++) {
    cloneTimes.push(await time(() => run('git', ['clone', '-q', `${upstream.url}/bench/big.git`, path.join(work, `clone${i}`)], { env: gitClientEnv, maxBuffer: 1 << 24 })));
    const fresh = await replica();
    restoreTimes.push(await time(() => run(process.execPath, [...cliArgs, '--url', fresh.url, 'git', 'restore', repoUrl, path.join(work, `restore${i}`)], { maxBuffer: 1 << 24 })));
    await fresh.stop();
    await fs.rm(path.join(work, `clone${i}`), { recursive: true, force: true });
    await fs.rm(path.join(work, `restore${i}`), { recursive: true, force: true });
  }

  // One table per measure, each cold against its own warm baseline: dividing every row by the
  // warm first byte (as before) never showed cold total vs warm total as a ratio.
  const mb = (size / 1e6).toFixed(0);
  printTable(
    `Snapshot serve (${mb} MB), time to first byte: warm replica (own disk) vs cold replica (empty disk, from S3), seconds`,
    [
      { name: 'warm: first byte', value: median(warm.map((w) => w.firstByte)), unit: 's' },
      { name: 'cold: first byte', value: median(cold.map((c) => c.firstByte)), unit: 's' },
    ],
    'warm: first byte',
    'Target: cold first byte ≤ 0.5 s. S3 here is s3rver on loopback (file-backed, single-threaded).',
  );
  printTable(
    `Snapshot serve (${mb} MB), total time: warm replica vs cold replica, seconds`,
    [
      { name: 'warm: total', value: median(warm.map((w) => w.total)), unit: 's' },
      { name: 'cold: total', value: median(cold.map((c) => c.total)), unit: 's' },
    ],
    'warm: total',
  );
  printTable(
    `Fresh replica: hoard git restore (cold, snapshot from S3) vs git clone from upstream, ${FILES} files, seconds`,
    [
      { name: 'git clone from upstream', value: median(cloneTimes), unit: 's' },
      { name: 'hoard git restore via a cold replica', value: median(restoreTimes), unit: 's' },
    ],
    'git clone from upstream',
  );
} finally {
  for (const h of started) await h.stop().catch(() => undefined);
  await upstream.close();
  await s3.stop();
  await fs.rm(work, { recursive: true, force: true });
}
