import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { CacheKey } from '../../cache/key.js';
import { sendText } from '../../http/router.js';
import { failureAnswer, isOutOfSpace, withoutServerPaths, type ErrorAnswer } from '../../http/error-answer.js';
import { UpstreamRepositoryMissingError } from './upstream-missing.js';

/** Response header naming the commit a snapshot holds. */
export const SNAPSHOT_COMMIT_HEADER = 'x-cachew-snapshot-commit';
/** Response header pointing at a delta bundle when the snapshot is behind the mirror. */
export const BUNDLE_URL_HEADER = 'x-cachew-bundle-url';

/** A full lowercase commit id (SHA-1 or SHA-256). */
export const COMMIT_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** Deadline of one archive generation, restore or bundle creation. */
export const GENERATION_TIMEOUT_MS = 2 * 60 * 60_000;

/** The three cached artifacts of a repository (reference git §4.1). */
export type ArtifactKind = 'snapshot' | 'mirror-snapshot' | 'lfs-snapshot';

/** Cache key of an artifact: SHA-256 of the upstream URL (no `.git`) plus a suffix. */
export function artifactKey(upstreamURL: string, kind: ArtifactKind): CacheKey {
  return createHash('sha256').update(`${upstreamURL}.${kind}`).digest('hex') as CacheKey;
}

/** Cache key of a delta bundle from `base`. */
export function bundleKey(upstreamURL: string, base: string): CacheKey {
  return createHash('sha256').update(`${upstreamURL}.bundle.${base}`).digest('hex') as CacheKey;
}

/** Stored headers of a snapshot archive holding `commit`. */
export function snapshotHeaders(commit: string, filename: string): Record<string, string> {
  return { 'content-type': 'application/zstd', 'content-disposition': `attachment; filename="${filename}"`, [SNAPSHOT_COMMIT_HEADER]: commit };
}

/**
 * The answer for a request that needed the mirror when it could not be made ready: 404 when the
 * upstream does not have the repository, 507 when the disk is full, else 502 with the cause (a refused redirect names the
 * refused host), never a server path.
 */
export function mirrorNotReadyAnswer(err: unknown): ErrorAnswer {
  if (err instanceof UpstreamRepositoryMissingError) return { status: 404, message: `repository not found: ${err.message}` };
  if (isOutOfSpace(err)) return failureAnswer(err, 'clone');
  return { status: 502, message: withoutServerPaths(`clone not ready: ${(err as Error).message}`) };
}

/** Sends an error answer as text. */
export function sendAnswer(res: ServerResponse, answer: ErrorAnswer): void {
  sendText(res, answer.status, answer.message);
}
