import path from 'node:path';
import { z } from 'zod';
import type { Cache } from './cache.js';
import type { ProviderSpec } from '../config/provider.js';
import { duration } from '../config/duration.js';
import { zeroAsDefault } from '../config/zero-as-default.js';
import { createMemoryCache } from './memory.js';
import { createDiskCache } from './disk.js';
import { createS3Cache } from './s3.js';
import { sharedS3Client, verifyBucket, type S3Settings } from '../s3/client.js';
import os from 'node:os';

/** What a cache factory receives besides its own block. */
export interface CacheEnv {
  /** Absolute state directory. */
  state: string;
  /** The global `s3 {}` block, validated (defaults applied by its schema). */
  s3: S3Settings;
}

/** A configurable cache backend: its HCL spec and factory. */
export interface CacheProvider {
  spec: ProviderSpec;
  create(config: any, env: CacheEnv): Promise<Cache>;
}

const MB = 1024 * 1024;

const memorySchema = z.strictObject({
  'limit-mb': z.number().int().min(0).default(1024).describe('Maximum total size in MiB (0 = the default; cachew reads 0 as unlimited, but hoard never runs an unbounded memory tier).'),
  'max-ttl': duration().default(3_600_000).describe('Maximum (and default) time to live (0 = 1h).'),
});

const diskSchema = z.strictObject({
  root: z.string().optional().describe('Directory for cached objects (default: <state>/cache).'),
  'limit-mb': z.number().int().min(0).default(10240).describe('Maximum total size in MiB; least recently read objects are evicted (0 = 10240).'),
  'max-ttl': duration().default(3_600_000).describe('Maximum (and default) time to live (0 = 1h).'),
  'evict-interval': duration().default(60_000).describe('How often expired and excess objects are removed (0 = 1m).'),
});

const s3Schema = z.strictObject({
  bucket: z.string().min(1).describe('Bucket holding the objects (must exist).'),
  'max-ttl': duration().default(3_600_000).describe('Maximum (and default) time to live (0 = 1h); reads in the second half of an object\'s life renew it.'),
  'upload-concurrency': z.number().int().min(0).default(1).describe('Parts uploaded at once per object (0 = number of CPUs).'),
  'upload-part-size-mb': z.number().int().min(5, 'upload-part-size-mb must be at least 5 (the S3 minimum part size)').default(16).describe('Multipart part size in MiB (S3 minimum: 5).'),
  'download-concurrency': z.number().int().min(0).default(8).describe('Parallel ranged GETs per large read (0 = 8).'),
  'download-part-size-mb': z.number().int().min(0).default(32).describe('Size of each parallel ranged GET in MiB (0 = 32).'),
});

/** Every `cache <kind> {}` hoard knows. */
export const cacheProviders: CacheProvider[] = [
  {
    spec: { kind: 'cache', name: 'memory', description: 'In-process LRU cache bounded by size.', schema: memorySchema },
    async create(config: z.output<typeof memorySchema>) {
      // Zero means "the default", as in cachew's configs (which must load unchanged).
      return createMemoryCache({ limitBytes: zeroAsDefault(memorySchema, config, 'limit-mb') * MB, maxTtlMs: zeroAsDefault(memorySchema, config, 'max-ttl') });
    },
  },
  {
    spec: { kind: 'cache', name: 'disk', description: 'Local disk cache with atomic publish and LRU eviction.', schema: diskSchema },
    async create(config: z.output<typeof diskSchema>, env: CacheEnv) {
      return createDiskCache({
        root: path.resolve(env.state, config.root ?? path.join(env.state, 'cache')),
        limitBytes: zeroAsDefault(diskSchema, config, 'limit-mb') * MB,
        maxTtlMs: zeroAsDefault(diskSchema, config, 'max-ttl'),
        evictIntervalMs: zeroAsDefault(diskSchema, config, 'evict-interval'),
      });
    },
  },
  {
    spec: { kind: 'cache', name: 's3', description: 'Shared S3 tier (authoritative when last): immutable multipart-streamed body per write, committed by writing the small index object that names it.', schema: s3Schema },
    async create(config: z.output<typeof s3Schema>, env: CacheEnv) {
      const client = sharedS3Client(env.s3);
      await verifyBucket(client, config.bucket, 'cache s3');
      return createS3Cache({
        client,
        bucket: config.bucket,
        maxTtlMs: zeroAsDefault(s3Schema, config, 'max-ttl'),
        uploadConcurrency: config['upload-concurrency'] || os.availableParallelism(),
        uploadPartBytes: config['upload-part-size-mb'] * MB,
        downloadConcurrency: zeroAsDefault(s3Schema, config, 'download-concurrency'),
        downloadPartBytes: zeroAsDefault(s3Schema, config, 'download-part-size-mb') * MB,
      });
    },
  },
];
