import { z } from 'zod';
import type { ProviderSpec } from '../config/provider.js';
import { MemoryMetadataStore } from './memory.js';
import type { MetadataStore } from './store.js';

/** A configurable metadata backend (`metadata <kind> {}`). */
export interface MetadataProvider {
  spec: ProviderSpec;
  create(config: any, env: { state: string; blocks: Record<string, unknown> }): Promise<MetadataStore>;
}

/** Every metadata backend hoard knows. */
export const metadataProviders: MetadataProvider[] = [
  {
    spec: { kind: 'metadata', name: 'memory', description: 'Process-local metadata (single replica).', schema: z.strictObject({}) },
    async create() {
      return new MemoryMetadataStore();
    },
  },
];
