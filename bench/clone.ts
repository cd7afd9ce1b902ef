/**
 * `git clone` of a generated source-like repository (≥20k files, ≥100 MB checkout, a long
 * history of small edits): direct from the upstream (git http-backend on loopback), through
 * hoard cold (mirror being cloned, answered via the spool), and through hoard warm (served
 * from the mirror). Medians of 3 for direct and warm. Same shape knobs as bench/restore.ts.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startGitUpstream, gitClientEnv } from '../test/fixtures/git-upstream.js';
import { generateSourceRepo } from '../test/fixtures/source-repo-generator.js';
import { median, printTable } from './table.js';
import { startHoard, time } from './harness.js';

const run = promisify(execFile);
const FILES = Number(process.env['BENCH_REPO_FILES'] ?? 20_000);
const FILE_BYTES = Number(process.env['BENCH_FILE_BYTES'] ?? 6000);
const COMMITS = Number(process.env['BENCH_COMMITS'] ?? 120);
const FILES_PER_COMMIT = Number(process.env['BENCH_FILES_PER_COMMIT'] ?? 2000);

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-bench-clone-'));
const upstream = await startGitUpstream();
try {
  process.stderr.write(`generating a repository: ${FILES} files of ~${FILE_BYTES} bytes, ${COMMITS} commits of ${FILES_PER_COMMIT} files each...\n`);
  const shape = await generateSourceRepo(path.join(upstream.root, 'repos', 'bench', 'big.git'), { files: FILES, fileBytes: FILE_BYTES, commits: COMMITS, filesPerCommit: FILES_PER_COMMIT });
  const hoard = await startHoard(`cache disk {}\nmetadata memory {}\ngit-clone { ref-check-interval = "1h" }\nstrategy git { plain-http-hosts = ["${upstream.hostPort}"] }\n`);
  try {
    let n = 0;
    const clone = (url: string) => time(() => run('git', ['clone', '-q', url, path.join(work, `c${n++}`)], { env: gitClientEnv, maxBuffer: 1 << 24 }));
    const direct = `${upstream.url}/bench/big.git`;
    const via = `${hoard.url}/git/${upstream.hostPort}/bench/big.git`;
    const directTimes: number[] = [];
    for (let i = 0; i < 3; i++) directTimes.push(await clone(direct));
    const cold = await clone(via);
    // Wait for the background mirror clone to finish before measuring warm clones.
    const mirrorHead = path.join(hoard.state, 'git-mirrors', upstream.hostPort, 'bench', 'big.git', 'HEAD');
    for (let i = 0; i < 600 && !(await fs.stat(mirrorHead).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 500));
    if (!(await fs.stat(mirrorHead).then(() => true, () => false))) throw new Error('the mirror did not become Ready within 300 s: warm clones would not be warm');
    const warmTimes: number[] = [];
    for (let i = 0; i < 3; i++) warmTimes.push(await clone(via));
    const { stdout } = await run('du', ['-sm', path.join(upstream.root, 'repos', 'bench', 'big.git')]);
    printTable(
      `git clone of a ${stdout.split('\t')[0]} MB bare repository (${FILES} files, ${(shape.treeBytes / 1e6).toFixed(0)} MB checkout, ${shape.blobVersions} blob versions), seconds`,
      [
        { name: 'direct from upstream (median of 3)', value: median(directTimes), unit: 's' },
        { name: 'through hoard, cold (first clone)', value: cold, unit: 's' },
        { name: 'through hoard, warm (median of 3)', value: median(warmTimes), unit: 's' },
      ],
      'direct from upstream (median of 3)',
      'Target: warm ≤ 1.1× direct. Both serve from a local bare repo via git http-backend, so warm ≈ direct is the ceiling here;\nagainst a remote upstream the warm path saves the WAN transfer and the upstream\'s pack computation.',
    );
  } finally {
    await hoard.stop();
  }
} finally {
  await upstream.close();
  await fs.rm(work, { recursive: true, force: true });
}
