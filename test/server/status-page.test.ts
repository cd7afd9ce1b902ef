import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import puppeteer, { type Browser } from 'puppeteer-core';
import { loadConfig } from '../../src/config/load.js';
import { allProviderSpecs, startServer, type RunningServer } from '../../src/app/wiring.js';
import { startGitUpstream, gitClientEnv, type GitUpstream } from '../fixtures/git-upstream.js';
import { freePort } from '../fixtures/metrics-scrape.js';

const execFileAsync = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Committed screenshot the README shows; rewritten only when HOARD_UPDATE_SCREENSHOT=1. */
const SCREENSHOT = path.join(root, 'docs/status-page.png');

/** The system Chromium (Debian's `chromium`), or $CHROMIUM_PATH. */
function chromiumPath(): string | undefined {
  const candidates = [process.env['CHROMIUM_PATH'], '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((c): c is string => !!c && existsSync(c));
}
const chromium = chromiumPath();
// Skipped only on a developer machine without Chromium; in CI (.ci/run installs it) it must run.
const skip = !chromium && !process.env['CI'] ? 'no chromium binary (install Debian `chromium` or set CHROMIUM_PATH); the status page browser test needs it' : false;

let upstream: GitUpstream;
let origin: http.Server;
let originHost: string;
let deadHost: string;
let hoard: RunningServer;
let stateDir: string;
let work: string;
let browser: Browser;

before(async () => {
  if (skip) return;
  upstream = await startGitUpstream();
  origin = http.createServer((req, res) => {
    const body = Buffer.from(`artifact ${req.url}\n`.repeat(2000));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originHost = `127.0.0.1:${(origin.address() as AddressInfo).port}`;
  // A host nothing listens on: its fetches fail, which the upstream health and errors show.
  // (`localhost`, not 127.0.0.1: two host strategies on 127.0.0.1:<port> would claim the same route.)
  deadHost = `localhost:${await freePort()}`;
  stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-status-'));
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-status-work-'));
  const text = `state = "${stateDir}"
log { level = "info" }
cache memory {}
cache disk {}
metadata memory {}
metrics { port = 0 }
git-clone { ref-check-interval = "1h" }
strategy git { plain-http-hosts = ["${upstream.hostPort}"] }
strategy host "http://${originHost}" {}
strategy host "http://${deadHost}" {}
`;
  const cfg = loadConfig({ text, env: process.env, cwd: stateDir, specs: allProviderSpecs(), source: 'status-test.hcl' });
  // hoard's own logger (so recent errors are recorded), writing nowhere.
  const sink = new Writable({ write: (_chunk, _enc, cb) => cb() });
  hoard = await startServer(cfg, { listen: { host: '127.0.0.1', port: 0 }, logDestination: sink });
  const args = ['--headless=new', '--disable-gpu', '--disable-dev-shm-usage'];
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  browser = await puppeteer.launch({ executablePath: chromium ?? 'chromium', args, defaultViewport: { width: 1200, height: 800 } });
});
after(async () => {
  await browser?.close();
  await hoard?.close();
  await upstream?.close();
  origin?.closeAllConnections();
  if (origin) await new Promise((resolve) => origin.close(resolve));
  if (stateDir) await fs.rm(stateDir, { recursive: true, force: true });
  if (work) await fs.rm(work, { recursive: true, force: true });
});

/** Real traffic: a clone and a snapshot through hoard, object API hits and a miss, host fetches, a failing host. */
async function traffic(): Promise<void> {
  await upstream.createRepo('acme/widgets.git', { files: 20 });
  await execFileAsync('git', ['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/acme/widgets.git`, path.join(work, 'widgets')], { env: gitClientEnv });
  // Once the mirror is Ready a second clone is served from it (a git hit).
  for (const deadline = Date.now() + 30_000; !(await fetch(`${hoard.url}/?format=json`).then((r) => r.text())).includes('"state":"ready"') && Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await execFileAsync('git', ['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/acme/widgets.git`, path.join(work, 'widgets-warm')], { env: gitClientEnv });
  // A repository the upstream lacks: its clone fails, which hoard logs (recent errors).
  await assert.rejects(execFileAsync('git', ['clone', '-q', `${hoard.url}/git/${upstream.hostPort}/acme/missing.git`, path.join(work, 'missing')], { env: gitClientEnv }));
  const snapshot = await fetch(`${hoard.url}/git/${upstream.hostPort}/acme/widgets/snapshot.tar.zst`);
  assert.equal(snapshot.status, 200);
  await snapshot.arrayBuffer();
  assert.equal((await fetch(`${hoard.url}/api/v1/object/ci/deps`, { method: 'POST', body: 'x'.repeat(4096) })).status, 200);
  for (const key of ['deps', 'deps', 'absent']) await (await fetch(`${hoard.url}/api/v1/object/ci/${key}`)).arrayBuffer();
  for (const file of ['a.bin', 'b.bin']) await (await fetch(`${hoard.url}/${originHost}/${file}`)).arrayBuffer();
  const failed = await fetch(`${hoard.url}/${deadHost}/gone.bin`);
  assert.equal(failed.status, 502);
  await failed.arrayBuffer();
}

/** The text of every cell of one status table, row by row. */
function tableRows(sectionId: string): string[][] {
  const rows = document.querySelectorAll(`#${sectionId} tbody tr`);
  return [...rows].map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent ?? ''));
}

describe('status page in headless Chromium', { skip }, () => {
  test('after a clone: the repository row and hit rates render, refresh from JSON, and read without JavaScript', async () => {
    await traffic();
    const repo = `http://${upstream.hostPort}/acme/widgets`;

    const page = await browser.newPage();
    const scriptErrors: string[] = [];
    page.on('pageerror', (err) => scriptErrors.push(String(err)));
    page.on('console', (msg) => {
      if (msg.type() === 'error') scriptErrors.push(msg.text());
    });
    const response = await page.goto(`${hoard.url}/`, { waitUntil: 'load' });
    assert.equal(response?.status(), 200);
    assert.match(response?.headers()['content-security-policy'] ?? '', /script-src 'sha256-/);
    // The script refreshes the tables from ?format=json (once at least) without errors, CSP included.
    await page.waitForFunction(() => Number(document.documentElement.dataset['refreshes'] ?? 0) >= 1, { timeout: 30_000 });
    assert.deepEqual(scriptErrors, []);

    const repositories = await page.evaluate(tableRows, 'repositories');
    const row = repositories.find((cells) => cells[0] === repo);
    assert.ok(row, `a row for ${repo} in ${JSON.stringify(repositories)}`);
    assert.equal(row[1], 'git');
    assert.equal(row[2], 'ready');
    assert.match(row[3] ?? '', /s ago$/, 'last fetch');
    assert.match(row[4] ?? '', /s ago$/, 'snapshot age');
    assert.match(row[5] ?? '', /\d+(\.\d)? (B|KiB|MiB)$/, 'snapshot size');

    const strategies = await page.evaluate(tableRows, 'strategies');
    const api = strategies.find((cells) => cells[0] === 'api');
    // Two hits and one miss: 66.7 %.
    assert.equal(api?.[1], '66.7%', JSON.stringify(strategies));
    const gitRow = strategies.find((cells) => cells[0] === 'git');
    assert.ok(gitRow && Number(gitRow[2]) >= 1 && Number(gitRow[3]) >= 1, `git hits and misses: ${JSON.stringify(gitRow)}`);

    const tiers = await page.evaluate(tableRows, 'tiers');
    assert.deepEqual(tiers.map((cells) => cells[1]?.split(':')[0]), ['memory', 'disk']);
    const upstreams = await page.evaluate(tableRows, 'upstreams');
    const dead = upstreams.find((cells) => cells[0] === deadHost);
    assert.ok(dead && Number(dead[2]) >= 1, `errors of ${deadHost} in ${JSON.stringify(upstreams)}`);
    assert.ok(upstreams.some((cells) => cells[0] === originHost && cells[2] === '0'));

    const errors = await page.evaluate(tableRows, 'errors');
    assert.ok(errors.some((cells) => cells[1] === 'warn' || cells[1] === 'error'), `recent errors: ${JSON.stringify(errors)}`);

    if (process.env['HOARD_UPDATE_SCREENSHOT'] === '1') await page.screenshot({ path: SCREENSHOT, type: 'png' });
    const shot = Buffer.from(await page.screenshot({ type: 'png' }));
    assert.equal(shot.subarray(1, 4).toString(), 'PNG');
    await page.close();

    // Without JavaScript: the same rows as a plain table, and a meta refresh instead of the script.
    const plain = await browser.newPage();
    await plain.setJavaScriptEnabled(false);
    const again = await plain.goto(`${hoard.url}/`, { waitUntil: 'load' });
    assert.equal(again?.status(), 200);
    const html = await plain.content();
    assert.ok(html.includes(`<td>${repo}</td>`), 'the repository row is in the served table');
    assert.ok(html.includes('<td>api</td><td>66.7%</td>'), 'the api hit rate is in the served table');
    const refresh = await plain.$('meta[http-equiv="refresh"]');
    assert.ok(refresh, 'a meta refresh takes over from the script');
    const cells = await plain.$$eval('#repositories tbody td', (tds) => tds.map((td) => td.textContent));
    assert.ok(cells.includes(repo));
    await plain.close();
  });
});
