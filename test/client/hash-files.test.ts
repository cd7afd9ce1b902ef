import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { goPlatform, hashFiles, keyPrefix } from '../../src/client/hash-files.js';

describe('hashFiles', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-hash-'));
  after(() => fs.rm(dir, { recursive: true, force: true }));
  await fs.mkdir(path.join(dir, 'a/b'), { recursive: true });
  await fs.writeFile(path.join(dir, 'a/b/x.lock'), 'one');
  await fs.writeFile(path.join(dir, 'y.lock'), 'two');
  await fs.symlink('y.lock', path.join(dir, 'link.lock'));

  test('is SHA-256 over sorted path\\0contents\\0 of regular files only', async () => {
    const expected = createHash('sha256').update('a/b/x.lock\0one\0y.lock\0two\0').digest('hex');
    assert.equal(await hashFiles(['**/*.lock'], dir), expected);
  });

  test('pattern order does not matter; content changes the key', async () => {
    const a = await hashFiles(['y.lock', 'a/**'], dir);
    assert.equal(a, await hashFiles(['a/**', 'y.lock'], dir));
    await fs.writeFile(path.join(dir, 'y.lock'), 'three');
    assert.notEqual(a, await hashFiles(['y.lock', 'a/**'], dir));
  });

  test('zero matches and no patterns are errors', async () => {
    await assert.rejects(hashFiles(['nothing-*.txt'], dir), /no files match/);
    await assert.rejects(hashFiles([], dir), /no file patterns/);
  });
});

describe('keyPrefix', () => {
  const now = new Date(2024, 0, 5, 7, 30);
  test('daily and hourly prefixes in local time', () => {
    assert.equal(keyPrefix({}, now), '');
    assert.equal(keyPrefix({ daily: true }, now), '2024-01-05-');
    assert.equal(keyPrefix({ hourly: true }, now), '2024-01-05-07-');
  });

  test('the date is outermost, then the platform in Go GOOS-GOARCH names (cachew §6.2)', () => {
    assert.equal(keyPrefix({ platform: true }, now, 'linux-amd64'), 'linux-amd64-');
    assert.equal(keyPrefix({ platform: true, daily: true }, now, 'linux-amd64'), '2024-01-05-linux-amd64-');
    assert.equal(keyPrefix({ platform: true, hourly: true }, now, 'darwin-arm64'), '2024-01-05-07-darwin-arm64-');
    // The default platform is this machine's, in Go spelling.
    assert.equal(keyPrefix({ platform: true }, now), `${goPlatform()}-`);
    assert.match(goPlatform(), /^[a-z0-9]+-[a-z0-9]+$/);
  });

  test('Node platform and arch names map to Go names', () => {
    assert.equal(goPlatform('linux', 'x64'), 'linux-amd64');
    assert.equal(goPlatform('darwin', 'arm64'), 'darwin-arm64');
    assert.equal(goPlatform('win32', 'ia32'), 'windows-386');
    assert.equal(goPlatform('linux', 'arm'), 'linux-arm');
    assert.equal(goPlatform('linux', 'ppc64'), 'linux-ppc64le');
    assert.equal(goPlatform('linux', 'mipsel'), 'linux-mipsle');
    assert.equal(goPlatform('freebsd', 'riscv64'), 'freebsd-riscv64');
    assert.equal(goPlatform('linux', 's390x'), 'linux-s390x');
  });
});
