import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { removeScratch, scratchPath, withScratchDir, withScratchPath } from '../../src/util/scratch.js';
import { fileCleanups } from '../fixtures/cleanups.js';

const { tempDir } = fileCleanups('hoard-scratch-test-');

const exists = (p: string) => fs.stat(p).then(() => true, () => false);

/**
 * Makes removing anything under `root` fail: the root (and all in it) is replaced by a plain file,
 * so `rm <root>/<name>` answers ENOTDIR (force only forgives a missing path).
 */
async function breakRemovalUnder(root: string): Promise<void> {
  await fs.rm(root, { recursive: true, force: true });
  await fs.writeFile(root, 'not a directory');
}

test('scratchPath: fresh names under the root, with prefix and extension, nothing created', async () => {
  const root = await tempDir();
  const names = new Set(Array.from({ length: 200 }, () => scratchPath(root, 'spool-', '.bin')));
  assert.equal(names.size, 200);
  for (const name of names) {
    assert.equal(path.dirname(name), root);
    assert.match(path.basename(name), /^spool-[0-9a-f]{12}\.bin$/);
  }
  assert.deepEqual(await fs.readdir(root), []);
  assert.match(path.basename(scratchPath(root)), /^[0-9a-f]{12}$/);
});

test('withScratchDir: a new empty directory (root created), removed after success', async () => {
  const root = path.join(await tempDir(), 'not', 'yet');
  let seen = '';
  const result = await withScratchDir(root, 'work-', async (dir) => {
    seen = dir;
    assert.equal(path.dirname(dir), root);
    assert.ok(path.basename(dir).startsWith('work-'));
    assert.deepEqual(await fs.readdir(dir), []);
    await fs.mkdir(path.join(dir, 'a', 'b'), { recursive: true });
    await fs.writeFile(path.join(dir, 'a', 'b', 'f'), 'x');
    return 42;
  });
  assert.equal(result, 42);
  assert.equal(await exists(seen), false);
  assert.deepEqual(await fs.readdir(root), []);
});

test('withScratchDir: two concurrent calls get different directories', async () => {
  const root = await tempDir();
  const dirs = await Promise.all([1, 2, 3].map(() => withScratchDir(root, 'same-', async (dir) => dir)));
  assert.equal(new Set(dirs).size, 3);
  assert.deepEqual(await fs.readdir(root), []);
});

test('withScratchDir: fn throws → the directory is gone and fn\'s error comes out', async () => {
  const root = await tempDir();
  let seen = '';
  const boom = new Error('boom');
  await assert.rejects(
    withScratchDir(root, 'fail-', async (dir) => {
      seen = dir;
      await fs.writeFile(path.join(dir, 'partial'), 'x');
      throw boom;
    }),
    (err) => err === boom,
  );
  assert.equal(await exists(seen), false);
});

test('withScratchDir: fn gives up on an abort → the directory is gone', async () => {
  const root = await tempDir();
  const controller = new AbortController();
  let seen = '';
  const running = withScratchDir(root, 'abort-', async (dir) => {
    seen = dir;
    await fs.writeFile(path.join(dir, 'partial'), 'x');
    await new Promise((_resolve, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true }));
  });
  setTimeout(() => controller.abort(), 10);
  await assert.rejects(running, { name: 'AbortError' });
  assert.equal(await exists(seen), false);
});

test('withScratchDir: a failed removal does not mask fn\'s error', async () => {
  const root = await tempDir();
  const original = new Error('the real failure');
  await assert.rejects(
    withScratchDir(root, 'mask-', async () => {
      await breakRemovalUnder(root);
      throw original;
    }),
    (err) => err === original,
  );
});

test('withScratchDir: after a success, a failed removal is reported, not swallowed', async () => {
  const root = await tempDir();
  await assert.rejects(
    withScratchDir(root, 'leak-', async () => {
      await breakRemovalUnder(root);
      return 'fine';
    }),
    { code: 'ENOTDIR' },
  );
});

test('withScratchPath: removes the file fn wrote, on success and on a throw', async () => {
  const root = await tempDir();
  let seen = '';
  const size = await withScratchPath(root, 'bundle-', '.bundle', async (file) => {
    seen = file;
    assert.equal(await exists(file), false, 'nothing is created up front');
    await fs.writeFile(file, 'abc');
    return (await fs.stat(file)).size;
  });
  assert.equal(size, 3);
  assert.equal(await exists(seen), false);
  await assert.rejects(
    withScratchPath(root, 'bundle-', '.bundle', async (file) => {
      seen = file;
      await fs.mkdir(path.join(file, 'nested'), { recursive: true });
      throw new Error('later step failed');
    }),
    /later step failed/,
  );
  assert.equal(await exists(seen), false);
  // fn that never wrote anything: removal of a missing path is no error.
  assert.equal(await withScratchPath(root, 'none-', '', async () => 'ok'), 'ok');
  assert.deepEqual(await fs.readdir(root), []);
});

test('withScratchPath: a failed removal does not mask fn\'s error', async () => {
  const root = await tempDir();
  const original = new Error('download failed');
  await assert.rejects(
    withScratchPath(root, 'x-', '.tmp', async () => {
      await breakRemovalUnder(root);
      throw original;
    }),
    (err) => err === original,
  );
});

test('removeScratch: removes trees and files, a missing path is fine, other failures throw', async () => {
  const root = await tempDir();
  await fs.mkdir(path.join(root, 't', 'u'), { recursive: true });
  await fs.writeFile(path.join(root, 'f'), 'x');
  await removeScratch(path.join(root, 't'));
  await removeScratch(path.join(root, 'f'));
  await removeScratch(path.join(root, 'missing'));
  assert.deepEqual(await fs.readdir(root), []);
  await fs.writeFile(path.join(root, 'file'), 'x');
  await assert.rejects(removeScratch(path.join(root, 'file', 'below')), { code: 'ENOTDIR' });
});
