import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { SingleFlight, abandonable } from '../../src/util/single-flight.js';

/** A promise and the functions that settle it, so a test decides when a run ends. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('concurrent callers of one key share one run; other keys run on their own', async () => {
  const flights = new SingleFlight<string>();
  let runs = 0;
  const gate = deferred<string>();
  const work = () => {
    runs++;
    return gate.promise;
  };
  const a = flights.run('k', work);
  const b = flights.run('k', work);
  const other = flights.run('other', async () => 'x');
  assert.equal(runs, 1);
  assert.equal(flights.has('k'), true);
  assert.equal(flights.current('k') !== undefined, true);
  gate.resolve('v');
  assert.deepEqual(await Promise.all([a, b, other]), ['v', 'v', 'x']);
  assert.equal(flights.size, 0);
  assert.equal(flights.has('k'), false);
  assert.equal(flights.current('k'), undefined);
});

test('a rejected run is not cached: every waiter sees the error, the next call runs again', async () => {
  const flights = new SingleFlight<number>();
  const gate = deferred<number>();
  const a = flights.run('k', () => gate.promise);
  const b = flights.run('k', () => gate.promise);
  gate.reject(new Error('upstream down'));
  await assert.rejects(a, /upstream down/);
  await assert.rejects(b, /upstream down/);
  assert.equal(flights.size, 0);
  assert.equal(await flights.run('k', async () => 7), 7);
});

test("one caller's abort ends only its own wait: the shared run and the other callers go on", async () => {
  const flights = new SingleFlight<string>();
  const gate = deferred<string>();
  const controller = new AbortController();
  const leaving = flights.run('k', () => gate.promise, controller.signal);
  const staying = flights.run('k', () => gate.promise);
  controller.abort(new Error('client went away'));
  await assert.rejects(leaving, /client went away/);
  assert.equal(flights.has('k'), true, 'the run goes on after a caller left');
  gate.resolve('done');
  assert.equal(await staying, 'done');
});

test('an already aborted signal rejects at once; abandonable removes its listener when the promise settles', async () => {
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(abandonable(new Promise(() => undefined), controller.signal));
  const live = new AbortController();
  for (let i = 0; i < 50; i++) await abandonable(Promise.resolve(i), live.signal);
  // No listener piles up on a long-lived signal (Node warns past 10 listeners; none are left).
  assert.equal(EventEmitter.getEventListeners(live.signal, 'abort').length, 0);
});

test('idle waits for every run, including one started meanwhile, and never rejects', async () => {
  const flights = new SingleFlight<void>();
  const first = deferred<void>();
  const second = deferred<void>();
  void flights.run('a', () => first.promise).catch(() => undefined);
  let idle = false;
  const waiting = flights.idle().then(() => (idle = true));
  void flights.run('b', () => second.promise);
  first.reject(new Error('failed'));
  await new Promise((r) => setImmediate(r));
  assert.equal(idle, false, 'b is still running');
  second.resolve();
  await waiting;
  assert.equal(flights.size, 0);
});
