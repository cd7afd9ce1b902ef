import { z } from 'zod';
import { duration } from './duration.js';

/**
 * The global (non-provider) part of a config file, with cachew's names and defaults (reference
 * §9.2 and git §8.2-8.3). Strings may hold `${HOARD_STATE}`/`${CACHEW_STATE}`; they are expanded
 * before validation, defaults included.
 */
export const globalBlockSchemas = {
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info').describe('Minimum log level.'),
      json: z.boolean().default(false).describe('JSON lines on stderr (for log shippers) instead of human-readable text.'),
      remap: z.record(z.string(), z.string()).default({}).describe('JSON mode: rename top-level log fields, old = new (e.g. msg = "message", time = "timestamp").'),
      headers: z.record(z.string(), z.string()).default({}).describe('Request headers logged on request lines, header = attribute (credential headers are refused).'),
    })
    .describe('Logging.'),
  metrics: z
    .strictObject({
      'service-name': z.string().default('hoard').describe('Service name reported with metrics.'),
      port: z.number().int().min(0).max(65535).default(9102).describe('Prometheus listener port (0 disables it).'),
      bind: z.string().default('127.0.0.1').describe('Address of the Prometheus listener (hoard addition; loopback by default).'),
      'enable-prometheus': z.boolean().default(true).describe('Serve Prometheus metrics at /metrics.'),
      'enable-otlp': z.boolean().default(false).describe("Push hoard's metrics (the same ones /metrics serves) to otlp-endpoint over OTLP/HTTP every otlp-export-interval seconds."),
      'otlp-endpoint': z.string().default('http://localhost:4318').describe('OTLP/HTTP base URL (metrics go to <url>/v1/metrics; a URL already ending in /v1/metrics is used as it is).'),
      'otlp-insecure': z.boolean().default(false).describe('Allow a plain-text http:// otlp-endpoint (without it only https:// is accepted).'),
      'otlp-export-interval': z.number().int().min(1).default(60).describe('OTLP export interval in seconds.'),
    })
    .superRefine((metrics, ctx) => {
      if (!metrics['enable-prometheus'] && !metrics['enable-otlp']) {
        ctx.addIssue({ code: 'custom', path: ['enable-prometheus'], message: 'enable-prometheus and enable-otlp are both false: enable at least one metrics exporter' });
      }
      if (!metrics['enable-otlp']) return;
      let url: URL | undefined;
      try {
        url = new URL(metrics['otlp-endpoint']);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        ctx.addIssue({ code: 'custom', path: ['otlp-endpoint'], message: `otlp-endpoint ${JSON.stringify(metrics['otlp-endpoint'])} is not an http:// or https:// URL` });
      } else if (url.protocol === 'http:' && !metrics['otlp-insecure']) {
        ctx.addIssue({ code: 'custom', path: ['otlp-endpoint'], message: `otlp-endpoint ${url.href} is plain-text http: set otlp-insecure = true to allow it, or use https://` });
      }
    })
    .describe('Metrics.'),
  opa: z
    .strictObject({
      policy: z.string().optional().describe('Inline Rego policy (package cachew.authz, boolean rule allow), compiled at start-up with the opa binary and enforced on every request.'),
      'policy-file': z.string().optional().describe('Rego policy file, compiled and enforced like policy.'),
      'policy-wasm': z.string().optional().describe('Precompiled policy.wasm (opa build -t wasm -e cachew/authz/allow); needs no opa binary (hoard addition).'),
      bundle: z.string().optional().describe('OPA wasm bundle .tar.gz holding /policy.wasm (opa build -t wasm -e cachew/authz/allow); needs no opa binary (hoard addition).'),
      data: z.string().optional().describe('Inline JSON object exposed to the policy as data.*.'),
      'data-file': z.string().optional().describe('JSON object file exposed to the policy as data.*.'),
      test: z.string().optional().describe('Rego test module run with opa test against the policy (or the default policy) at start-up; any failure stops the start.'),
    })
    .describe('Authorization policy (cachew §7.1). Default, with no policy: /api and /admin only from loopback (IPv4 and IPv6).'),
  scheduler: z
    .strictObject({
      concurrency: z.number().int().min(0).default(4).describe('Concurrent background jobs (0 = number of cores).'),
      'max-clone-concurrency': z.number().int().min(0).default(0).describe('Concurrent clone-like jobs (0 = half of concurrency, at least 1; no cap with one worker).'),
      'scheduler-db': z.string().default('${HOARD_STATE}/scheduler.db').describe('Where periodic job times are remembered.'),
    })
    .describe('Background job scheduler.'),
  'git-clone': z
    .strictObject({
      'mirror-root': z.string().default('${HOARD_STATE}/git-mirrors').describe('Directory holding bare mirrors.'),
      'fetch-interval': duration()
        .default(15 * 60_000)
        .describe(
          'Background refresh of each Ready mirror: one fetch per repository about this long after its last fetch (whatever caused it), jittered by ±10%; skipped while a fetch runs; while upstream fails the delay doubles up to max(fetch-interval, 1h). 0 = off.',
        ),
      'refresh-idle': duration()
        .default(7 * 24 * 3_600_000)
        .describe('The background refresher stops for a repository no client request touched for this long (it resumes on the next request; the idle clock restarts with the process). 0 = never stop.'),
      'ref-check-interval': duration().default(10_000).describe('How often a request may trigger an upstream ref check.'),
      maintenance: z
        .boolean()
        .default(false)
        .describe(
          'Hourly per-mirror maintenance on the scheduler (first run when the mirror becomes Ready): `git maintenance run` with the loose-objects, commit-graph and incremental-repack tasks, then a multi-pack-index bitmap; serialised with fetches and snapshots of that repository, deadline repack-timeout, threads repack-threads; skipped while no pack changed since the last bitmap.',
        ),
      'pack-threads': z.number().int().min(0).default(0).describe('pack.threads for upload-pack (0 = git default).'),
      'clone-timeout': duration().default(3_600_000).describe('Deadline of a mirror clone.'),
      'fetch-timeout': duration().default(5 * 60_000).describe('Deadline of a mirror fetch.'),
      'ls-remote-timeout': duration().default(60_000).describe('Deadline of an upstream ref listing.'),
      'repack-timeout': duration().default(10 * 60_000).describe('Deadline of a repack.'),
      'repack-threads': z.number().int().min(0).default(4).describe('Threads for repack.'),
    })
    .describe('Git mirror settings shared by strategies.'),
  s3: z
    .strictObject({
      endpoint: z.string().default('s3.amazonaws.com').describe('S3 endpoint host[:port] or URL.'),
      region: z.string().default('us-west-2').describe('S3 region.'),
      'use-ssl': z.boolean().default(true).describe('Use HTTPS to reach the endpoint.'),
      'skip-ssl-verify': z.boolean().default(false).describe('Skip TLS certificate verification.'),
      'use-path-style': z.boolean().default(false).describe('Path-style bucket addressing (hoard addition; needed by most S3-compatible servers).'),
      'access-key-id': z.string().optional().describe('Static access key (hoard addition; default: the AWS credential chain).'),
      'secret-access-key': z.string().optional().describe('Static secret key (hoard addition).'),
    })
    .describe('Shared S3 client.'),
  'github-app': z
    .strictObject({
      'app-id': z.string().optional().describe('GitHub App ID (required with private-key-path; a block with neither is ignored with a warning).'),
      'private-key-path': z.string().optional().describe('PEM RSA private key of the app, PKCS#1 or PKCS#8 (read and checked at start-up).'),
      installations: z.record(z.string(), z.string()).optional().describe('Deprecated in cachew and ignored (start-up warning): each org\'s installation is discovered through the GitHub API.'),
      'fallback-org': z.string().optional().describe('Org whose installation of this app supplies the token for orgs no app is installed on (the first app of a git host that declares one wins).'),
      'api-url': z.string().default('https://api.github.com').describe('GitHub API base URL (hoard addition; GitHub Enterprise: https://<host>/api/v3).'),
      'git-host': z.string().optional().describe('Git host (host[:port]) whose repositories use this app\'s tokens for clones and fetches (hoard addition; default github.com for api.github.com, else the api-url host).'),
    })
    // cachew's rule: both or neither (a block with neither is ignored, with a start-up warning here).
    .superRefine((block, ctx) => {
      const id = Boolean(block['app-id']);
      const key = Boolean(block['private-key-path']);
      if (id !== key) ctx.addIssue({ code: 'custom', path: [id ? 'private-key-path' : 'app-id'], message: 'required attribute is missing', input: undefined });
    })
    .describe('GitHub App whose installation tokens authenticate git upstream reads and private github-releases (repeatable; apps are tried in file order).'),
} as const;

