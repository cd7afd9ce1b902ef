import { requestUpstream } from './upstream.js';

/**
 * Config for server-side git that talks to upstreams: redirects are never followed. git offers
 * no way to check where a redirect leads before it connects, so following one (`true`, or
 * `initial`) would let an allowed upstream send hoard to any host; with `false` every hop is the
 * one `allowed-hosts` already checked.
 */
export const NO_REDIRECTS: readonly string[] = ['-c', 'http.followRedirects=false'];

/** git's wording when it met a redirect it was told not to follow. */
const REDIRECT_REFUSED = /returned error: 30[0-8]\b/;
const PROBE_TIMEOUT_MS = 10_000;

/**
 * Turns git's bare "returned error: 302" into an error naming where the upstream redirected to,
 * by asking the (allowed) upstream once for its ref advertisement without following anything.
 * Any other failure, or a probe that learns nothing, returns `err` unchanged.
 */
export async function explainRedirectFailure(err: Error, upstreamURL: string, hostAllowed: ((host: string) => boolean) | undefined, signal?: AbortSignal): Promise<Error> {
  if (!REDIRECT_REFUSED.test(err.message)) return err;
  let upstream: URL;
  try {
    upstream = new URL(upstreamURL);
  } catch {
    return err;
  }
  let location: string | undefined;
  try {
    const probe = new URL(`${upstream.href.replace(/\/+$/, '')}/info/refs?service=git-upload-pack`);
    const probeSignal = signal ? AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]) : AbortSignal.timeout(PROBE_TIMEOUT_MS);
    const res = await requestUpstream({ url: probe, method: 'GET', headers: { host: probe.host, 'user-agent': 'git/hoard' }, signal: probeSignal, timeoutMs: PROBE_TIMEOUT_MS });
    res.destroy();
    const status = res.statusCode ?? 0;
    if (status >= 300 && status <= 399 && res.headers.location) location = new URL(res.headers.location, probe).href;
  } catch {
    // The probe only improves the message; git's own error stands.
  }
  if (!location) return new Error(`upstream ${upstream.host} answered a redirect, which hoard's server-side git does not follow: ${err.message}`, { cause: err });
  const target = new URL(location);
  // The query of a signed or tokenised URL is nobody's business in a log line.
  const shown = `${target.protocol}//${target.host}${target.pathname}`;
  if (target.host !== upstream.host && hostAllowed && !hostAllowed(target.host.toLowerCase())) {
    return new Error(`upstream ${upstream.host} redirected to ${target.host}, which is not in allowed-hosts`, { cause: err });
  }
  return new Error(`upstream ${upstream.host} redirected to ${shown}; hoard's server-side git follows no redirects (a renamed or moved repository: use its new URL)`, { cause: err });
}
