import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { InFlight, SingleFlight, abandonable } from '../../src/util/single-flight.js';

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

test('a finished run has left its slot before any caller resumes', async () => {
  const flights = new SingleFlight<string>();
  const seen = await flights.run('k', async () => 'v').then(() => flights.has('k'));
  assert.equal(seen, false);
});

test('InFlight: callers share the live value at once, before its work ends; the slot frees when the lifetime settles', async () => {
  const live = new InFlight<{ id: number }>();
  const ends = deferred<void>();
  let starts = 0;
  const start = () => ({ id: ++starts });
  const first = live.join('repo', start, () => ends.promise);
  const second = live.join('repo', start, () => ends.promise);
  assert.equal(second, first, 'the follower got the same value synchronously');
  assert.equal(starts, 1);
  assert.equal(live.get('repo'), first);
  assert.deepEqual(live.values(), [first]);
  assert.notEqual(live.join('other', start, () => ends.promise), first);
  ends.resolve();
  await ends.promise;
  assert.equal(live.has('repo'), false);
  assert.equal(live.size, 0);
  assert.equal(live.join('repo', start, () => new Promise(() => undefined)).id, 3, 'a later caller starts anew');
});

test('InFlight: a rejected or throwing lifetime frees the slot too, without an unhandled rejection', async () => {
  const live = new InFlight<string>();
  const ends = deferred<void>();
  live.join('a', () => 'x', () => ends.promise);
  ends.reject(new Error('recording failed'));
  await ends.promise.catch(() => undefined);
  assert.equal(live.has('a'), false);
  live.join('b', () => 'y', () => {
    throw new Error('no lifetime');
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(live.has('b'), false);
});

test('InFlight: a start that throws leaves no slot behind', () => {
  const live = new InFlight<string>();
  assert.throws(() => live.join('k', () => {
    throw new Error('no scratch space');
  }, () => Promise.resolve()), /no scratch space/);
  assert.equal(live.has('k'), false);
});

test('InFlight: a value started after the last one ended is held until its own lifetime ends', async () => {
  const live = new InFlight<string>();
  const oldEnds = deferred<void>();
  live.join('k', () => 'old', () => oldEnds.promise);
  oldEnds.resolve();
  await oldEnds.promise;
  const newEnds = deferred<void>();
  assert.equal(live.join('k', () => 'new', () => newEnds.promise), 'new');
  await new Promise((r) => setImmediate(r));
  assert.equal(live.get('k'), 'new');
  newEnds.resolve();
  await newEnds.promise;
  assert.equal(live.has('k'), false);
});

test('InFlight: released runs once the slot is free (clean-up never meets a newcomer), on success and failure', async () => {
  const live = new InFlight<string>();
  const seen: Array<[string, boolean]> = [];
  const released = (v: string) => seen.push([v, live.has('k')]);
  const ok = deferred<void>();
  live.join('k', () => 'first', () => ok.promise, released);
  assert.deepEqual(seen, []);
  ok.resolve();
  await ok.promise;
  const bad = deferred<void>();
  live.join('k', () => 'second', () => bad.promise, released);
  bad.reject(new Error('failed'));
  await bad.promise.catch(() => undefined);
  assert.deepEqual(seen, [['first', false], ['second', false]]);
});
