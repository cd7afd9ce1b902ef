import { requestUpstream } from '../../http/upstream.js';

/**
 * Config for server-side git that talks to upstreams: git itself follows no redirect. git offers
 * no way to check where a redirect leads before it connects, so `true` or `initial` would let an
 * allowed upstream send hoard to any host. hoard follows redirects itself instead
 * (`resolveUpstreamRedirect`), checking every hop, and hands git the final URL.
 */
export const NO_REDIRECTS: readonly string[] = ['-c', 'http.followRedirects=false'];

/** git's wording when it met a redirect it was told not to follow. */
export const GIT_REDIRECT_ERROR = /returned error: 30[0-8]\b/;

/** The upstream moved to `url` (a redirect every hop of which hoard accepted): run the command again there. */
export class UpstreamMovedError extends Error {
  constructor(
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(`upstream moved to ${url}`, options);
  }
}

const MAX_HOPS = 5;
const PROBE_TIMEOUT_MS = 10_000;
/** What git asks for first, and the tail it strips from a redirect target to find the repository's new URL. */
const ADVERTISEMENT = '/info/refs?service=git-upload-pack';

/**
 * Follows an upstream's redirects the way git's `initial` mode would (on the ref advertisement,
 * the new repository URL being the target minus `/info/refs?service=git-upload-pack`), but with
 * every hop checked before it is contacted: http(s) only, never https → http, the host passing
 * `hostAllowed` (absent: the upstream's own host only). Answers the repository's final URL, a
 * refusal naming the refused host, or `undefined` when the upstream did not redirect (any more).
 */
export async function resolveUpstreamRedirect(
  upstreamURL: string,
  hostAllowed: ((host: string) => boolean) | undefined,
  signal?: AbortSignal,
): Promise<{ url: string } | { refused: string } | undefined> {
  let current: URL;
  try {
    current = new URL(upstreamURL.replace(/\/+$/, ''));
  } catch {
    return undefined;
  }
  const origin = current.host;
  const allowed = hostAllowed ?? ((host: string) => host === origin.toLowerCase());
  for (let hop = 0; hop <= MAX_HOPS; hop++) {
    const probe = new URL(`${current.href}${ADVERTISEMENT}`);
    let status: number;
    let location: string | undefined;
    try {
      const probeSignal = signal ? AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]) : AbortSignal.timeout(PROBE_TIMEOUT_MS);
      const res = await requestUpstream({ url: probe, method: 'GET', headers: { host: probe.host, 'user-agent': 'git/hoard' }, signal: probeSignal, timeoutMs: PROBE_TIMEOUT_MS });
      res.destroy();
      status = res.statusCode ?? 0;
      location = typeof res.headers.location === 'string' ? res.headers.location : undefined;
    } catch {
      // The probe failing is git's failure too; git's own error stands.
      return hop === 0 ? undefined : { url: current.href };
    }
    if (status < 300 || status > 399 || !location) return hop === 0 ? undefined : { url: current.href };
    if (hop === MAX_HOPS) return { refused: `upstream ${origin} redirected more than ${MAX_HOPS} times` };
    let target: URL;
    try {
      target = new URL(location, probe);
    } catch {
      return { refused: `upstream ${current.host} redirected to an invalid URL` };
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return { refused: `upstream ${current.host} redirected to a ${target.protocol} URL` };
    if (current.protocol === 'https:' && target.protocol === 'http:') return { refused: `upstream ${current.host} redirected from https to plain http (${target.host})` };
    if (!allowed(target.host.toLowerCase())) return { refused: `upstream ${current.host} redirected to ${target.host}, which is not in allowed-hosts` };
    const tail = `${target.pathname}${target.search}`;
    if (!tail.endsWith(ADVERTISEMENT) || tail === ADVERTISEMENT) {
      // The query of a signed or tokenised URL is nobody's business in an error message.
      return { refused: `upstream ${current.host} redirected to ${target.protocol}//${target.host}${target.pathname}, which is not a git repository URL` };
    }
    current = new URL(`${target.protocol}//${target.host}${target.pathname.slice(0, -'/info/refs'.length)}`);
  }
  return undefined;
}
