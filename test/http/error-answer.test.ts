import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CacheError } from '../../src/cache/errors.js';
import { failureAnswer, isOutOfSpace, withoutServerPaths } from '../../src/http/error-answer.js';
import { ChildProcessError } from '../../src/util/process.js';

test('withoutServerPaths removes filesystem paths and keeps URLs', () => {
  const text = "fatal: cannot copy '/usr/share/git-core/templates/description' to '/state/git-mirrors/.scratch/x/repo/.git/description': No space left on device; mirror of https://github.com/org/repo (at /state/m) http://127.0.0.1:80/a/b";
  assert.equal(
    withoutServerPaths(text),
    "fatal: cannot copy '<path>' to '<path>': No space left on device; mirror of https://github.com/org/repo (at <path>) http://127.0.0.1:80/a/b",
  );
  assert.equal(withoutServerPaths('/tmp/x failed'), '<path> failed');
});

test('failureAnswer: full disk 507, cache outcomes keep their status, the rest 500 without detail', () => {
  const git = new ChildProcessError("git exited with code 128: fatal: could not write '/state/x'", 128, "error: copy-fd: write returned: No space left on device\nfatal: '/state/x'", undefined);
  assert.equal(isOutOfSpace(git), true);
  const full = failureAnswer(new Error('spool failed', { cause: git }), 'snapshot generation');
  assert.equal(full.status, 507);
  assert.doesNotMatch(full.message, /\/state/);
  assert.equal(failureAnswer(Object.assign(new Error("ENOSPC: no space left on device, write '/state/y'"), { code: 'ENOSPC' }), 'x').status, 507);
  const down = failureAnswer(new CacheError('unavailable', 'cache tier s3 (bucket b) unavailable: GET index: connect ECONNREFUSED'), 'snapshot read');
  assert.deepEqual(down, { status: 503, message: 'snapshot read failed: cache tier s3 (bucket b) unavailable: GET index: connect ECONNREFUSED' });
  const other = failureAnswer(new Error("EACCES: permission denied, open '/state/z'"), 'cache lookup');
  assert.equal(other.status, 500);
  assert.doesNotMatch(other.message, /\/state/);
});
