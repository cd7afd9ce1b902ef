import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { duration } from '../../src/config/duration.js';
import { zeroAsDefault } from '../../src/config/zero-as-default.js';
import { globalBlockSchemas } from '../../src/config/global-schema.js';
import { gitStrategyProvider } from '../../src/strategies/git/strategy.js';

const schema = z.strictObject({
  'limit-mb': z.number().int().min(0).default(1024),
  'max-ttl': duration().default(3_600_000),
  bucket: z.string().min(1),
});

test('zeroAsDefault: a 0 becomes the schema default (numbers and durations); other values pass through', () => {
  const zero = schema.parse({ 'limit-mb': 0, 'max-ttl': '0s', bucket: 'b' });
  assert.equal(zeroAsDefault(schema, zero, 'limit-mb'), 1024);
  assert.equal(zeroAsDefault(schema, zero, 'max-ttl'), 3_600_000);
  const set = schema.parse({ 'limit-mb': 5, 'max-ttl': '90s', bucket: 'b' });
  assert.equal(zeroAsDefault(schema, set, 'limit-mb'), 5);
  assert.equal(zeroAsDefault(schema, set, 'max-ttl'), 90_000);
});

test('zeroAsDefault: an attribute the schema lacks is a programming error, said by name', () => {
  assert.throws(() => zeroAsDefault(schema, { nope: 0 } as Record<string, unknown>, 'nope'), /no attribute nope/);
});

test("git's bundle-cache-ttl = 0 stands for its schema default", () => {
  const config = gitStrategyProvider.spec.schema.parse({ 'bundle-cache-ttl': '0s' }) as Record<string, unknown>;
  assert.equal(zeroAsDefault(gitStrategyProvider.spec.schema as z.ZodObject, config, 'bundle-cache-ttl'), 2 * 3_600_000);
});

test('absent global blocks come out of their schemas complete (strategies read them without re-defaulting)', () => {
  const clone = globalBlockSchemas['git-clone'].parse({});
  assert.equal(clone['clone-timeout'], 3_600_000);
  assert.equal(clone['fetch-timeout'], 5 * 60_000);
  assert.equal(clone['ref-check-interval'], 10_000);
  assert.equal(clone['mirror-root'], '${HOARD_STATE}/git-mirrors');
  const scheduler = globalBlockSchemas.scheduler.parse({});
  assert.equal(scheduler.concurrency, 4);
  const s3 = globalBlockSchemas.s3.parse({});
  assert.deepEqual([s3.endpoint, s3.region, s3['use-ssl']], ['s3.amazonaws.com', 'us-west-2', true]);
});