/** Top-level attributes. */
export const globalAttributeSchemas = {
  state: z.string().default('./state').describe('Base directory for all local state.'),
  bind: z.string().default('127.0.0.1:8080').describe('Address the server listens on.'),
  url: z.string().optional().describe('Public base URL (default: http://<bind>).'),
  'shutdown-readiness-delay': duration().default(5_000).describe('How long /_readiness reports 503 before the listener stops.'),
  'shutdown-timeout': duration().default(150_000).describe('How long in-flight requests may run after a stop signal.'),
} as const;

/** Blocks that may appear more than once. */
export const repeatableBlocks = new Set(['github-app']);

type Out<T extends z.ZodType> = z.output<T>;

/** The resolved global configuration. */
export interface GlobalConfig {
  state: string;
  bind: string;
  url: string;
  'shutdown-readiness-delay': number;
  'shutdown-timeout': number;
  log: Out<typeof globalBlockSchemas.log>;
  metrics: Out<typeof globalBlockSchemas.metrics>;
  opa: Out<typeof globalBlockSchemas.opa>;
  scheduler: Out<typeof globalBlockSchemas.scheduler>;
  'git-clone': Out<(typeof globalBlockSchemas)['git-clone']>;
  s3: Out<typeof globalBlockSchemas.s3>;
  'github-app': Array<Out<(typeof globalBlockSchemas)['github-app']>>;
}
