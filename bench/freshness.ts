/**
 * Staleness, measured: after a change upstream (a commit, a tag, a deleted branch, a change of the
 * default branch), how long until a client's fetch through hoard sees it. Three hoards side by
 * side, one per way of learning about changes:
 *   ref checks  `ref-check-interval = INTERVAL`, refresher off: a ref listing compares upstream's
 *               advertisement at most once per interval;
 *   refresher   `fetch-interval = INTERVAL`, ref checks effectively off (1h): the background
 *               refresher fetches each mirror about once per interval;
 *   webhook     both off (1h / 0), a signed GitHub `push` webhook sent right after the change.
 * and the same fetch straight from the upstream (its cost is the resolution of every number).
 * The upstream is Apache httpd + git-http-backend (test/fixtures/apache-git.ts). Each sample waits
 * a random part of the interval before changing upstream, so the phase against hoard's timers is
 * uniform; the table shows the median and the worst of BENCH_SAMPLES samples.
 *
 * BENCH_FRESHNESS_INTERVAL (default 5s) and BENCH_SAMPLES (default 3) tune it.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { startApacheGit } from '../test/fixtures/apache-git.js';
import { gitClientEnv } from '../test/fixtures/git-upstream.js';
import { median } from './table.js';
import { startHoard, type HoardProcess } from './harness.js';

const run = promisify(execFile);
const INTERVAL = process.env['BENCH_FRESHNESS_INTERVAL'] ?? '5s';
const INTERVAL_MS = parseDuration(INTERVAL) ?? Number.NaN;
if (!(INTERVAL_MS > 0)) throw new Error(`BENCH_FRESHNESS_INTERVAL must be a positive duration such as 5s (got ${JSON.stringify(INTERVAL)})`);
const SAMPLES = Number(process.env['BENCH_SAMPLES'] ?? 3);
const SECRET = 'bench-webhook-secret';
/** A change nobody sees within this long counts as never seen (and fails the bench). */
const GIVE_UP_MS = 10 * INTERVAL_MS + 60_000;

const git = async (args: string[], cwd?: string) => (await run('git', args, { cwd, env: gitClientEnv, maxBuffer: 64 << 20 })).stdout.trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Kind = 'commit' | 'tag' | 'deletion' | 'default branch';
const KINDS: Kind[] = ['commit', 'tag', 'deletion', 'default branch'];

