import { duration } from '../../config/duration.js';

/**
 * The attributes every strategy built on the generic caching handler accepts (gomod,
 * github-releases, hermit, host, artifactory, proxy). Spread into each strategy's schema, so
 * their defaults live here and nowhere else.
 */
export const cachingAttributes = {
  'stale-if-error': duration()
    .default(7 * 86_400_000)
    .describe(
      'How long past its TTL a cached object may still be served when the upstream fails (connect error, timeout, 5xx), with Age, Warning: 110 and X-Hoard-Cache: stale. Immutable content (canonical module versions, release assets) is served stale without limit. 0 = never serve stale mutable content.',
    ),
  'negative-ttl': duration()
    .default(60_000)
    .describe('How long an upstream 404/410 for an immutable name is remembered, so a herd asking for a missing version does not reach the upstream each time (0 = never cached). 5xx answers are never cached.'),
  'upstream-timeout': duration()
    .default(120_000)
    .describe('How long hoard waits for the upstream to answer (and for each further byte of the body); a timeout answers 504 (or serves a stale copy).'),
};

/** The validated caching attributes (milliseconds). */
export interface CachingConfig {
  'stale-if-error': number;
  'negative-ttl': number;
  'upstream-timeout': number;
}
