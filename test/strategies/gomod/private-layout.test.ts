import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compareVersions, isPseudoVersion, pseudoVersion } from '../../../src/strategies/gomod/go-semver.js';
import { filePathProblem, selectModuleFiles, type TreeFile } from '../../../src/strategies/gomod/module-zip.js';
import { moduleLayout, PrivatePatterns } from '../../../src/strategies/gomod/private-modules.js';

describe('private module patterns (GOPRIVATE matching)', () => {
  test('a pattern matches the leading path elements; * never crosses a /; a trailing / matches nothing', () => {
    const p = new PrivatePatterns(['example.com/private/*', 'corp.example', 'git.example.com/team?']);
    assert.ok(p.matches('example.com/private/lib'));
    assert.ok(p.matches('example.com/private/lib/sub/mod/v2'));
    assert.ok(!p.matches('example.com/private'));
    assert.ok(!p.matches('example.com/public/lib'));
    assert.ok(p.matches('corp.example/anything/at/all'));
    assert.ok(!p.matches('corp.example.org/x'));
    assert.ok(p.matches('git.example.com/team1/x'));
    assert.ok(!new PrivatePatterns(['example.com/private/']).matches('example.com/private/lib'));
  });
});

describe('module → repository layout', () => {
  const hosts = { 'example.com': '127.0.0.1:9000' };
  test('host/org/repo, then the module directory, its tag prefix and /vN', () => {
    assert.deepEqual(moduleLayout('example.com/org/repo', hosts), { module: 'example.com/org/repo', repository: '127.0.0.1:9000/org/repo', codeDir: '', major: undefined, majorSubdirectory: false, tagPrefix: '' });
    assert.deepEqual(moduleLayout('example.com/org/repo/sub/mod', {}), { module: 'example.com/org/repo/sub/mod', repository: 'example.com/org/repo', codeDir: 'sub/mod', major: undefined, majorSubdirectory: false, tagPrefix: 'sub/mod/' });
    assert.deepEqual(moduleLayout('example.com/org/repo/v2', {}), { module: 'example.com/org/repo/v2', repository: 'example.com/org/repo', codeDir: '', major: 2, majorSubdirectory: true, tagPrefix: '' });
    assert.deepEqual(moduleLayout('example.com/org/repo/sub/v3', {}), { module: 'example.com/org/repo/sub/v3', repository: 'example.com/org/repo', codeDir: 'sub', major: 3, majorSubdirectory: true, tagPrefix: 'sub/' });
    // A .git element ends the repository (Go's VCS qualifier); a /vN that is the repository itself is no subdirectory.
    assert.equal(moduleLayout('example.com/a/b/c.git/sub', {}).repository, 'example.com/a/b/c.git');
    assert.equal(moduleLayout('example.com/a/b/c.git/sub', {}).codeDir, 'sub');
    assert.deepEqual([moduleLayout('example.com/org/v2', {}).major, moduleLayout('example.com/org/v2', {}).majorSubdirectory], [2, false]);
  });
});

describe('Go versions', () => {
  test('semver order with pre-releases, and pseudo-versions after the highest ancestor tag', () => {
    const sorted = ['v1.10.0', 'v1.2.0', 'v1.2.0-rc.1', 'v1.2.0-rc.10', 'v1.2.0-rc.2', 'v1.2.0-beta', 'v0.9.9'].sort(compareVersions);
    assert.deepEqual(sorted, ['v0.9.9', 'v1.2.0-beta', 'v1.2.0-rc.1', 'v1.2.0-rc.2', 'v1.2.0-rc.10', 'v1.2.0', 'v1.10.0']);
    const t = Date.UTC(2024, 0, 2, 3, 4, 5) / 1000;
    const commit = 'abcdef0123456789abcdef0123456789abcdef01';
    assert.equal(pseudoVersion(0, undefined, t, commit), 'v0.0.0-20240102030405-abcdef012345');
    assert.equal(pseudoVersion(2, undefined, t, commit), 'v2.0.0-20240102030405-abcdef012345');
    assert.equal(pseudoVersion(1, 'v1.4.2', t, commit), 'v1.4.3-0.20240102030405-abcdef012345');
    assert.equal(pseudoVersion(1, 'v1.5.0-rc.1', t, commit), 'v1.5.0-rc.1.0.20240102030405-abcdef012345');
    for (const v of ['v0.0.0-20240102030405-abcdef012345', 'v1.4.3-0.20240102030405-abcdef012345', 'v1.5.0-rc.1.0.20240102030405-abcdef012345']) assert.ok(isPseudoVersion(v), v);
    assert.ok(!isPseudoVersion('v1.4.3'));
  });
});

describe('module zip file rules (x/mod/zip)', () => {
  const file = (path: string, extra: Partial<TreeFile> = {}): TreeFile => ({ path, mode: '100644', object: '0'.repeat(40), size: 10, ...extra });
  test('vendored packages, nested modules, symlinks and submodules are left out', () => {
    const kept = selectModuleFiles([
      file('go.mod'),
      file('a.go'),
      file('vendor/modules.txt'),
      file('vendor/x/x.go'),
      file('pkg/vendor/v.go'), // x/mod's offset quirk
      file('nested/go.mod'),
      file('nested/deep/n.go'),
      file('link', { mode: '120000' }),
      file('submodule', { mode: '160000' }),
      file('.hg_archival.txt'),
      file('run.sh', { mode: '100755' }),
    ]).map((f) => f.path);
    assert.deepEqual(kept, ['go.mod', 'a.go', 'vendor/modules.txt', 'run.sh']);
  });
  test('invalid or colliding paths and oversized files refuse the whole zip', () => {
    assert.throws(() => selectModuleFiles([file('a.go'), file('A.go')]), /case-insensitive file name collision/);
    assert.throws(() => selectModuleFiles([file('x'), file('X/y')]), /collision/);
    assert.throws(() => selectModuleFiles([file('bad"quote.go')]), /malformed file path/);
    assert.throws(() => selectModuleFiles([file('go.mod', { size: (16 << 20) + 1 })]), /go.mod is larger/);
    assert.throws(() => selectModuleFiles([file('LICENSE', { size: (16 << 20) + 1 })]), /LICENSE is larger/);
    assert.throws(() => selectModuleFiles([file('a', { size: 300 << 20 }), file('b', { size: 300 << 20 })]), /larger than 524288000/);
    assert.equal(filePathProblem('dir/ünïcödé.go'), undefined);
    assert.match(filePathProblem('aux.go') ?? '', /reserved name/);
    assert.match(filePathProblem('prog~1/x.go') ?? '', /short name/);
    assert.match(filePathProblem('trailing./x') ?? '', /trailing dot/);
  });
});
