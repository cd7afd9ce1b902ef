/**
 * A flood of 2,000 idle connections (issue 10 point 9): half send nothing, half a request line
 * and never finish their headers. `hoard serve` (a real process, so its descriptors can be
 * counted in /proc) keeps answering other clients meanwhile, and releases the descriptors once
 * the flood's sockets close.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startHoardOnConfig, stopAllHoardProcesses } from '../../fixtures/hoard-process.js';
import { waitFor } from './process-table.js';

const FLOOD = 2000;
let work: string | undefined;
const sockets: net.Socket[] = [];

after(async () => {
  for (const s of sockets) s.destroy();
  await stopAllHoardProcesses();
  if (work) await fs.rm(work, { recursive: true, force: true });
});

function softFdLimit(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const value = line?.split(/\s+/)[3];
  return value === 'unlimited' ? Infinity : Number(value);
}

/** Raises this process's descriptor limit (the server inherits it); false when that is refused. */
function ensureFdLimit(wanted: number): boolean {
  if (softFdLimit() >= wanted) return true;
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${wanted}:${wanted}`], { stdio: 'ignore' });
  } catch {
    // not root and the hard limit is lower: reported by the caller
  }
  return softFdLimit() >= wanted;
}

const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

test('2,000 idle connections: the server keeps answering others and releases every descriptor afterwards', async (t) => {
  if (!ensureFdLimit(FLOOD * 2 + 1000)) {
    t.skip(`the descriptor limit is ${softFdLimit()} and cannot be raised to ${FLOOD * 2 + 1000} here`);
    return;
  }
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-flood-'));
  const hoard = await startHoardOnConfig(work, 'cache disk {}\nmetadata memory {}\n', { logLevel: 'warn' });
  const { port } = new URL(hoard.url);
  const body = randomBytes(64 * 1024);
  const roundTrip = async (key: string) => {
    const put = await fetch(`${hoard.url}/api/v1/object/flood/${key}`, { method: 'POST', body });
    assert.equal(put.status, 200, await put.text());
    const got = await fetch(`${hoard.url}/api/v1/object/flood/${key}`);
    assert.equal(got.status, 200);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(body));
  };
  await roundTrip('warm-up');
  const baseline = openFds(hoard.pid);

  for (let i = 0; i < FLOOD; i++) {
    const socket = net.connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    sockets.push(socket);
    if (i % 2 === 1) socket.write(`GET /api/v1/object/flood/warm-up HTTP/1.1\r\nHost: x\r\n`);
    // Connect in batches so the listen backlog never overflows into client-side retries.
    if (i % 200 === 199) await Promise.all(sockets.slice(-200).map((s) => (s.readyState === 'open' ? undefined : new Promise((r) => s.once('connect', r)))));
  }
  await waitFor('the server to accept the flood', 30_000, () => (openFds(hoard.pid) >= baseline + FLOOD * 0.9 ? true : undefined));

  // Other clients are served while the flood holds its connections.
  for (let i = 0; i < 5; i++) await roundTrip(`during-${i}`);
  assert.equal((await fetch(`${hoard.url}/_liveness`)).status, 200);
  assert.ok(sockets.filter((s) => !s.destroyed).length > FLOOD * 0.9, 'the flood is still connected');

  for (const s of sockets) s.destroy();
  await waitFor(`the server's descriptors to return to about ${baseline}`, 30_000, () => (openFds(hoard.pid) <= baseline + 10 ? true : undefined));
  await roundTrip('after');
  await hoard.kill9();
});
