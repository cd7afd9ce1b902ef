/**
 * The Cache-Control values hoard's GOPROXY answers carry (cachew-cache-strategies §5.6): what
 * changes (version lists, `@latest`, version queries) for a minute, immutable module files for a
 * week, the checksum database by how often each part changes.
 */
export const CACHE_CONTROL = {
  /** `@v/list`, `@latest`, `.info` of a non-canonical query. */
  mutable: 'public, max-age=60',
  /** `.info`, `.mod`, `.zip` of a canonical version. */
  immutable: 'public, max-age=604800',
  /** A version, list or query that does not exist. */
  notFoundQuery: 'public, max-age=60',
  /** A module file that does not exist. */
  notFoundDownload: 'public, max-age=600',
  /** Upstream failed or timed out: nobody may keep the answer. */
  upstreamFailed: 'no-cache, no-store',
  /** Paths that are not part of the protocol. */
  notProtocol: 'public, max-age=86400',
  sumdbSupported: 'public, max-age=86400',
  sumdbLatest: 'public, max-age=3600',
  sumdbImmutable: 'public, max-age=86400',
} as const;
