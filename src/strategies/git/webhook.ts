import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { answerAndClose, refuseRequest } from '../../http/answer-and-close.js';
import { sendText } from '../../http/router.js';
import { BodyIncompleteError, BodyTooLargeError, readBoundedBody } from '../../http/read-body.js';
import { InvalidGitPathError, parseGitPath, type GitRequestPath } from './paths.js';

/** GitHub caps webhook payloads at 25 MB; anything larger is not GitHub's. */
export const GITHUB_WEBHOOK_MAX_BYTES = 25 << 20;

/** GitHub events that can move, add or delete refs, and so refresh the mirror. */
export const REFRESH_EVENTS: ReadonlySet<string> = new Set(['push', 'create', 'delete']);

/** Refreshes mirrors on request; implemented by the git strategy. */
export interface MirrorRefresh {
  /**
   * Refreshes every mirror of the repository (the name compared case-insensitively, as forges
   * do) through its scheduler queue, without waiting for the fetch. Returns the upstream URLs
   * refreshed; none means the repository is not mirrored (nothing is cloned for it).
   */
  refresh(repository: GitRequestPath, reason: string): string[];
}

/**
 * True when `header` is `sha256=<hex>` and the hex is the HMAC-SHA256 of the raw `body` under
 * `secret`. The digests are compared in constant time.
 */
export function verifyGithubSignature(secret: string, body: Buffer, header: string | undefined): boolean {
  const match = /^sha256=([0-9a-f]{64})$/i.exec(header?.trim() ?? '');
  if (!match?.[1]) return false;
  const expected = createHmac('sha256', secret).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(match[1], 'hex'));
}

/**
 * The mirrors a GitHub payload's `repository` may be known as: host and path from `clone_url` and
 * `html_url` (GitHub Enterprise has its own host), and `full_name` on those hosts. Only names a
 * `/git/{host}/{repo}` request could address are kept.
 */
export function githubRepositoryNames(payload: unknown): GitRequestPath[] {
  const repository = (payload as { repository?: Record<string, unknown> } | null)?.repository;
  if (!repository || typeof repository !== 'object') return [];
  const found = new Map<string, GitRequestPath>();
  const add = (host: string, repoPath: string) => {
    try {
      const parsed = parseGitPath(`${host}/${repoPath}`);
      if (parsed.operation === '') found.set(`${parsed.host}/${parsed.repoPath}`.toLowerCase(), parsed);
    } catch (err) {
      if (!(err instanceof InvalidGitPathError)) throw err;
    }
  };
  const hosts = new Set<string>();
  for (const field of ['clone_url', 'html_url']) {
    const value = repository[field];
    if (typeof value !== 'string') continue;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      continue;
    }
    hosts.add(url.host);
    add(url.host, url.pathname.replace(/^\/+/, '').replace(/\/+$/, ''));
  }
  const fullName = repository['full_name'];
  if (typeof fullName === 'string') for (const host of hosts) add(host, fullName);
  return [...found.values()];
}

/** Parses a GitHub delivery body: JSON, or the form encoding with the JSON in `payload`. */
function parsePayload(req: IncomingMessage, body: Buffer): unknown {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  const text = type === 'application/x-www-form-urlencoded' ? (new URLSearchParams(body.toString('utf8')).get('payload') ?? '') : body.toString('utf8');
  return JSON.parse(text) as unknown;
}

/** Options of the GitHub webhook route. */
export interface GithubWebhookOptions {
  /** `strategy git { webhook-secret }`; undefined = the route is not enabled. */
  secret: string | undefined;
  mirrors: MirrorRefresh;
  logger: Logger;
}

/**
 * `POST /git/webhook/github`: a GitHub `push`, `create` or `delete` delivery refreshes the mirror of
 * its repository at once. Answers: 404 while no secret is configured (saying how to enable it);
 * 413 past 25 MiB; 401 for a missing or wrong `X-Hub-Signature-256` (checked before anything
 * else is looked at, and nothing changes); 400 without `X-GitHub-Event` or with a body that is
 * not a payload; 200 to `ping`, to other events (ignored) and for a repository hoard does not
 * mirror (nothing is cloned); 202 once the refresh is queued.
 */
export async function handleGithubWebhook(req: IncomingMessage, res: ServerResponse, opts: GithubWebhookOptions): Promise<void> {
  if (!opts.secret) {
    return refuseRequest(req, res, 404, 'GitHub webhooks are not enabled: set strategy git { webhook-secret = "${GITHUB_WEBHOOK_SECRET}" } to the secret of the GitHub webhook');
  }
  let body: Buffer;
  try {
    body = await readBoundedBody(req, GITHUB_WEBHOOK_MAX_BYTES);
  } catch (err) {
    if (err instanceof BodyTooLargeError) return answerAndClose(req, res, 413, err.message);
    if (err instanceof BodyIncompleteError) return;
    throw err;
  }
  const signature = req.headers['x-hub-signature-256'];
  if (!verifyGithubSignature(opts.secret, body, Array.isArray(signature) ? signature[0] : signature)) {
    opts.logger.warn({ client: req.socket.remoteAddress, delivery: req.headers['x-github-delivery'] }, 'GitHub webhook with a missing or wrong signature refused');
    return sendText(res, 401, 'missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the body with the webhook secret)');
  }
  const event = req.headers['x-github-event'];
  if (typeof event !== 'string' || event === '') return sendText(res, 400, 'missing X-GitHub-Event header');
  if (event === 'ping') return sendText(res, 200, 'pong');
  if (!REFRESH_EVENTS.has(event)) return sendText(res, 200, `event ${JSON.stringify(event)} ignored (only ${[...REFRESH_EVENTS].join(', ')} refresh a mirror)`);
  let payload: unknown;
  try {
    payload = parsePayload(req, body);
  } catch {
    return sendText(res, 400, 'the body is not a GitHub webhook payload (JSON, or form-encoded with a payload field)');
  }
  const names = githubRepositoryNames(payload);
  if (names.length === 0) return sendText(res, 400, 'the payload names no repository (repository.clone_url, html_url or full_name)');
  const refreshed = [...new Set(names.flatMap((n) => opts.mirrors.refresh(n, `GitHub ${event} webhook`)))];
  opts.logger.info({ event, delivery: req.headers['x-github-delivery'], repositories: names.map((n) => `${n.host}/${n.repoPath}`), refreshed }, 'GitHub webhook');
  answerRefresh(req, res, refreshed, names.map((n) => `${n.host}/${n.repoPath}`).join(', '));
}

/**
 * `POST /git/{host}/{repo}/refresh`: the same refresh for any forge (policy-gated by the server:
 * trusted callers only). 202 once queued, 200 when the repository is not mirrored.
 */
export function handleRefreshRequest(req: IncomingMessage, res: ServerResponse, repository: GitRequestPath, mirrors: MirrorRefresh): void {
  answerRefresh(req, res, mirrors.refresh(repository, 'refresh request'), `${repository.host}/${repository.repoPath}`);
}

/** The request body (none is expected) is left unread, so the answer goes as `refuseRequest` sends it. */
function answerRefresh(req: IncomingMessage, res: ServerResponse, refreshed: string[], name: string): void {
  if (refreshed.length === 0) return refuseRequest(req, res, 200, `not mirrored: ${name} (nothing to refresh; nothing was cloned)`);
  refuseRequest(req, res, 202, `refreshing ${refreshed.join(' ')}`);
}
