import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidGitPathError, parseGitPath } from '../../../src/strategies/git/paths.js';
import { encodeMirrorSegment, mirrorRelativePath, urlEncodeRepoPath } from '../../../src/strategies/git/repo-names.js';

describe('parseGitPath', () => {
  test('splits host, repository and operation', () => {
    assert.deepEqual(parseGitPath('github.com/org/repo.git/info/refs'), { host: 'github.com', repoPath: 'org/repo', urlPath: 'org/repo', operation: 'info/refs', rawPath: 'org/repo.git/info/refs' });
    assert.deepEqual(parseGitPath('GitHub.com/group/sub/repo/git-upload-pack'), { host: 'github.com', repoPath: 'group/sub/repo', urlPath: 'group/sub/repo', operation: 'git-upload-pack', rawPath: 'group/sub/repo/git-upload-pack' });
    assert.equal(parseGitPath('h.example:8443/org/repo.git/info/lfs/objects/batch').operation, 'info/lfs/objects/batch');
    assert.equal(parseGitPath('h.example/org/repo.git/info/lfs/objects/batch').repoPath, 'org/repo');
    assert.equal(parseGitPath('h.example/org/repo').operation, '');
  });

  test('accepts any name a git server can serve, decoded per segment', () => {
    const cases: Array<[string, string, string]> = [
      // raw path as git sends it, decoded name, canonical upstream spelling
      ['a.b-c+d.git/info/refs', 'a.b-c+d', 'a.b-c+d'],
      ['x~y/git-upload-pack', 'x~y', 'x~y'],
      ['org/user@repo.git/info/refs', 'org/user@repo', 'org/user@repo'],
      ['%c3%bcn%c3%afc%c3%b6d%c3%a9-r%c3%abpo/info/refs', 'ünïcödé-rëpo', '%C3%BCn%C3%AFc%C3%B6d%C3%A9-r%C3%ABpo'],
      ['with%20space/info/refs', 'with space', 'with%20space'],
      ['a%2Bb/info/refs', 'a+b', 'a+b'],
      ['lit%25eral/info/refs', 'lit%eral', 'lit%25eral'],
      ['q%3Fh%23/info/refs', 'q?h#', 'q%3Fh%23'],
      ['r%2Egit/info/refs', 'r', 'r'],
    ];
    for (const [raw, name, url] of cases) {
      const parsed = parseGitPath(`h.example/${raw}`);
      assert.equal(parsed.repoPath, name, raw);
      assert.equal(parsed.urlPath, url, raw);
      assert.equal(parsed.rawPath, raw);
      // The upstream spelling names the same repository again.
      assert.equal(parseGitPath(`h.example/${url}/info/refs`).repoPath, name, url);
    }
    assert.equal(parseGitPath('h.example/%c3%bc.git/info/lfs/objects/batch').operation, 'info/lfs/objects/batch');
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
    ['h.example/.hidden/r/info/refs', /invalid repository path segment "\.hidden"/],
    ['h.example/org/%2e%2e/info/refs', /relative path segment "\.\."/],
    ['h.example/org/r.git/%2E/info', /relative path segment "\."/],
    ['h.example/org/%2Dr/info/refs', /option-like path segment "-r"/],
    ['h.example/org/%2escratch/info/refs', /invalid repository path segment "\.scratch"/],
    ['h.example/org%2Fother/info/refs', /encoded "\/"/],
    ['h.example/org/r.git/info%2f..%2fx', /encoded "\/"/],
    ['h.example/org/a%5Cb/info/refs', /invalid repository path segment/],
    ['h.example/org/a\\b/info/refs', /percent-encoded/],
    ['h.example/org/a#b/info/refs', /percent-encoded/],
    ['h.example/org/a b/info/refs', /percent-encoded/],
    ['h.example/org/\u00fc/info/refs', /percent-encoded/],
    ['h.example/org/a%0Ab/info/refs', /control character/],
    ['h.example/org/a%7Fb/info/refs', /control character/],
    ['h.example/org/a%C2%85b/info/refs', /control character/],
    ['h.example/org/a%00b/info/refs', /control character/],
    ['h.example/org/%ff%fe/info/refs', /not valid UTF-8/],
    ['h.example/org/%c3/info/refs', /not valid UTF-8/],
    ['h.example/org/a%2/info/refs', /malformed percent-escape/],
    ['h.example/org/a%zz/info/refs', /malformed percent-escape/],
    ['h.example/org/%61.git/b/info/refs', /only the last repository path segment may end in \.git/],
    ['h.example/org/a%2Egit/b/info/refs', /only the last repository path segment may end in \.git/],
    ['h.example/org/r%2Elock/info/refs', /invalid repository path segment/],
    [`h.example/org/${'%C3%BC'.repeat(41)}/info/refs`, /too long/],
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

describe('mirror directory names', () => {
  test('plain names keep the directory they always had', () => {
    for (const name of ['org/repo', 'group/sub/my_repo.v2', 'A-b.c_D']) {
      assert.equal(mirrorRelativePath('github.com', name), `github.com/${name}.git`);
      assert.equal(urlEncodeRepoPath(name), name);
    }
  });

  test('every other byte is escaped, "%" included, so two names never share a directory', () => {
    assert.equal(encodeMirrorSegment('a+b'), 'a%2Bb');
    assert.equal(encodeMirrorSegment('a%2Bb'), 'a%252Bb');
    assert.equal(encodeMirrorSegment('ü'), '%C3%BC');
    assert.equal(encodeMirrorSegment('user@repo'), 'user%40repo');
    const names = ['a+b', 'a%2Bb', 'a%2bb', 'a%252Bb', 'A+b', 'a b', 'a%20b', 'ü', 'u\u0308', '%C3%BC', 'x~y', 'x%7Ey', 'a.b', 'a_b', 'a-b'];
    const dirs = names.map(encodeMirrorSegment);
    assert.equal(new Set(dirs).size, names.length, `collision among ${JSON.stringify(dirs)}`);
    for (const dir of dirs) assert.match(dir, /^[A-Za-z0-9._%-]+$/, 'only safe bytes on disk');
  });

  test('a mirror directory parses back to the name that made it (start-up discovery)', () => {
    for (const raw of ['a.b-c+d', 'x~y', 'org/user@repo', '%C3%BCn%C3%AFc%C3%B6d%C3%A9-r%C3%ABpo', 'lit%25eral', 'with%20space', 'plain/name']) {
      const parsed = parseGitPath(`127.0.0.1:9000/${raw}/info/refs`);
      const dir = mirrorRelativePath(parsed.host, parsed.repoPath);
      const again = parseGitPath(dir);
      assert.equal(again.repoPath, parsed.repoPath, dir);
      assert.equal(mirrorRelativePath(again.host, again.repoPath), dir, 'canonical: the encoding round-trips');
    }
    // A directory someone named by hand decodes, but not canonically: discovery skips it.
    const odd = parseGitPath('h.example/a+b.git');
    assert.notEqual(mirrorRelativePath(odd.host, odd.repoPath), 'h.example/a+b.git');
  });
});
