import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createWriteStream, createReadStream, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createArchive, extractArchive } from '../../src/client/archive.js';

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
      import { createArchive } from ${JSON.stringify(path.resolve('src/client/archive.ts'))};
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

  test('corrupt input fails extraction with a clear error', async () => {
    const bad = path.join(work, 'bad.tar.zst');
    await fs.writeFile(bad, 'not zstd at all');
    await assert.rejects(extractArchive(createReadStream(bad), path.join(work, 'bad-dest')), /extracting into .* failed/);
  });
});
