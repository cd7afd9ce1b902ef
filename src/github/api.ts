/** Largest GitHub API answer read (installation and token answers are a few KiB). */
const MAX_ANSWER_BYTES = 1 << 20;
/** A hung API must not hold a forwarded git read for long: the read then goes on without a token. */
const API_TIMEOUT_MS = 15_000;

/** A GitHub API answer: status and parsed JSON body (undefined when empty or not JSON). */
export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** The API failed in a way that is not an answer about the org (transport, a redirect, a huge body). */
export class GitHubApiError extends Error {}

/**
 * One GitHub REST call with a Bearer credential and the headers GitHub documents
 * (`Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28`). Redirects are
 * not followed: a Bearer JWT must never travel to another host. The body is read up to 1 MiB.
 */
export async function githubApi(base: string, method: 'GET' | 'POST', path: string, bearer: string, signal?: AbortSignal): Promise<ApiAnswer> {
  const url = `${base.replace(/\/+$/, '')}${path}`;
  const deadline = AbortSignal.timeout(API_TIMEOUT_MS);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      redirect: 'manual',
      signal: signal ? AbortSignal.any([signal, deadline]) : deadline,
      headers: {
        accept: 'application/vnd.github+json',
        authorization: `Bearer ${bearer}`,
        'user-agent': 'hoard',
        'x-github-api-version': '2022-11-28',
      },
    });
  } catch (err) {
    throw new GitHubApiError(`GitHub API ${method} ${url} failed: ${(err as Error).message}`);
  }
  if (res.status >= 300 && res.status < 400) {
    await res.body?.cancel();
    throw new GitHubApiError(`GitHub API ${method} ${url} answered a redirect (${res.status}); hoard does not follow it with app credentials`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (res.body) {
    // Leaving the loop early cancels the stream, so an oversized answer is not read to its end.
    for await (const chunk of res.body) {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) break;
      chunks.push(chunk);
    }
  }
  if (size > MAX_ANSWER_BYTES) throw new GitHubApiError(`GitHub API ${method} ${url} answered more than ${MAX_ANSWER_BYTES} bytes`);
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, body };
}
