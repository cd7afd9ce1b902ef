/**
 * Object API GET throughput for a 4 KiB object from the memory and disk tiers, against a bare
 * node:http server answering a constant 4 KiB body (the ceiling for any Node server here), and
 * `hoard --version` start-up time against `node -e 0`.
 */
import { spawnSync, spawn } from 'node:child_process';
import path from 'node:path';
import { median, printTable, type BenchRow } from './table.js';
import { measureRps, startHoard } from './harness.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 8);
const body = Buffer.alloc(4096, 'x');
const rows: BenchRow[] = [];
let tool = '';

// Baseline: a bare node:http server in its own process.
const bare = spawn(process.execPath, ['-e', `const b=Buffer.alloc(4096,'x');require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'application/octet-stream','content-length':4096});s.end(b)}).listen(0,'127.0.0.1',function(){console.log(this.address().port)})`], { stdio: ['ignore', 'pipe', 'inherit'] });
const barePort = await new Promise<number>((resolve) => bare.stdout!.once('data', (c: Buffer) => resolve(Number(String(c).trim()))));
try {
  const r = await measureRps(`http://127.0.0.1:${barePort}/`, SECONDS);
  rows.push({ name: 'bare node:http (4 KiB)', value: r.rps, unit: 'req/s' });
  tool = r.tool;
} finally {
  bare.kill('SIGKILL');
}

for (const tier of ['memory', 'disk'] as const) {
  const hoard = await startHoard(`cache ${tier} {}\nmetadata memory {}\n`);
  try {
    const url = `${hoard.url}/api/v1/object/bench/obj4k`;
    const put = await fetch(url, { method: 'POST', body });
    if (put.status !== 200) throw new Error(`upload failed: ${put.status}`);
    await measureRps(url, 2); // warm-up
    const r = await measureRps(url, SECONDS);
    rows.push({ name: `hoard GET, ${tier} tier`, value: r.rps, unit: 'req/s' });
  } finally {
    await hoard.stop();
  }
}
printTable(`Object API: 4 KiB GET throughput (${tool}, 32 connections, ${SECONDS}s each)`, rows, 'bare node:http (4 KiB)');

const root = path.resolve(new URL('..', import.meta.url).pathname);
const startTimes = (args: string[]) =>
  median(
    Array.from({ length: 11 }, () => {
      const t = process.hrtime.bigint();
      spawnSync(process.execPath, args, { stdio: 'ignore' });
      return Number(process.hrtime.bigint() - t) / 1e6;
    }),
  );
printTable(
  'Start-up time (median of 11)',
  [
    { name: 'node -e 0', value: startTimes(['-e', '0']), unit: 'ms' },
    { name: 'hoard --version', value: startTimes([path.join(root, 'dist/src/cli/main.js'), '--version']), unit: 'ms' },
  ],
  'node -e 0',
  'Target: hoard --version ≤ 150 ms.',
);
