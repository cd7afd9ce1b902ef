import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { pino } from 'pino';
import { Scheduler } from '../../src/jobs/scheduler.js';

const logger = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Records how many jobs run at once, overall and per tag. */
function tracker() {
  let now = 0;
  let peak = 0;
  const perTag = new Map<string, { now: number; peak: number }>();
  return {
    job(tag: string, ms: number) {
      return async () => {
        now++;
        peak = Math.max(peak, now);
        const t = perTag.get(tag) ?? { now: 0, peak: 0 };
        t.now++;
        t.peak = Math.max(t.peak, t.now);
        perTag.set(tag, t);
        await sleep(ms);
        t.now--;
        now--;
      };
    },
    get peak() {
      return peak;
    },
    peakOf(tag: string) {
      return perTag.get(tag)?.peak ?? 0;
    },
  };
}

describe('Scheduler', () => {
  test('jobs on one queue run serially, in submission order', async () => {
    const s = new Scheduler({ concurrency: 4, maxCloneConcurrency: 0, logger });
    const order: number[] = [];
    const t = tracker();
    await Promise.all(
      [1, 2, 3].map((n) =>
        s.submit('repo-a', `job${n}`, async () => {
          await t.job('a', 10)();
          order.push(n);
        }),
      ),
    );
    assert.deepEqual(order, [1, 2, 3]);
    assert.equal(t.peak, 1);
    await s.drain();
  });

  test('global concurrency and clone caps hold', async () => {
    const s = new Scheduler({ concurrency: 3, maxCloneConcurrency: 1, logger });
    const t = tracker();
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) jobs.push(s.submit(`clone-${i}`, `clone${i}`, t.job('clone', 15), { clone: true }));
    for (let i = 0; i < 6; i++) jobs.push(s.submit(`fetch-${i}`, `fetch${i}`, t.job('fetch', 15)));
    await Promise.all(jobs);
    assert.equal(t.peakOf('clone'), 1, 'clone cap');
    assert.ok(t.peak <= 3, `global cap (peak ${t.peak})`);
    assert.ok(t.peakOf('fetch') >= 2, 'fetches are not starved by clones');
    await s.drain();
  });

  test('a failing job rejects its submitter and does not block its queue', async () => {
    const s = new Scheduler({ concurrency: 1, maxCloneConcurrency: 0, logger });
    await assert.rejects(s.submit('q', 'bad', async () => { throw new Error('boom'); }), /boom/);
    let ran = false;
    await s.submit('q', 'good', async () => { ran = true; });
    assert.ok(ran);
    await s.drain();
  });

  test('periodic jobs re-arm, and drain stops them and rejects new work', async () => {
    const s = new Scheduler({ concurrency: 2, maxCloneConcurrency: 0, logger });
    let runs = 0;
    s.periodic('repo', 'tick', 10, async () => { runs++; });
    await sleep(80);
    assert.ok(runs >= 3, `periodic ran ${runs} times`);
    await s.drain();
    const after = runs;
    await sleep(40);
    assert.equal(runs, after, 'no runs after drain');
    await assert.rejects(s.submit('q', 'late', async () => {}), /shutting down/);
  });

  test('drain waits for running work, then aborts what outlives the timeout', async () => {
    const s = new Scheduler({ concurrency: 2, maxCloneConcurrency: 0, logger });
    let finished = false;
    const quick = s.submit('a', 'quick', async () => { await sleep(20); finished = true; });
    let aborted = false;
    const slow = s.submit('b', 'slow', (signal) =>
      new Promise<void>((resolve) => signal.addEventListener('abort', () => { aborted = true; resolve(); }, { once: true })),
    );
    const started = Date.now();
    await s.drain(100);
    await Promise.all([quick, slow]);
    assert.ok(finished, 'running job completed during drain');
    assert.ok(aborted, 'job past the drain timeout saw its signal abort');
    assert.ok(Date.now() - started < 1000);
  });

  test('concurrency 0 uses every CPU this process may use', async () => {
    // Stubbed so the test means something on a 2-core machine too (the old fallback was 2).
    const real = os.availableParallelism;
    os.availableParallelism = () => 5;
    let s: Scheduler;
    try {
      s = new Scheduler({ concurrency: 0, maxCloneConcurrency: 0, logger });
    } finally {
      os.availableParallelism = real;
    }
    assert.equal(s.workerCount, 5);
    const t = tracker();
    await Promise.all(Array.from({ length: 8 }, (_, i) => s.submit(`q${i}`, `j${i}`, t.job('any', 30))));
    assert.equal(t.peak, 5);
    await s.drain();
  });

  test('max-clone-concurrency 0 caps clones at half the workers (at least 1), none with one worker', async () => {
    assert.equal(new Scheduler({ concurrency: 4, maxCloneConcurrency: 0, logger }).cloneLimit, 2);
    assert.equal(new Scheduler({ concurrency: 3, maxCloneConcurrency: 0, logger }).cloneLimit, 1);
    assert.equal(new Scheduler({ concurrency: 1, maxCloneConcurrency: 0, logger }).cloneLimit, Infinity);
    assert.equal(new Scheduler({ concurrency: 4, maxCloneConcurrency: 3, logger }).cloneLimit, 3);
    const s = new Scheduler({ concurrency: 4, maxCloneConcurrency: 0, logger });
    const t = tracker();
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) jobs.push(s.submit(`clone-${i}`, `clone${i}`, t.job('clone', 20), { clone: true }));
    for (let i = 0; i < 4; i++) jobs.push(s.submit(`fetch-${i}`, `fetch${i}`, t.job('fetch', 20)));
    await Promise.all(jobs);
    assert.equal(t.peakOf('clone'), 2);
    assert.ok(t.peakOf('fetch') >= 2, 'fetches keep running beside the clones');
    await s.drain();
  });
});