interface Mode {
  name: string;
  /** Base URL of repositories for this mode (`…/git/<host>/git` or the upstream itself). */
  base: string;
  /** Called right after each upstream change (the webhook mode sends its delivery). */
  afterChange(repository: string): Promise<void>;
  /** Whether phases matter (a timer-driven mode): then each sample starts at a random point. */
  timed: boolean;
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-bench-freshness-'));
const apache = await startApacheGit();
const hoards: HoardProcess[] = [];
try {
  const hcl = (clone: string, extra = '') => `cache disk {}
metadata memory {}
git-clone {
  ${clone}
}
strategy git {
  plain-http-hosts = ["${apache.hostPort}"]
  ${extra}
}
`;
  const start = async (config: string) => {
    const h = await startHoard(config);
    hoards.push(h);
    return h;
  };
  const [checks, refresher, webhook] = await Promise.all([
    start(hcl(`ref-check-interval = "${INTERVAL}"\n  fetch-interval = "0"`)),
    start(hcl(`ref-check-interval = "1h"\n  fetch-interval = "${INTERVAL}"`)),
    start(hcl(`ref-check-interval = "1h"\n  fetch-interval = "0"`, `webhook-secret = "${SECRET}"`)),
  ]);
  const via = (h: HoardProcess) => `${h.url}/git/${apache.hostPort}/git`;
  const sendWebhook = async (repository: string) => {
    const body = JSON.stringify({ ref: 'refs/heads/main', repository: { clone_url: `http://${apache.hostPort}/git/${repository}.git`, full_name: repository } });
    const res = await fetch(`${webhook.url}/git/webhook/github`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` },
      body,
    });
    if (res.status !== 202) throw new Error(`webhook answered ${res.status}: ${await res.text()}`);
  };
  const modes: Mode[] = [
    { name: 'direct (upstream)', base: apache.url, afterChange: async () => undefined, timed: false },
    { name: `ref checks (${INTERVAL})`, base: via(checks), afterChange: async () => undefined, timed: true },
    { name: `refresher (${INTERVAL})`, base: via(refresher), afterChange: async () => undefined, timed: true },
    { name: 'webhook', base: via(webhook), afterChange: sendWebhook, timed: false },
  ];

  /**
   * One repository per mode, cloned through that mode (so the mirror is Ready), with a client
   * clone whose fetches are what we time.
   */
  const setup = async (mode: Mode, index: number) => {
    const repository = `bench/fresh-${index}`;
    await apache.createRepo(`${repository}.git`, { branches: ['develop'] });
    const dir = path.join(work, `client-${index}`);
    await git(['clone', '-q', `${mode.base}/${repository}`, dir]);
    return { repository, dir };
  };

  /**
   * Prepares one change of `kind` (untimed steps first: a branch to delete must exist and have been
   * seen); `apply` makes the change upstream, `seen` fetches in `dir` and says whether it arrived.
   */
  const prepare = async (mode: Mode, kind: Kind, repository: string, dir: string, n: number): Promise<{ apply(): Promise<void>; seen(): Promise<boolean> }> => {
    const bare = apache.bareOf(`${repository}.git`);
    const fetchAll = () => git(['fetch', '-q', '--prune', '--prune-tags', '--force', 'origin'], dir);
    switch (kind) {
      case 'commit': {
        let sha = '';
        return {
          apply: async () => void (sha = await apache.commit(`${repository}.git`, `change ${n}`)),
          seen: async () => (await fetchAll(), (await git(['rev-parse', 'refs/remotes/origin/main'], dir)) === sha),
        };
      }
      case 'tag':
        return {
          apply: async () => void apache.git(['tag', '-a', '-m', `release ${n}`, `r${n}`, 'main'], bare),
          seen: async () => (await fetchAll(), (await git(['tag', '-l', `r${n}`], dir)) === `r${n}`),
        };
      case 'deletion': {
        const branch = `gone-${n}`;
        const present = async () => (await fetchAll(), (await git(['branch', '-r', '--list', `origin/${branch}`], dir)) !== '');
        apache.git(['branch', branch, 'main'], bare);
        await mode.afterChange(repository);
        await waitUntil(present);
        return { apply: async () => void apache.git(['branch', '-D', branch], bare), seen: async () => !(await present()) };
      }
      case 'default branch': {
        const target = apache.git(['symbolic-ref', 'HEAD'], bare) === 'refs/heads/main' ? 'refs/heads/develop' : 'refs/heads/main';
        return {
          apply: async () => void apache.git(['symbolic-ref', 'HEAD', target], bare),
          // What a fresh clone would check out: the advertised HEAD symref.
          seen: async () => (await git(['ls-remote', '--symref', 'origin', 'HEAD'], dir)).startsWith(`ref: ${target}\t`),
        };
      }
    }
  };

  async function waitUntil(seen: () => Promise<boolean>): Promise<void> {
    const until = Date.now() + GIVE_UP_MS;
    while (!(await seen())) {
      if (Date.now() > until) throw new Error(`a change was not seen within ${GIVE_UP_MS} ms`);
    }
  }

  /** Seconds from each change upstream until this mode's client fetch saw it, per kind. */
  const measure = async (mode: Mode, index: number): Promise<Map<Kind, number[]>> => {
    const { repository, dir } = await setup(mode, index);
    const results = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
    let n = 0;
    for (let sample = 0; sample < SAMPLES; sample++) {
      for (const kind of KINDS) {
        const step = await prepare(mode, kind, repository, dir, ++n);
        if (mode.timed) await sleep(Math.random() * INTERVAL_MS);
        await step.apply();
        const t0 = performance.now();
        await mode.afterChange(repository);
        await waitUntil(step.seen);
        results.get(kind)!.push((performance.now() - t0) / 1000);
        process.stderr.write(`${mode.name} ${kind} #${sample + 1}: ${results.get(kind)!.at(-1)!.toFixed(2)} s\n`);
      }
    }
    return results;
  };

  process.stderr.write(`measuring ${SAMPLES} samples per change kind, interval ${INTERVAL}...\n`);
  const measured = await Promise.all(modes.map((mode, i) => measure(mode, i)));

  const cell = (values: number[]) => `${median(values).toFixed(1)} s (max ${Math.max(...values).toFixed(1)})`;
  const header = ['change upstream', ...modes.map((m) => m.name)];
  const rows = KINDS.map((kind) => [kind, ...measured.map((m) => cell(m.get(kind)!))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(`\nTime until a fetch through hoard sees a change upstream (median of ${SAMPLES} samples, max = the worst; Apache upstream, interval ${INTERVAL})`);
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
  console.log('direct = one fetch straight from the upstream: the resolution of every other cell.');
} finally {
  await Promise.all(hoards.map((h) => h.stop()));
  await apache.close();
  await fs.rm(work, { recursive: true, force: true });
}
