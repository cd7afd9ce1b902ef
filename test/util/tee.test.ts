import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { teeInto, waitForDrain } from '../../src/util/tee.js';

// Each case would hang for ever if the tee waited for a 'drain' that never comes; the timeout
// turns such a stall into a failure.
const STALL = { timeout: 10_000 };
const CHUNK = 16 * 1024;
const chunks = (n: number) => Array.from({ length: n }, (_, i) => Buffer.alloc(CHUNK, i % 251));
const total = (list: Buffer[]) => Buffer.concat(list);

/** A stand-in for a cache writer: records what it took; each behaviour is switched on by a test. */
class RecordingWriter extends Writable {
  readonly received: Buffer[] = [];
  finalCalled = false;
  committed = false;
  /** Held write callbacks (with `hold`), released by `release()`. */
  private held: Array<() => void> = [];
  private finalGate: (() => void) | undefined;

  constructor(
    private readonly opts: {
      /** Fail the write of chunk `failAt` (0-based) with this error, as a full disk does. */
      failAt?: number;
      error?: Error;
      /** Hold every write callback until `release()` (a writer slower than the source). */
      hold?: boolean;
      /** Hold the commit until `commitNow()`. */
      holdFinal?: boolean;
      /** The commit itself fails. */
      failFinal?: boolean;
    } = {},
  ) {
    // A tiny buffer: every write reports backpressure, which is where a 'drain'-only wait hangs.
    super({ highWaterMark: 1 });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const index = this.received.length;
    this.received.push(chunk);
    if (index === this.opts.failAt) return void setImmediate(() => cb(this.opts.error ?? new Error('ENOSPC: no space left on device')));
    if (this.opts.hold) this.held.push(() => cb());
    else setImmediate(() => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finalCalled = true;
    const finish = () => {
      if (this.opts.failFinal) return cb(new Error('EIO: commit failed'));
      this.committed = true;
      cb();
    };
    if (this.opts.holdFinal) this.finalGate = finish;
    else setImmediate(finish);
  }

  /** Lets one held write complete; true when one was waiting. */
  releaseOne(): boolean {
    const next = this.held.shift();
    next?.();
    return next !== undefined;
  }

  commitNow(): void {
    this.finalGate?.();
  }

  get finalPending(): boolean {
    return this.finalGate !== undefined;
  }
}

/** Collects what the client would receive. `closeAfter`: destroy itself once that many bytes arrived. */
function clientSink(closeAfter?: number): Writable & { bytes(): Buffer } {
  const got: Buffer[] = [];
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk);
      size += chunk.length;
      cb();
      if (closeAfter !== undefined && size >= closeAfter) sink.destroy();
    },
  });
  return Object.assign(sink, { bytes: () => Buffer.concat(got) });
}

/** A source of `n` chunks produced on demand; `failAfter` errors it after that many. */
function source(n: number, failAfter?: number): Readable & { produced(): number } {
  let i = 0;
  const stream = new Readable({
    highWaterMark: CHUNK,
    read() {
      if (failAfter !== undefined && i === failAfter) return void this.destroy(new Error('upstream reset'));
      if (i === n) return void this.push(null);
      this.push(Buffer.alloc(CHUNK, i++ % 251));
    },
  });
  return Object.assign(stream, { produced: () => i });
}

const until = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
};

