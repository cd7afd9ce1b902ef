import { z } from 'zod';
import type { ProviderSpec } from '../config/provider.js';
import { duration } from '../config/duration.js';
import { sharedS3Client, verifyBucket, type S3Settings } from '../s3/client.js';
import { MemoryMetadataStore } from './memory.js';
import { S3MetadataStore } from './s3.js';
import type { MetadataStore } from './store.js';

/** A configurable metadata backend (`metadata <kind> {}`). */
export interface MetadataProvider {
  spec: ProviderSpec;
  create(config: any, env: { state: string; s3: S3Settings; logger?: { warn(obj: object, msg: string): void } }): Promise<MetadataStore>;
}

/** Every metadata backend hoard knows. */
export const metadataProviders: MetadataProvider[] = [
  {
    spec: { kind: 'metadata', name: 'memory', description: 'Process-local metadata (single replica).', schema: z.strictObject({}) },
    async create() {
      return new MemoryMetadataStore();
    },
  },
  {
    spec: {
      kind: 'metadata',
      name: 's3',
      description: 'Metadata shared by replicas through S3 conditional writes.',
      schema: z.strictObject({
        bucket: z.string().min(1).describe('Bucket for `.metadata/` objects (must exist; may be the cache bucket).'),
        'sync-interval': duration().default(15_000).describe('How long a replica reuses a read value (the cross-replica staleness window).'),
        'lock-ttl': duration()
          .optional()
          .describe('Deprecated in cachew, whose S3 journal no longer takes locks; hoard claims by conditional writes and has no lock to time out, so setting it logs a start-up warning and changes nothing.'),
      }),
    },
    async create(config: { bucket: string; 'sync-interval': number; 'lock-ttl'?: number }, env) {
      if (config['lock-ttl'] !== undefined) {
        env.logger?.warn({ attribute: 'metadata s3 { lock-ttl }' }, 'metadata s3: lock-ttl has no effect in hoard (claims are conditional writes that expire on their own; cachew deprecated it too)');
      }
      const client = sharedS3Client(env.s3);
      await verifyBucket(client, config.bucket, 'metadata s3');
      const store = new S3MetadataStore({ client, bucket: config.bucket, syncIntervalMs: config['sync-interval'] });
      if (!(await store.enforcesConditionalWrites())) {
        env.logger?.warn({ bucket: config.bucket }, 'this S3 endpoint ignores conditional writes: replicas may both win a snapshot claim (work is duplicated, nothing is corrupted)');
      }
      return store;
    },
  },
];
