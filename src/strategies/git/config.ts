import { z } from 'zod';
import { duration } from '../../config/duration.js';
import { InvalidGitPathError, type GitRequestPath } from './paths.js';
import { parsePrefetchEntry } from './prefetch.js';

/** `strategy git {}`: its attributes, defaults and cross-attribute rules. */
export const gitSchema = z.strictObject({
  'snapshot-interval': duration().default(0).describe('Period of snapshot generation (0 = off; on-demand serving still works).'),
  'snapshot-max-age': duration().default(24 * 3_600_000).describe('An unchanged snapshot (same HEAD, still in the authoritative tier) is regenerated once older than this; 0 = never skip, regenerate every interval.'),
  'mirror-snapshot-interval': duration().default(2 * 3_600_000).describe('Period of mirror snapshots (0 = snapshot-interval).'),
  'repack-interval': duration().default(0).describe('Period of geometric repacks (0 = off).'),
  'zstd-threads': z.number().int().min(0).default(4).describe('zstd threads for snapshots (0 = all cores).'),
  'bundle-cache-ttl': duration().default(2 * 3_600_000).describe('How long delta bundles stay cached (0 = the default: a bundle cached for no time would be made again on every request).'),
  'allowed-hosts': z.array(z.string()).default([]).describe('Upstream hosts hoard may contact (empty = any). Every hop of an upstream redirect hoard follows must pass it too; a forwarded request relays a redirect only within the host it named (502 otherwise).'),
  'plain-http-hosts': z.array(z.string()).default([]).describe('Hosts (with port) reached over http:// instead of https://.'),
  'serve-unreachable': z
    .boolean()
    .default(false)
    .describe('Serve, by object id, commits no ref of the mirror reaches (e.g. orphaned by a force-push upstream). false: such wants are answered by upstream, which decides; true: the mirror hands out every object it holds.'),
  'mirror-restore-retry': duration().default(30_000).describe('First retry delay of a failed background mirror restore after a cold serve, and of a failed prefetch (doubles up to 30m).'),
  'webhook-secret': z
    .string()
    .min(1, 'must not be empty (an empty HMAC key is no secret); remove the attribute to disable GitHub webhooks')
    .optional()
    .describe('Secret of the GitHub webhook that POSTs to /git/webhook/github (push, create and delete events refresh the mirror at once; X-Hub-Signature-256 is verified). Unset: that route answers 404.'),
  prefetch: z
    .array(z.string().superRefine(refusePrefetchEntry))
    .default([])
    .describe(
      'Repositories (host/repository, as after /git/ in a request, e.g. "github.com/org/repo") warmed from start-up without waiting for a client: cloned in the background through the scheduler (clone cap applies; start-up and /_readiness do not wait), given a workstation snapshot once Ready (at once even with snapshot-interval = 0, then every snapshot-interval if set), and refreshed by the background refresher whatever refresh-idle says. Failures are logged and retried from mirror-restore-retry, doubling up to 30m. Hosts must pass allowed-hosts.',
    ),
})
  // Cross-attribute rules, reported at the offending entry (prefetch[i]) so the loader names its line.
  .superRefine((config, ctx) => {
    const allowed = new Set(config['allowed-hosts'].map((h) => h.toLowerCase()));
    const seen = new Map<string, number>();
    for (const [i, entry] of config.prefetch.entries()) {
      let parsed: GitRequestPath;
      try {
        parsed = parsePrefetchEntry(entry);
      } catch {
        continue; // already reported by the element's own check
      }
      if (allowed.size && !allowed.has(parsed.host)) {
        ctx.addIssue({ code: 'custom', path: ['prefetch', i], input: entry, message: `${JSON.stringify(entry)}: host ${parsed.host} is not in allowed-hosts (${[...allowed].join(', ')})` });
      }
      const identity = `${parsed.host}/${parsed.repoPath}`;
      const first = seen.get(identity);
      if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['prefetch', i], input: entry, message: `${JSON.stringify(entry)} names the same repository as prefetch[${first}]` });
      else seen.set(identity, i);
    }
  });

/** The element check of `prefetch`: the request path rules, as a config message naming the entry. */
function refusePrefetchEntry(entry: string, ctx: z.RefinementCtx): void {
  try {
    parsePrefetchEntry(entry);
  } catch (err) {
    if (!(err instanceof InvalidGitPathError)) throw err;
    ctx.addIssue({ code: 'custom', input: entry, message: `${JSON.stringify(entry)} is not a repository hoard could serve: ${err.message}` });
  }
}

/** The validated `strategy git {}` block. */
export type GitConfig = z.output<typeof gitSchema>;
