/**
 * One upstream fetch per herd: a burst of 8 concurrent GETs of one uncached 5 MiB object from a
 * slow upstream (64 KiB chunks, 5 ms apart), sent through hoard (`strategy host`) and sent
 * direct to the upstream. Reports the followers' time to first byte (the 7 requests after the
 * first) and the bytes the upstream sent, side by side. Goal: followers start within 100 ms,
 * upstream bytes 1/8 of the direct burst. Medians of 3 bursts, each for a fresh object.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { median, printTable, type BenchRow } from './table.js';
import { startHoard } from './harness.js';

const SIZE = 5 * 1024 * 1024;
const CHUNK = 64 * 1024;
const DELAY_MS = 5;
const CLIENTS = 8;
const ROUNDS = 3;
const body = randomBytes(SIZE);

let upstreamBytes = 0;
const upstream = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
  void (async () => {
    for (let offset = 0; offset < SIZE && !res.destroyed; offset += CHUNK) {
      const chunk = body.subarray(offset, offset + CHUNK);
      upstreamBytes += chunk.length;
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
      await new Promise((resolve) => setTimeout(resolve, DELAY_MS));
    }
    res.end();
  })();
});
await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const upstreamHost = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;

/** GETs `url`; resolves with the time to first byte (ms) once the whole body was read. */
function timedGet(url: string): Promise<{ ttfbMs: number; bytes: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let ttfbMs = -1;
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          if (ttfbMs < 0) ttfbMs = Number(process.hrtime.bigint() - started) / 1e6;
          bytes += chunk.length;
        });
        res.once('end', () => (bytes === SIZE ? resolve({ ttfbMs, bytes }) : reject(new Error(`short body: ${bytes} of ${SIZE}`))));
        res.once('error', reject);
      })
      .once('error', reject);
  });
}

/** One burst: the first request, then the 7 followers right after it. */
async function burst(urlOf: (name: string) => string, name: string): Promise<{ followerTtfb: number; maxFollowerTtfb: number; upstreamBytes: number }> {
  const before = upstreamBytes;
  const url = urlOf(name);
  const leader = timedGet(url);
  // The followers leave while the leader's fetch is under way (what a CI fan-out looks like).
  await new Promise((resolve) => setTimeout(resolve, 20));
  const followers = await Promise.all(Array.from({ length: CLIENTS - 1 }, () => timedGet(url)));
  await leader;
  const ttfbs = followers.map((f) => f.ttfbMs);
  return { followerTtfb: median(ttfbs), maxFollowerTtfb: Math.max(...ttfbs), upstreamBytes: upstreamBytes - before };
}

const hoard = await startHoard(`cache disk {}\nmetadata memory {}\nstrategy host "http://${upstreamHost}" {}\n`);
const results: Record<'direct' | 'hoard', Array<Awaited<ReturnType<typeof burst>>>> = { direct: [], hoard: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    results.direct.push(await burst((name) => `http://${upstreamHost}/${name}`, `direct-${round}.bin`));
    results.hoard.push(await burst((name) => `${hoard.url}/${upstreamHost}/${name}`, `herd-${round}.bin`));
  }
} finally {
  await hoard.stop();
  upstream.closeAllConnections();
  upstream.close();
}

const med = (side: 'direct' | 'hoard', field: 'followerTtfb' | 'maxFollowerTtfb' | 'upstreamBytes') => median(results[side].map((r) => r[field]));
const ttfbRows: BenchRow[] = [
  { name: 'direct: followers TTFB (median)', value: med('direct', 'followerTtfb'), unit: 'ms' },
  { name: 'hoard: followers TTFB (median)', value: med('hoard', 'followerTtfb'), unit: 'ms' },
  { name: 'direct: followers TTFB (max)', value: med('direct', 'maxFollowerTtfb'), unit: 'ms' },
  { name: 'hoard: followers TTFB (max)', value: med('hoard', 'maxFollowerTtfb'), unit: 'ms' },
];
printTable(`Herd: ${CLIENTS} concurrent GETs of one uncached 5 MiB object, slow upstream (${CHUNK / 1024} KiB per ${DELAY_MS} ms); medians of ${ROUNDS}`, ttfbRows, 'direct: followers TTFB (median)');
const byteRows: BenchRow[] = [
  { name: 'direct: upstream bytes', value: med('direct', 'upstreamBytes') / (1024 * 1024), unit: 'MiB' },
  { name: 'hoard: upstream bytes', value: med('hoard', 'upstreamBytes') / (1024 * 1024), unit: 'MiB' },
];
printTable('Herd: bytes the upstream sent for the burst', byteRows, 'direct: upstream bytes', `goal: followers start within 100 ms; upstream bytes 1/${CLIENTS} (${(1 / CLIENTS).toFixed(3)}×)`);
