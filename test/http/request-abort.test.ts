import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { watchClientAbort, withClientAbort } from '../../src/http/request-abort.js';
import { fileCleanups } from '../fixtures/cleanups.js';

const { defer } = fileCleanups();

/** A real server on a loopback port whose requests go to `handler`; closed after the file. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  defer(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as AddressInfo).port;
}

/** A promise with its resolve function outside (Node 20 has no Promise.withResolvers). */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves when `signal` aborts; rejects after `ms` so a broken primitive fails instead of hanging. */
function abortedWithin(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => reject(new Error(`signal not aborted within ${ms} ms`)), ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

test('a client that disconnects mid-response aborts the signal, with the default AbortError reason', async () => {
  let signal!: AbortSignal;
  const started = deferred<void>();
  const port = await serve((_req, res) => {
    signal = watchClientAbort(res).signal;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
    started.resolve();
  });
  const client = http.get({ host: '127.0.0.1', port, path: '/' });
  client.on('error', () => undefined);
  const [response] = (await once(client, 'response')) as [IncomingMessage];
  await started.promise;
  assert.equal(signal.aborted, false);
  response.destroy();
  client.destroy();
  await abortedWithin(signal, 5000);
  assert.equal((signal.reason as Error).name, 'AbortError');
});

test('a response that finished never aborts, and its listener is gone once it closed', async () => {
  const seen = deferred<{ signal: AbortSignal; during: number; after: number; baseline: number }>();
  const port = await serve((_req, res) => {
    const baseline = res.listenerCount('close');
    const { signal } = watchClientAbort(res);
    const during = res.listenerCount('close');
    res.once('close', () => setImmediate(() => seen.resolve({ signal, during, after: res.listenerCount('close'), baseline })));
    res.end('done');
  });
  const body = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
  assert.equal(body, 'done');
  const { signal, during, after, baseline } = await seen.promise;
  assert.equal(signal.aborted, false);
  assert.equal(during, baseline + 1);
  assert.equal(after, baseline);
});

test('release() removes the listeners at once, and on a keep-alive socket nothing accumulates', async () => {
  const counts: Array<{ res: number; req: number; socket: number }> = [];
  const port = await serve((req, res) => {
    const before = { res: res.listenerCount('close'), req: req.listenerCount('aborted') };
    const watch = watchClientAbort(res, { req });
    assert.equal(res.listenerCount('close'), before.res + 1);
    assert.equal(req.listenerCount('aborted'), before.req + 1);
    watch.release();
    counts.push({ res: res.listenerCount('close') - before.res, req: req.listenerCount('aborted') - before.req, socket: req.socket.listenerCount('close') });
    res.end('ok');
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  defer(async () => agent.destroy());
  const sockets = new Set<unknown>();
  for (let i = 0; i < 30; i++) {
    await new Promise<void>((resolve, reject) => {
      const r = http.get({ host: '127.0.0.1', port, path: '/', agent }, (response) => {
        sockets.add(r.socket);
        response.resume();
        response.on('end', resolve);
      });
      r.on('error', reject);
    });
  }
  assert.equal(sockets.size, 1, 'every request rode one kept-alive socket');
  assert.equal(counts.length, 30);
  for (const c of counts) assert.deepEqual({ res: c.res, req: c.req }, { res: 0, req: 0 });
  assert.equal(counts.at(-1)!.socket, counts[0]!.socket, 'the socket listener count did not grow');
});

test('with { req }, an upload cut off mid-body aborts', async () => {
  let signal!: AbortSignal;
  const receiving = deferred<void>();
  const port = await serve((req, res) => {
    signal = watchClientAbort(res, { req }).signal;
    req.once('data', () => receiving.resolve());
  });
  const client = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', headers: { 'content-length': '1000' } });
  client.on('error', () => undefined);
  client.write('x'.repeat(10));
  await receiving.promise;
  assert.equal(signal.aborted, false);
  client.destroy();
  await abortedWithin(signal, 5000);
});

test('a response already closed unfinished before the call gives an aborted signal', async () => {
  const result = deferred<{ aborted: boolean; listeners: number }>();
  const port = await serve((_req, res) => {
    res.once('close', () => {
      const watch = watchClientAbort(res);
      watch.release();
      result.resolve({ aborted: watch.signal.aborted, listeners: res.listenerCount('close') });
    });
  });
  const client = http.get({ host: '127.0.0.1', port, path: '/' });
  client.on('error', () => undefined);
  await once(client, 'socket');
  setTimeout(() => client.destroy(), 50);
  const { aborted, listeners } = await result.promise;
  assert.equal(aborted, true);
  assert.equal(listeners, 0);
});

test('withClientAbort releases the watch when fn throws, and passes the error on', async () => {
  const seen = deferred<{ err: unknown; added: number }>();
  const port = await serve((_req, res) => {
    const baseline = res.listenerCount('close');
    withClientAbort(res, async () => {
      throw new Error('boom');
    }).then(
      () => seen.resolve({ err: undefined, added: res.listenerCount('close') - baseline }),
      (err: unknown) => seen.resolve({ err, added: res.listenerCount('close') - baseline }),
    );
    res.end();
  });
  await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
  const { err, added } = await seen.promise;
  assert.equal((err as Error).message, 'boom');
  assert.equal(added, 0);
});
