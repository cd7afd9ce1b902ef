/**
 * `npm run soak`: a bounded soak of a real `hoard serve`. 10,000 mixed requests at concurrency 64
 * (object GET/POST, git info/refs and upload-pack of a small repository, snapshot downloads)
 * while the server's RSS and open descriptors are sampled from /proc; prints a table of requests
 * by kind, errors, p50/p99 latency, and RSS and descriptors (start, end, min, max).
 * Options: SOAK_REQUESTS (default 10000), SOAK_CONCURRENCY (default 64).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { git, startGitUpstream } from '../test/fixtures/git-upstream.js';
import { startHoard } from './harness.js';

const TOTAL = Number(process.env['SOAK_REQUESTS'] ?? 10_000);
const CONCURRENCY = Number(process.env['SOAK_CONCURRENCY'] ?? 64);
const KEYS = 100;

type Kind = 'object-get' | 'object-put' | 'git-info-refs' | 'git-upload-pack' | 'snapshot';
/** Share of each kind in the mix (sums to 1). */
const MIX: Array<[Kind, number]> = [
  ['object-get', 0.4],
  ['object-put', 0.1],
  ['git-info-refs', 0.2],
  ['git-upload-pack', 0.2],
  ['snapshot', 0.1],
];

const upstream = await startGitUpstream();
await upstream.createRepo('org/soak.git', { files: 50, commits: 5 });
const head = git(['rev-parse', 'HEAD'], path.join(upstream.root, 'repos', 'org/soak.git'));
const hoard = await startHoard(`cache disk {}\nmetadata memory {}\nstrategy git {\n  plain-http-hosts = ["${upstream.hostPort}"]\n}\n`);
const pid = hoard.child.pid!;
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const repoPath = `/git/${upstream.hostPort}/org/soak.git`;

function pkt(line: string): string {
  return (line.length + 4).toString(16).padStart(4, '0') + line;
}
/** A protocol v0 fetch of HEAD: one want, flush, done. */
const uploadPackBody = Buffer.from(`${pkt(`want ${head} side-band-64k ofs-delta agent=hoard-soak\n`)}0000${pkt('done\n')}`);

