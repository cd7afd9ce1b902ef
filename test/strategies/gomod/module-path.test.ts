import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { checkEscapedModulePath, checkEscapedVersion, isCanonicalVersion } from '../../../src/strategies/gomod/module-path.js';

describe('GOPROXY escaped module paths and versions (x/mod rules)', () => {
  test('module paths', () => {
    const good: Array<[string, string]> = [
      ['github.com/!burnt!sushi/toml', 'github.com/BurntSushi/toml'],
      ['github.com/!azure/azure-sdk-for-go', 'github.com/Azure/azure-sdk-for-go'],
      ['example.com/x/v2', 'example.com/x/v2'],
      ['gopkg.in/yaml.v3', 'gopkg.in/yaml.v3'],
      ['gopkg.in/check.v0', 'gopkg.in/check.v0'],
      ['example.com/a_b~c.d-e', 'example.com/a_b~c.d-e'],
    ];
    for (const [escaped, unescaped] of good) assert.deepEqual(checkEscapedModulePath(escaped), { ok: true, escaped, unescaped }, escaped);
    const bad = ['', 'github.com/BurntSushi/toml', 'example.com/!', 'example.com/!1x', 'example.com//x', 'example.com/x/', '-example.com/x', 'nodot/x', '!example.com/x',
      'example.com/.x', 'example.com/x.', 'example.com/..', 'example.com/x/v1', 'example.com/x/v02', 'example.com/x/v2.1', 'gopkg.in/yaml', 'gopkg.in/yaml.v01',
      'example.com/con', 'example.com/aux.txt', 'example.com/prog~1', 'example.com/a+b', 'example.com/a@b', 'example.com/a%b', 'example.com/é', 'example.com/a b'];
    for (const escaped of bad) assert.equal(checkEscapedModulePath(escaped).ok, false, escaped);
  });

  test('versions, and which of them are canonical (cacheable)', () => {
    assert.deepEqual(checkEscapedVersion('v1.0.0-!r!c1'), { ok: true, escaped: 'v1.0.0-!r!c1', unescaped: 'v1.0.0-RC1' });
    for (const bad of ['v1.0.0-RC1', 'v1.0.0-!', 'v1.0.0-!9', '', '..', 'v1.', 'a/b', 'a*b', 'nul']) assert.equal(checkEscapedVersion(bad).ok, false, bad);
    for (const query of ['master', 'v1.2', 'latest', 'v1.0.0+build', 'v1.0.0-01']) {
      const checked = checkEscapedVersion(query);
      assert.ok(checked.ok, query);
      assert.equal(isCanonicalVersion(checked.unescaped), false, query);
    }
    for (const canonical of ['v0.0.0', 'v1.2.3', 'v1.0.0-RC1', 'v1.0.0-rc.1', 'v0.0.0-20191109021931-daa7c04131f5', 'v2.0.0+incompatible', 'v1.0.0-0.x-y']) {
      assert.ok(isCanonicalVersion(canonical), canonical);
    }
    for (const not of ['1.2.3', 'v1.2', 'v01.2.3', 'v1.2.3-', 'v1.2.3-a..b', 'v1.2.3+meta']) assert.equal(isCanonicalVersion(not), false, not);
  });
});
