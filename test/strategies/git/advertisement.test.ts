import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { advertisementDifferences, parseForEachRef, parseLsRemote, parseRefspecs } from '../../../src/strategies/git/advertisement.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);

const lsRemote = (lines: string[]) => parseLsRemote(`${lines.join('\n')}\n`);
const mirror = (lines: string[], head?: string) => ({ refs: parseForEachRef(lines.join('\n')), head });
const MIRROR_SPEC = parseRefspecs('+refs/*:refs/*\n');

describe('advertisement comparison', () => {
  test('ls-remote --symref: HEAD target kept, peeled entries and the HEAD id line dropped', () => {
    const listing = lsRemote(['ref: refs/heads/main\tHEAD', `${A}\tHEAD`, `${A}\trefs/heads/main`, `${B}\trefs/tags/v1`, `${A}\trefs/tags/v1^{}`]);
    assert.equal(listing.head, 'refs/heads/main');
    assert.deepEqual([...listing.refs], [['refs/heads/main', A], ['refs/tags/v1', B]]);
  });

  test('a mirror refspec compares every namespace, both ways, and HEAD', () => {
    const upstream = lsRemote(['ref: refs/heads/dev\tHEAD', `${A}\trefs/heads/main`, `${A}\trefs/heads/dev`, `${B}\trefs/tags/v2`, `${C}\trefs/pull/1/head`]);
    const local = mirror([`${A} refs/heads/main`, `${A} refs/heads/dev`, `${A} refs/heads/gone`, `${C} refs/pull/1/head`], 'refs/heads/main');
    assert.deepEqual(advertisementDifferences(upstream, local, MIRROR_SPEC), ['HEAD -> refs/heads/dev (mirror: refs/heads/main)', 'new refs/tags/v2', 'deleted refs/heads/gone']);
    const same = mirror([`${A} refs/heads/main`, `${A} refs/heads/dev`, `${B} refs/tags/v2`, `${C} refs/pull/1/head`], 'refs/heads/dev');
    assert.deepEqual(advertisementDifferences(upstream, same, MIRROR_SPEC), []);
  });

  test('only what the refspecs map counts; negative refspecs exclude', () => {
    const specs = parseRefspecs('+refs/heads/*:refs/remotes/origin/*\n^refs/heads/tmp/*\nrefs/tags/v1:refs/tags/v1\nrefs/heads/nodst\n');
    const upstream = lsRemote([`${A}\trefs/heads/main`, `${B}\trefs/heads/tmp/x`, `${C}\trefs/pull/9/head`, `${A}\trefs/tags/v1`, `${A}\trefs/tags/v9`]);
    const local = mirror([`${A} refs/remotes/origin/main`, `${A} refs/tags/v1`, `${B} refs/heads/local-only`]);
    assert.deepEqual(advertisementDifferences(upstream, local, specs), [], 'pull refs, excluded heads, unmapped tags and refs outside the destinations are ignored');
    const moved = mirror([`${B} refs/remotes/origin/main`, `${A} refs/tags/v1`, `${C} refs/remotes/origin/stale`]);
    assert.deepEqual(advertisementDifferences(upstream, moved, specs), ['moved refs/remotes/origin/main', 'deleted refs/remotes/origin/stale']);
  });

  test('HEAD counts only when it names a branch the mirror holds under that name', () => {
    const local = mirror([`${A} refs/heads/main`, `${A} refs/tags/t`], 'refs/heads/main');
    assert.deepEqual(advertisementDifferences(lsRemote(['ref: refs/tags/t\tHEAD', `${A}\trefs/heads/main`, `${A}\trefs/tags/t`]), local, MIRROR_SPEC), []);
    const narrow = parseRefspecs('+refs/heads/*:refs/heads/*\n^refs/heads/tmp/*\n');
    assert.deepEqual(advertisementDifferences(lsRemote(['ref: refs/heads/tmp/x\tHEAD', `${A}\trefs/heads/main`]), mirror([`${A} refs/heads/main`], 'refs/heads/main'), narrow), []);
  });

  test('the list of differences is bounded', () => {
    const upstream = lsRemote(Array.from({ length: 50 }, (_, i) => `${A}\trefs/tags/t${i}`));
    assert.equal(advertisementDifferences(upstream, mirror([]), MIRROR_SPEC).length, 5);
  });
});
