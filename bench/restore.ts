/**
 * Restore speed: `hoard git restore` from a warm hoard vs `git clone` from the upstream vs a local
 * `zstd -d | tar -x` of the same snapshot file, on a generated source-like repository (≥20k
 * text files, ≥100 MB checkout, a long history of small edits so the pack is mostly deltas, as
 * in real projects); then 1 GiB object serve throughput vs nginx `sendfile`, and hoard's peak
 * RSS while 8 clients download that object at once. Every number comes from this run; medians
 * of 3. Shape knobs: BENCH_REPO_FILES, BENCH_FILE_BYTES, BENCH_COMMITS, BENCH_FILES_PER_COMMIT.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startGitUpstream, gitClientEnv } from '../test/fixtures/git-upstream.js';
import { generateSourceRepo } from '../test/fixtures/source-repo-generator.js';
import { median, printTable } from './table.js';
import { have, startHoard, time } from './harness.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FILES = Number(process.env['BENCH_REPO_FILES'] ?? 20_000);
const FILE_BYTES = Number(process.env['BENCH_FILE_BYTES'] ?? 6000);
const COMMITS = Number(process.env['BENCH_COMMITS'] ?? 120);
const FILES_PER_COMMIT = Number(process.env['BENCH_FILES_PER_COMMIT'] ?? 2000);

const sh = (script: string) => run('bash', ['-c', script], { maxBuffer: 1 << 24 });
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });

async function curlSpeed(url: string): Promise<number> {
  const { stdout } = await run('curl', ['-sf', '-o', '/dev/null', '-w', '%{speed_download}', url]);
  return Number(stdout) / 1e6;
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-bench-restore-'));
const upstream = await startGitUpstream();
let nginx: ChildProcess | undefined;
try {
  process.stderr.write(`generating a repository: ${FILES} files of ~${FILE_BYTES} bytes, ${COMMITS} commits of ${FILES_PER_COMMIT} files each...\n`);
  const bare = path.join(upstream.root, 'repos', 'bench', 'big.git');
  const shape = await generateSourceRepo(bare, { files: FILES, fileBytes: FILE_BYTES, commits: COMMITS, filesPerCommit: FILES_PER_COMMIT });
  const packMB = Number((await sh(`du -sm '${bare}/objects/pack' | cut -f1`)).stdout.trim());
  const hoard = await startHoard(`cache disk { limit-mb = 8192 }\nmetadata memory {}\ngit-clone { ref-check-interval = "1h" }\nstrategy git { plain-http-hosts = ["${upstream.hostPort}"] }\n`);
  try {
    const repoUrl = `http://${upstream.hostPort}/bench/big`;
    const snapshotUrl = `${hoard.url}/git/${upstream.hostPort}/bench/big/snapshot.tar.zst`;
    process.stderr.write('warming: first GET generates and caches the snapshot...\n');
    const snapshotFile = path.join(work, 'snapshot.tar.zst');
    await run('curl', ['-sf', '-o', snapshotFile, snapshotUrl]);
    for (let i = 0; i < 600; i++) {
      const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-I', snapshotUrl]);
      if (stdout === '200') break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const snapshotBytes = (await fs.stat(snapshotFile)).size;

    const cli = path.join(root, 'dist/src/cli/main.js');
    const cliArgs = (await fs.stat(cli).then(() => true, () => false)) ? [cli] : ['--import', 'tsx', path.join(root, 'src/cli/main.ts')];
    const upstreamHead = (await run('git', ['-C', path.join(upstream.root, 'repos', 'bench', 'big.git'), 'rev-parse', 'HEAD'])).stdout.trim();
    const clones: number[] = [];
    const restores: number[] = [];
    const parallelRestores: number[] = [];
    const extracts: number[] = [];
    // This machine's root filesystem is ext4 with `discard`: deleting a 270 MB tree issues TRIMs
    // that slow the next writes for seconds. So nothing is deleted between samples, and every
    // timed step starts after a `sync` (untimed).
    const settle = () => sh('sync');
    for (let i = 0; i < 3; i++) {
      const clone = path.join(work, `clone${i}`);
      await settle();
      clones.push(await time(() => run('git', ['clone', '-q', `${upstream.url}/bench/big.git`, clone], { env: gitClientEnv, maxBuffer: 1 << 24 })));

      const restored = path.join(work, `restore${i}`);
      await settle();
      restores.push(await time(() => run(process.execPath, [...cliArgs, '--url', hoard.url, 'git', 'restore', repoUrl, restored], { maxBuffer: 1 << 24 })));
      if (i === 0) {
        const head = (await run('git', ['-C', restored, 'rev-parse', 'HEAD'])).stdout.trim();
        const status = (await run('git', ['-C', restored, 'status', '--porcelain'], { maxBuffer: 1 << 26 })).stdout;
        if (head !== upstreamHead || status !== '') throw new Error(`restore is wrong: HEAD ${head} vs ${upstreamHead}, status ${status.slice(0, 200)}`);
      }

      const parallel = path.join(work, `parallel${i}`);
      await settle();
      parallelRestores.push(await time(() => run(process.execPath, [...cliArgs, '--url', hoard.url, 'git', 'restore', '--concurrency', '8', repoUrl, parallel], { maxBuffer: 1 << 24 })));

      const extracted = path.join(work, `extract${i}`);
      await fs.mkdir(extracted);
      await settle();
      extracts.push(await time(() => sh(`zstd -d -c -T0 -q '${snapshotFile}' | tar -x -C '${extracted}'`)));
    }
    printTable(
      `Restore a ${FILES}-file repository (checkout ${(shape.treeBytes / 1e6).toFixed(0)} MB, ${shape.blobVersions} blob versions over ${COMMITS + 1} commits, pack ${packMB} MB, snapshot ${(snapshotBytes / 1e6).toFixed(0)} MB), seconds`,
      [
        { name: 'git clone from upstream', value: median(clones), unit: 's' },
        { name: 'hoard git restore (warm, default)', value: median(restores), unit: 's' },
        { name: 'hoard git restore --concurrency 8', value: median(parallelRestores), unit: 's' },
        { name: 'local zstd -d | tar -x', value: median(extracts), unit: 's' },
      ],
      'git clone from upstream',
      `Targets: restore ≥ 5× faster than clone (ratio ≤ 0.20) and ≤ 1.3× the local extract (here ${(median(restores) / median(extracts)).toFixed(2)}×).\nThe default is one stream here (the server is on loopback); 8 parallel ranges are the default between machines.`,
    );
    await fs.rm(snapshotFile, { force: true });
    for (const kind of ['clone', 'restore', 'parallel', 'extract']) for (let i = 0; i < 3; i++) await fs.rm(path.join(work, `${kind}${i}`), { recursive: true, force: true });
    await settle();

    // 1 GiB serve throughput vs nginx sendfile.
    const { stdout: df } = await sh(`df -k --output=avail '${work}' | tail -1`);
    const big = Number(df.trim()) * 1024 > 4 * 1024 ** 3 ? 1024 : 512;
    const www = path.join(work, 'www');
    await fs.mkdir(www);
    const blob = path.join(www, 'blob');
    await sh(`head -c ${big}M /dev/urandom > '${blob}'`);
    await run('curl', ['-sf', '-X', 'POST', '-T', blob, `${hoard.url}/api/v1/object/bench/blob`]);
    // Both copies are written back before anything is timed: writeback of a just-written GiB
    // competing with the first server measured is what made earlier runs read 0.46×.
    await settle();
    const objectUrl = `${hoard.url}/api/v1/object/bench/blob`;
    let nginxUrl: string | undefined;
    if (have('nginx', ['-v'])) {
      const port = await freePort();
      const conf = path.join(work, 'nginx.conf');
      await fs.writeFile(conf, `daemon off;\nuser root;\npid ${work}/nginx.pid;\nerror_log ${work}/nginx-error.log;\nevents {}\nhttp {\n  access_log off;\n  sendfile on;\n  server { listen 127.0.0.1:${port}; root ${www}; }\n}\n`);
      nginx = spawn('nginx', ['-c', conf, '-p', work], { stdio: 'ignore', detached: true });
      for (let i = 0; i < 50; i++) {
        if ((await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-I', `http://127.0.0.1:${port}/blob`]).catch(() => ({ stdout: '' }))).stdout === '200') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      nginxUrl = `http://127.0.0.1:${port}/blob`;
    } else {
      console.log('nginx not found: apt-get install -y nginx (the nginx baseline row is skipped)');
    }
    // Interleaved samples, so drift on a shared machine hits both servers alike; one untimed
    // read of each first puts both files in the page cache.
    await curlSpeed(objectUrl);
    if (nginxUrl) await curlSpeed(nginxUrl);
    const hoardSpeeds: number[] = [];
    const nginxSpeeds: number[] = [];
    for (let i = 0; i < 5; i++) {
      if (nginxUrl) nginxSpeeds.push(await curlSpeed(nginxUrl));
      hoardSpeeds.push(await curlSpeed(objectUrl));
    }
    const rows = [{ name: 'hoard GET (disk tier)', value: median(hoardSpeeds), unit: 'MB/s' }];
    let baseline = 'hoard GET (disk tier)';
    if (nginxUrl) {
      rows.unshift({ name: 'nginx sendfile', value: median(nginxSpeeds), unit: 'MB/s' });
      baseline = 'nginx sendfile';
    }
    printTable(`Serve a ${big} MiB object over loopback with curl, MB/s, medians of 5 interleaved (higher is better)`, rows, baseline, 'Target: hoard ≥ 0.8× nginx. The object API and snapshot.tar.zst share one serving path (sendCacheObject).');

    // Peak RSS while 8 clients download the object at once (VmHWM of the server process).
    const status = async () => (await fs.readFile(`/proc/${hoard.child.pid}/status`, 'utf8')) as string;
    const kb = (text: string, field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(text)?.[1] ?? 0);
    const before = kb(await status(), 'VmRSS');
    let peak = before;
    const sampler = setInterval(() => void status().then((t) => (peak = Math.max(peak, kb(t, 'VmRSS'))), () => undefined), 20);
    await Promise.all(Array.from({ length: 8 }, () => run('curl', ['-sf', '-o', '/dev/null', objectUrl])));
    clearInterval(sampler);
    printTable(
      `hoard RSS while 8 clients download the ${big} MiB object at once, MB`,
      [
        { name: 'RSS before', value: before / 1024, unit: 'MB' },
        { name: 'peak RSS during', value: peak / 1024, unit: 'MB' },
      ],
      'RSS before',
      'Target: ≤ 300 MB.',
    );
  } finally {
    await hoard.stop();
  }
} finally {
  if (nginx?.pid) {
    try {
      process.kill(-nginx.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
}