interface Answer {
  status: number;
  body: Buffer;
}
function request(method: string, urlPath: string, body?: Buffer, headers: http.OutgoingHttpHeaders = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${hoard.url}${urlPath}`, { method, agent, headers: body ? { ...headers, 'content-length': body.length } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => (res.complete ? resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }) : reject(new Error('incomplete response'))));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  });
}

const bodies = Array.from({ length: KEYS }, (_, i) => randomBytes(16 * 1024 * (1 + (i % 16))));
for (let i = 0; i < KEYS; i++) {
  const res = await request('POST', `/api/v1/object/soak/key-${i}`, bodies[i]);
  if (res.status !== 200) throw new Error(`seeding key-${i}: ${res.status} ${res.body}`);
}
// Warm the mirror and the snapshot so the soak measures steady state, not the first clone.
for (const p of [`${repoPath}/info/refs?service=git-upload-pack`, `${repoPath}/snapshot.tar.zst`]) {
  const res = await request('GET', p);
  if (res.status !== 200) throw new Error(`warming ${p}: ${res.status}`);
}

/** Runs one request of `kind`; resolves to an error description, or undefined when it succeeded. */
async function run(kind: Kind, n: number): Promise<string | undefined> {
  const key = n % KEYS;
  switch (kind) {
    case 'object-get': {
      const res = await request('GET', `/api/v1/object/soak/key-${key}`);
      return res.status === 200 && res.body.equals(bodies[key] as Buffer) ? undefined : `status ${res.status}, ${res.body.length} bytes`;
    }
    case 'object-put': {
      // Rewrites with the same bytes, so concurrent GETs can still check what they receive.
      const res = await request('POST', `/api/v1/object/soak/key-${key}`, bodies[key]);
      return res.status === 200 ? undefined : `status ${res.status}`;
    }
    case 'git-info-refs': {
      const res = await request('GET', `${repoPath}/info/refs?service=git-upload-pack`);
      return res.status === 200 && res.body.includes(head) ? undefined : `status ${res.status}`;
    }
    case 'git-upload-pack': {
      const res = await request('POST', `${repoPath}/git-upload-pack`, uploadPackBody, { 'content-type': 'application/x-git-upload-pack-request' });
      return res.status === 200 && res.body.includes('PACK') ? undefined : `status ${res.status}: ${res.body.subarray(0, 200)}`;
    }
    case 'snapshot': {
      const res = await request('GET', `${repoPath}/snapshot.tar.zst`);
      // A zstd frame, or the skippable frame pzstd puts first, starts with its magic number.
      const magic = res.body.length >= 4 ? res.body.readUInt32LE(0) : 0;
      const zstd = magic === 0xfd2fb528 || (magic & 0xfffffff0) === 0x184d2a50;
      return res.status === 200 && zstd ? undefined : `status ${res.status}, ${res.body.length} bytes starting ${res.body.subarray(0, 4).toString('hex')}`;
    }
  }
}

interface Sample {
  rssKiB: number;
  fds: number;
}
function sample(): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rssKiB, fds: readdirSync(`/proc/${pid}/fd`).length };
}
const samples: Sample[] = [sample()];
const sampler = setInterval(() => samples.push(sample()), 250);

const latencies = new Map<Kind, number[]>(MIX.map(([k]) => [k, []]));
const errors = new Map<Kind, number>(MIX.map(([k]) => [k, 0]));
const firstErrors: string[] = [];
/** Deterministic interleaving: request n's kind is fixed by n, so runs are comparable. */
const kinds: Kind[] = [];
for (const [kind, share] of MIX) for (let i = 0; i < Math.round(share * 1000); i++) kinds.push(kind);
let next = 0;
const started = Date.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    while (next < TOTAL) {
      const n = next++;
      const kind = kinds[(n * 7919) % kinds.length] as Kind;
      const t0 = process.hrtime.bigint();
      let failure: string | undefined;
      try {
        failure = await run(kind, n);
      } catch (err) {
        failure = (err as Error).message;
      }
      latencies.get(kind)!.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (failure) {
        errors.set(kind, (errors.get(kind) ?? 0) + 1);
        if (firstErrors.length < 5) firstErrors.push(`${kind}: ${failure}`);
      }
    }
  }),
);
const elapsed = (Date.now() - started) / 1000;
clearInterval(sampler);
// The end sample is taken once the keep-alive sockets are closed, so descriptors show what leaks.
agent.destroy();
await new Promise((r) => setTimeout(r, 500));
samples.push(sample());

const pct = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number) : 0;
};
console.log(`\nsoak: ${TOTAL} requests at concurrency ${CONCURRENCY} in ${elapsed.toFixed(1)} s (${(TOTAL / elapsed).toFixed(0)} req/s), hoard pid ${pid}`);
console.log(`${'kind'.padEnd(16)} | ${'requests'.padStart(8)} | ${'errors'.padStart(6)} | ${'p50 ms'.padStart(8)} | ${'p99 ms'.padStart(8)}`);
console.log(`${'-'.repeat(16)}-|-${'-'.repeat(8)}-|-${'-'.repeat(6)}-|-${'-'.repeat(8)}-|-${'-'.repeat(8)}`);
for (const [kind] of MIX) {
  const values = latencies.get(kind)!;
  console.log(`${kind.padEnd(16)} | ${String(values.length).padStart(8)} | ${String(errors.get(kind)).padStart(6)} | ${pct(values, 50).toFixed(1).padStart(8)} | ${pct(values, 99).toFixed(1).padStart(8)}`);
}
const all = [...latencies.values()].flat();
const totalErrors = [...errors.values()].reduce((a, b) => a + b, 0);
console.log(`${'all'.padEnd(16)} | ${String(all.length).padStart(8)} | ${String(totalErrors).padStart(6)} | ${pct(all, 50).toFixed(1).padStart(8)} | ${pct(all, 99).toFixed(1).padStart(8)}`);
const rss = samples.map((s) => s.rssKiB / 1024);
const fds = samples.map((s) => s.fds);
const first = samples[0] as Sample;
const last = samples[samples.length - 1] as Sample;
console.log(`\n${`server (${samples.length} samples)`.padEnd(23)} |    start |      end |      min |      max`);
console.log(`RSS MiB                 | ${(first.rssKiB / 1024).toFixed(0).padStart(8)} | ${(last.rssKiB / 1024).toFixed(0).padStart(8)} | ${Math.min(...rss).toFixed(0).padStart(8)} | ${Math.max(...rss).toFixed(0).padStart(8)}`);
console.log(`open descriptors        | ${String(first.fds).padStart(8)} | ${String(last.fds).padStart(8)} | ${String(Math.min(...fds)).padStart(8)} | ${String(Math.max(...fds)).padStart(8)}`);
if (firstErrors.length) console.log(`\nfirst errors:\n  ${firstErrors.join('\n  ')}`);

await hoard.stop();
await upstream.close();
process.exit(totalErrors === 0 ? 0 : 1);