describe('teeInto', () => {
  test('copies every byte to both sides and commits before the output ends', STALL, async () => {
    const writer = new RecordingWriter();
    const sink = clientSink();
    const abandoned: Error[] = [];
    let committedAtEnd = false;
    sink.once('finish', () => (committedAtEnd = writer.committed));
    await pipeline(source(20), teeInto(writer, { onAbandon: (err) => abandoned.push(err) }), sink);
    assert.deepEqual(sink.bytes(), total(chunks(20)));
    assert.deepEqual(total(writer.received), total(chunks(20)));
    assert.equal(writer.committed, true);
    assert.equal(committedAtEnd, true, 'a reader that saw EOF finds the copy committed');
    assert.deepEqual(abandoned, []);
  });

  test('without a writer it is a plain pass-through', STALL, async () => {
    const sink = clientSink();
    await pipeline(source(5), teeInto(undefined), sink);
    assert.deepEqual(sink.bytes(), total(chunks(5)));
  });

  test('a writer that failed before the first chunk is dropped; the client gets the whole body', STALL, async () => {
    const writer = new RecordingWriter();
    const abandoned: Error[] = [];
    const tee = teeInto(writer, { onAbandon: (err) => abandoned.push(err) });
    writer.destroy(new Error('EACCES: cannot open the cache file'));
    const sink = clientSink();
    await pipeline(source(10), tee, sink);
    assert.deepEqual(sink.bytes(), total(chunks(10)));
    assert.equal(writer.received.length, 0);
    assert.equal(writer.finalCalled, false, 'nothing is committed');
    assert.equal(abandoned.length, 1);
    assert.match(abandoned[0]?.message ?? '', /EACCES/);
  });

  test('a writer failing mid-stream while backpressured (disk full) never stalls the client', STALL, async () => {
    const writer = new RecordingWriter({ failAt: 3 });
    const abandoned: Error[] = [];
    const sink = clientSink();
    await pipeline(source(20), teeInto(writer, { onAbandon: (err) => abandoned.push(err) }), sink);
    assert.deepEqual(sink.bytes(), total(chunks(20)));
    assert.equal(writer.received.length, 4, 'no write after the failure');
    assert.equal(writer.finalCalled, false, 'a partial copy is never committed');
    assert.equal(writer.destroyed, true);
    assert.equal(abandoned.length, 1, 'logged once');
    assert.match(abandoned[0]?.message ?? '', /ENOSPC/);
  });

  test('a writer destroyed without an error while backpressured never stalls the client', STALL, async () => {
    const writer = new RecordingWriter({ hold: true });
    const abandoned: Error[] = [];
    const sink = clientSink();
    const done = pipeline(source(20), teeInto(writer, { onAbandon: (err) => abandoned.push(err) }), sink);
    await until(() => writer.received.length === 1);
    writer.releaseOne();
    await until(() => writer.received.length === 2);
    // The second write is still pending: this writer will never drain.
    writer.destroy();
    await done;
    assert.deepEqual(sink.bytes(), total(chunks(20)));
    assert.equal(writer.finalCalled, false);
    assert.equal(abandoned.length, 1);
  });

  test('a slow writer slows the copy down (bounded memory) and still gets every byte', STALL, async () => {
    const writer = new RecordingWriter({ hold: true });
    const src = source(64);
    const sink = clientSink();
    const done = pipeline(src, teeInto(writer, { highWaterMark: CHUNK }), sink);
    let maxAhead = 0;
    for (;;) {
      await until(() => writer.releaseOne() || writer.finalCalled);
      maxAhead = Math.max(maxAhead, src.produced() - writer.received.length);
      if (writer.finalCalled) break;
    }
    await done;
    assert.deepEqual(total(writer.received), total(chunks(64)));
    assert.deepEqual(sink.bytes(), total(chunks(64)));
    assert.equal(writer.committed, true);
    // The source, the tee and the writer each buffer a chunk or two; never the whole body.
    assert.ok(maxAhead <= 8, `the source ran ${maxAhead} chunks ahead of a stalled writer`);
  });

  test('a client that goes away mid-stream discards the copy and stops the source', STALL, async () => {
    const writer = new RecordingWriter();
    const abandoned: Error[] = [];
    const src = source(10_000);
    await assert.rejects(pipeline(src, teeInto(writer, { onAbandon: (err) => abandoned.push(err) }), clientSink(3 * CHUNK)));
    assert.equal(writer.finalCalled, false, 'a partial copy is never committed');
    assert.equal(writer.destroyed, true);
    assert.equal(src.destroyed, true);
    assert.ok(src.produced() < 100);
    assert.deepEqual(abandoned, [], 'discarding on purpose is not a cache failure');
  });

  test('a client erroring mid-stream discards the copy', STALL, async () => {
    const writer = new RecordingWriter();
    const sink = new Writable({ write: (_c, _e, cb) => cb(new Error('EPIPE')) });
    await assert.rejects(pipeline(source(10), teeInto(writer), sink), /EPIPE/);
    assert.equal(writer.finalCalled, false);
    assert.equal(writer.destroyed, true);
  });

  test('a client that closes right after the last byte does not cancel the commit', STALL, async () => {
    const writer = new RecordingWriter({ holdFinal: true });
    const sink = clientSink(10 * CHUNK);
    const done = pipeline(source(10), teeInto(writer), sink);
    await assert.rejects(done);
    assert.equal(sink.bytes().length, 10 * CHUNK);
    await until(() => writer.finalPending);
    assert.equal(writer.destroyed, false, 'the fill belongs to the body, not to the client');
    writer.commitNow();
    await once(writer, 'finish');
    assert.equal(writer.committed, true);
  });

  test('a source failing mid-stream discards the copy and fails the output', STALL, async () => {
    const writer = new RecordingWriter();
    const sink = clientSink();
    await assert.rejects(pipeline(source(10, 4), teeInto(writer), sink), /upstream reset/);
    assert.equal(writer.finalCalled, false);
    assert.equal(writer.destroyed, true);
  });

  test('beforeCommit gates the commit: a rejection discards the copy and fails the output', STALL, async () => {
    const writer = new RecordingWriter();
    const sink = clientSink();
    const tee = teeInto(writer, { beforeCommit: () => Promise.reject(new Error('zstd exited with 1')) });
    await assert.rejects(pipeline(source(5), tee, sink), /zstd exited/);
    assert.equal(writer.finalCalled, false);
    assert.equal(writer.destroyed, true);
  });

  test('a failing commit costs only the copy: the output ends cleanly and the failure is reported once', STALL, async () => {
    const writer = new RecordingWriter({ failFinal: true });
    const abandoned: Error[] = [];
    const sink = clientSink();
    await pipeline(source(5), teeInto(writer, { onAbandon: (err) => abandoned.push(err) }), sink);
    assert.deepEqual(sink.bytes(), total(chunks(5)));
    assert.equal(abandoned.length, 1);
    assert.match(abandoned[0]?.message ?? '', /EIO/);
  });
});

describe('waitForDrain', () => {
  test('resolves on drain, close or error, and leaves no listener behind', STALL, async () => {
    for (const outcome of ['drain', 'close', 'error'] as const) {
      const writer = new RecordingWriter({ hold: true });
      writer.on('error', () => undefined);
      assert.equal(writer.write(Buffer.alloc(8)), false);
      const listeners = () => writer.listenerCount('drain') + writer.listenerCount('close') + writer.listenerCount('error');
      const before = listeners();
      const waiting = waitForDrain(writer);
      if (outcome === 'drain') writer.releaseOne();
      else if (outcome === 'close') writer.destroy();
      else writer.destroy(new Error('EIO'));
      await waiting;
      assert.equal(listeners(), before, outcome);
    }
  });

  test('resolves at once for a stream that needs no drain or is gone', STALL, async () => {
    const writer = new RecordingWriter();
    await waitForDrain(writer);
    writer.destroy();
    await waitForDrain(writer);
  });
});
