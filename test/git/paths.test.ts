import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidGitPathError, parseGitPath } from '../../src/strategies/git/paths.js';

describe('parseGitPath', () => {
  test('splits host, repository and operation', () => {
    assert.deepEqual(parseGitPath('github.com/org/repo.git/info/refs'), { host: 'github.com', repoPath: 'org/repo', operation: 'info/refs', rawPath: 'org/repo.git/info/refs' });
    assert.deepEqual(parseGitPath('GitHub.com/group/sub/repo/git-upload-pack'), { host: 'github.com', repoPath: 'group/sub/repo', operation: 'git-upload-pack', rawPath: 'group/sub/repo/git-upload-pack' });
    assert.equal(parseGitPath('h.example:8443/org/repo.git/info/lfs/objects/batch').operation, 'info/lfs/objects/batch');
    assert.equal(parseGitPath('h.example/org/repo.git/info/lfs/objects/batch').repoPath, 'org/repo');
    assert.equal(parseGitPath('h.example/org/repo').operation, '');
  });

  const rejected: Array<[string, RegExp]> = [
    // `..` and `.` anywhere: in the repository and in the forwarded tail after it.
    ['h.example/org/../../etc/info/refs', /relative path segment "\.\."/],
    ['h.example/org/r.git/../../admin/x', /relative path segment "\.\."/],
    ['h.example/org/r.git/info/lfs/../../../x', /relative path segment "\.\."/],
    ['h.example/org/./r/info/refs', /relative path segment "\."/],
    ['h.example/org/r.git/./info/refs', /relative path segment "\."/],
    // Empty segments (doubled or trailing slashes) anywhere.
    ['h.example/org//r/info/refs', /empty path segment/],
    ['h.example/org/r.git/info//lfs', /empty path segment/],
    ['h.example/org/r/', /empty path segment/],
    ['h.example/', /missing repository path/],
    // Option-like segments anywhere.
    ['h.example/-u/r/info/refs', /option-like path segment "-u"/],
    ['h.example/org/r.git/info/--upload-pack=x', /option-like path segment/],
    // `.git` only on the last repository segment (no mirror inside a mirror).
    ['h.example/org/a.git/b/info/refs', /only the last repository path segment may end in \.git/],
    ['h.example/org/a.git/b.git/git-upload-pack', /only the last repository path segment may end in \.git/],
    // Dot-directories, escapes, lock names, bad hosts.
    ['h.example/org/.scratch/info/refs', /invalid repository path segment/],
    ['h.example/org/%2e%2e/info/refs', /escapes/],
    ['h.example/org/r.lock/info/refs', /invalid repository path segment/],
    ['bad_host!/org/r/info/refs', /invalid host/],
    ['h.example:99999/org/r/info/refs', /invalid port/],
    ['h.example/info/refs', /missing repository path/],
  ];
  for (const [input, message] of rejected) {
    test(`rejects ${input}`, () => {
      assert.throws(() => parseGitPath(input), (err: unknown) => err instanceof InvalidGitPathError && message.test((err as Error).message));
    });
  }
});
