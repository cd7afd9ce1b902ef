import path from 'node:path';
import { z } from 'zod';
import type { Cache } from './cache.js';
import type { ProviderSpec } from '../config/provider.js';
import { duration } from '../config/duration.js';
import { createMemoryCache } from './memory.js';
import { createDiskCache } from './disk.js';

/** What a cache factory receives besides its own block. */
export interface CacheEnv {
  /** Absolute state directory. */
  state: string;
  /** Validated global blocks (`s3`, …). */
  blocks: Record<string, unknown>;
}

/** A configurable cache backend: its HCL spec and factory. */
export interface CacheProvider {
  spec: ProviderSpec;
  create(config: any, env: CacheEnv): Promise<Cache>;
}

const MB = 1024 * 1024;

const memorySchema = z.strictObject({
  'limit-mb': z.number().int().positive().default(1024).describe('Maximum total size in MiB.'),
  'max-ttl': duration().default(3_600_000).describe('Maximum (and default) time to live.'),
});

const diskSchema = z.strictObject({
  root: z.string().optional().describe('Directory for cached objects (default: <state>/cache).'),
  'limit-mb': z.number().int().positive().default(10240).describe('Maximum total size in MiB; least recently read objects are evicted.'),
  'max-ttl': duration().default(3_600_000).describe('Maximum (and default) time to live.'),
  'evict-interval': duration().default(60_000).describe('How often expired and excess objects are removed.'),
});

/** Every `cache <kind> {}` hoard knows. */
export const cacheProviders: CacheProvider[] = [
  {
    spec: { kind: 'cache', name: 'memory', description: 'In-process LRU cache bounded by size.', schema: memorySchema },
    async create(config: z.output<typeof memorySchema>) {
      return createMemoryCache({ limitBytes: config['limit-mb'] * MB, maxTtlMs: config['max-ttl'] });
    },
  },
  {
    spec: { kind: 'cache', name: 'disk', description: 'Local disk cache with atomic publish and LRU eviction.', schema: diskSchema },
    async create(config: z.output<typeof diskSchema>, env: CacheEnv) {
      return createDiskCache({
        root: path.resolve(env.state, config.root ?? path.join(env.state, 'cache')),
        limitBytes: config['limit-mb'] * MB,
        maxTtlMs: config['max-ttl'],
        evictIntervalMs: config['evict-interval'],
      });
    },
  },
];
