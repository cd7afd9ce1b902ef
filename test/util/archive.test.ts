import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createWriteStream, createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { ExtractError, createArchive, extractArchive } from '../../src/util/archive.js';
import { mountSmallDisk } from '../fixtures/small-disk.js';

/** Runs `promise`, which must fail with an ExtractError; returns it. */
async function extractFailure(promise: Promise<void>): Promise<ExtractError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ExtractError, `expected an ExtractError, got ${String(err)}`);
    return err;
  }
  assert.fail('extraction succeeded');
}

describe('archives', async () => {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-archive-'));
  after(async () => {
    // Read-only directories left by the tests must be writable again before removal.
    spawnSync('chmod', ['-R', 'u+w', work]);
    await fs.rm(work, { recursive: true, force: true });
  });
  const src = path.join(work, 'src');
  await fs.mkdir(path.join(src, 'tree', 'sub'), { recursive: true });
  await fs.writeFile(path.join(src, 'tree', 'sub', 'f.txt'), 'payload');
  await fs.writeFile(path.join(src, 'tree', 'drop.tmp'), 'x');

  test('output is readable by zstd -d | tar -x, excludes applied', async () => {
    const file = path.join(work, 'a.tar.zst');
    const { stream, done } = createArchive(src, ['tree'], { exclude: ['*.tmp'], threads: 1 });
    await Promise.all([pipeline(stream, createWriteStream(file)), done]);
    const out = path.join(work, 'plain');
    await fs.mkdir(out);
    const r = spawnSync('sh', ['-c', `zstd -dc "${file}" | tar -xf - -C "${out}"`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(await fs.readFile(path.join(out, 'tree', 'sub', 'f.txt'), 'utf8'), 'payload');
    await assert.rejects(fs.stat(path.join(out, 'tree', 'drop.tmp')));
  });

  test('a failing tar rejects with the tool stderr', async () => {
    const { stream, done } = createArchive(src, ['no-such-path'], { threads: 1 });
    stream.resume();
    stream.on('error', () => undefined);
    await assert.rejects(done, /archiving .* failed: .*no-such-path/s);
  });

  test('extract creates the directory and relaxes read-only directories', async () => {
    const file = path.join(work, 'b.tar.zst');
    const { stream, done } = createArchive(src, ['tree'], { threads: 1 });
    await Promise.all([pipeline(stream, createWriteStream(file)), done]);
    const dest = path.join(work, 'dest', 'deeper');
    await extractArchive(createReadStream(file), dest);
    assert.equal(await fs.readFile(path.join(dest, 'tree', 'sub', 'f.txt'), 'utf8'), 'payload');
    await fs.chmod(path.join(dest, 'tree', 'sub'), 0o555);
    await extractArchive(createReadStream(file), dest);
    assert.equal(await fs.readFile(path.join(dest, 'tree', 'sub', 'f.txt'), 'utf8'), 'payload');
  });

  test('falls back to zstd -T when pzstd is not on PATH', async () => {
    // A PATH holding only tar and zstd (plus the shell tar may need), in a child so the tool cache is fresh.
    const bin = path.join(work, 'bin');
    await fs.mkdir(bin);
    for (const tool of ['tar', 'zstd', 'sh']) {
      const where = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      await fs.symlink(where, path.join(bin, tool));
    }
    const file = path.join(work, 'c.tar.zst');
    const script = `
      import { createWriteStream } from 'node:fs';
      import { pipeline } from 'node:stream/promises';
      import { createArchive } from ${JSON.stringify(path.resolve('src/util/archive.ts'))};
      const { stream, done } = createArchive(${JSON.stringify(src)}, ['tree'], { threads: 1 });
      await Promise.all([pipeline(stream, createWriteStream(${JSON.stringify(file)})), done]);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, PATH: bin },
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const listing = spawnSync('tar', ['--zstd', '-tf', file], { encoding: 'utf8' });
    assert.equal(listing.status, 0, listing.stderr);
    assert.match(listing.stdout, /tree\/sub\/f\.txt/);
  });

  test('tar exiting before zstd closes its output is not a failure (and a truncated archive still is)', async () => {
    // A zstd that holds its stdout open after the real one finishes: tar reads the end-of-archive
    // record and exits first, which is the order that made busy CI machines fail restores.
    const file = path.join(work, 'slow.tar.zst');
    const made = createArchive(src, ['tree'], { threads: 1 });
    await Promise.all([pipeline(made.stream, createWriteStream(file)), made.done]);
    const bin = path.join(work, 'slow-bin');
    await fs.mkdir(bin);
    const realZstd = spawnSync('sh', ['-c', 'command -v zstd'], { encoding: 'utf8' }).stdout.trim();
    await fs.writeFile(path.join(bin, 'zstd'), `#!/bin/sh\n"${realZstd}" "$@" || exit $?\nsleep 0.5\n`, { mode: 0o755 });
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}${path.delimiter}${savedPath}`;
    try {
      const dest = path.join(work, 'slow-dest');
      await extractArchive(createReadStream(file), dest);
      assert.equal(await fs.readFile(path.join(dest, 'tree', 'sub', 'f.txt'), 'utf8'), 'payload');

      const whole = await fs.readFile(file);
      const truncated = path.join(work, 'truncated.tar.zst');
      await fs.writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
      await assert.rejects(extractArchive(createReadStream(truncated), path.join(work, 'truncated-dest')), /extracting into .* failed/);
    } finally {
      process.env.PATH = savedPath;
    }
  });

  describe('a failed extraction names the side that failed, and whether the archive is to blame', () => {
    const archiveOf = async (name: string, dir: string, paths: string[]) => {
      const file = path.join(work, name);
      const made = createArchive(dir, paths, { threads: 1 });
      await Promise.all([pipeline(made.stream, createWriteStream(file)), made.done]);
      return file;
    };

    test('reader: the source stream errors mid-way → not corrupt', async () => {
      const file = await archiveOf('reader.tar.zst', src, ['tree']);
      const whole = await fs.readFile(file);
      async function* cut() {
        yield whole.subarray(0, Math.floor(whole.length / 2));
        throw new Error('connection reset by the cache');
      }
      const err = await extractFailure(extractArchive(Readable.from(cut()), path.join(work, 'reader-dest')));
      assert.equal(err.side, 'reader');
      assert.equal(err.corrupt, false);
      assert.match(err.message, /reading the archive failed: connection reset by the cache/);
    });

    test('zstd: bytes that are no zstd frame → corrupt', async () => {
      const err = await extractFailure(extractArchive(Readable.from([Buffer.from('not zstd at all, not even close')]), path.join(work, 'zstd-dest')));
      assert.equal(err.side, 'zstd');
      assert.equal(err.corrupt, true);
      assert.match(err.message, /zstd rejected the archive/);
    });

    test('tar: a valid zstd frame of bytes that are no tar archive → corrupt', async () => {
      const r = spawnSync('zstd', ['-q', '-c'], { input: Buffer.alloc(64 * 1024, 'x') });
      assert.equal(r.status, 0);
      const err = await extractFailure(extractArchive(Readable.from([r.stdout]), path.join(work, 'tar-dest')));
      assert.equal(err.side, 'tar');
      assert.equal(err.corrupt, true);
      assert.match(err.message, /tar rejected the archive/);
    });

    test('disk: a full filesystem under tar → not corrupt', async (t) => {
      const disk = await mountSmallDisk(2);
      if ('unavailable' in disk) return t.skip(disk.unavailable);
      try {
        const big = path.join(work, 'big');
        await fs.mkdir(big, { recursive: true });
        // Incompressible, so the archive is small to read but 4 MiB to write.
        await fs.writeFile(path.join(big, 'blob'), (await import('node:crypto')).randomBytes(4 << 20));
        const file = await archiveOf('big.tar.zst', big, ['.']);
        const err = await extractFailure(extractArchive(createReadStream(file), path.join(disk.dir, 'dest')));
        assert.equal(err.side, 'disk', err.message);
        assert.equal(err.corrupt, false);
        assert.match(err.message, /writing to disk failed: .*No space left/s);
      } finally {
        await disk.close();
      }
    });

    test('cancelled: an abort mid-extraction → not corrupt', async () => {
      const controller = new AbortController();
      const never = new Readable({ read() {} });
      const extracting = extractFailure(extractArchive(never, path.join(work, 'abort-dest'), { signal: controller.signal }));
      setTimeout(() => controller.abort(), 50);
      const err = await extracting;
      assert.equal(err.side, 'cancelled');
      assert.equal(err.corrupt, false);
    });
  });

  test('corrupt input fails extraction with a clear error', async () => {
    const bad = path.join(work, 'bad.tar.zst');
    await fs.writeFile(bad, 'not zstd at all');
    await assert.rejects(extractArchive(createReadStream(bad), path.join(work, 'bad-dest')), /extracting into .* failed/);
  });
});
