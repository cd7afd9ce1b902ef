import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { defaultConcurrency, parseRepoUrl } from '../../src/client/git-restore.js';

test('restore downloads in one stream from a server on this machine and in 8 ranges from elsewhere', () => {
  for (const url of ['http://127.0.0.1:8080', 'http://127.5.6.7', 'http://localhost:9000/', 'http://[::1]:8080']) assert.equal(defaultConcurrency(url), 1, url);
  for (const url of ['http://hoard.internal:8080', 'https://10.1.2.3', 'http://[2001:db8::1]:8080', 'not a url']) assert.equal(defaultConcurrency(url), 8, url);
});

test('repository URLs parse into host and path, with or without scheme and .git', () => {
  assert.deepEqual(parseRepoUrl('https://github.com/org/repo.git'), { host: 'github.com', repoPath: 'org/repo' });
  assert.deepEqual(parseRepoUrl('github.com/org/repo'), { host: 'github.com', repoPath: 'org/repo' });
  assert.throws(() => parseRepoUrl('https://github.com/'), /needs a host and a path/);
});

test('an invalid --concurrency is a clear error (exit 1), not a silent default', () => {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', '--url', 'http://127.0.0.1:1', 'git', 'restore', '--concurrency', 'lots', 'https://github.com/org/repo', '/tmp/hoard-never-created'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /--concurrency must be a whole number from 1 to 64, got "lots"/);
});
