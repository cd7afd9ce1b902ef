import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { formatDuration, parseDuration, duration } from '../../src/config/duration.js';
import { assertNamespace, isCanonicalKey, isValidNamespace, parseKey } from '../../src/cache/key.js';
import { headersForRead, prepareStoredHeaders, quoteETag, unquoteStrongETag } from '../../src/cache/headers.js';

describe('Go durations', () => {
  test('parses every unit and compound forms', () => {
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    assert.equal(parseDuration('1500us'), 2);
  });
  test('rejects garbage and negatives', () => {
    for (const bad of ['', '-1s', '10', 'abc', '1x', '1h-', '+', 'h']) assert.equal(parseDuration(bad), undefined, bad);
  });
  test('formats compactly and round-trips', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(parseDuration(formatDuration(3_723_000)), 3_723_000);
  });
  test('zod duration() yields ms or a clear issue', () => {
    assert.equal(duration().parse('2m'), 120_000);
    const r = duration().safeParse('soon');
    assert.equal(r.success, false);
    assert.match(String(r.error?.issues[0]?.message), /invalid duration "soon"/);
  });
});

describe('keys and namespaces', () => {
  test('64-hex keys are literal (lower-cased), others hashed', () => {
    const hex = 'A'.repeat(64);
    assert.equal(parseKey(hex), 'a'.repeat(64));
    assert.equal(parseKey('hello'), createHash('sha256').update('hello').digest('hex'));
    assert.ok(isCanonicalKey(parseKey('anything')));
  });
  test('namespaces cannot escape a directory', () => {
    for (const good of ['git', 'gomod', 'a_b-c', 'X1']) assert.ok(isValidNamespace(good), good);
    for (const bad of ['', '.', '..', '.metadata', '-x', 'a/b', 'a b', 'x'.repeat(129)]) {
      assert.equal(isValidNamespace(bad), false, bad);
      assert.throws(() => assertNamespace(bad), /invalid namespace/);
    }
  });
});

describe('stored headers', () => {
  test('transport headers dropped, ETag and Last-Modified defaulted', () => {
    const h = prepareStoredHeaders({ 'Content-Type': 'text/plain', 'content-length': '5', range: 'bytes=0-1' });
    assert.equal(h['content-type'], 'text/plain');
    assert.equal(h['content-length'], undefined);
    assert.equal(h['range'], undefined);
    assert.match(h['etag'] ?? '', /^"[0-9a-f-]{36}"$/);
    assert.ok(!Number.isNaN(Date.parse(h['last-modified'] ?? '')));
    assert.equal(prepareStoredHeaders({}, 'abc')['etag'], '"abc"');
  });
  test('ETag validation', () => {
    assert.equal(quoteETag('v1.2'), '"v1.2"');
    assert.throws(() => quoteETag('has space'), /invalid ETag/);
    assert.equal(unquoteStrongETag('"abc"'), 'abc');
    assert.equal(unquoteStrongETag('W/"abc"'), undefined);
    assert.equal(unquoteStrongETag('abc'), undefined);
  });
  test('reads never carry a stored Content-Range and always the real length', () => {
    const out = headersForRead({ 'content-range': 'bytes 0-1/2', etag: '"x"' }, 42);
    assert.equal(out['content-range'], undefined);
    assert.equal(out['content-length'], '42');
  });
});
