import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson, sendText } from '../../http/router.js';
import { withoutServerPaths } from '../../http/error-answer.js';
import { answerAndClose } from '../../http/answer-and-close.js';
import { holdingConnection } from '../../http/hold-connection.js';
import { withClientAbort } from '../../http/request-abort.js';
import { BodyIncompleteError, BodyTooLargeError, readBoundedBody } from '../../http/read-body.js';
import { COMMIT_SHA, mirrorNotReadyAnswer, sendAnswer } from './artifacts.js';
import type { Mirrors } from './mirrors.js';
import type { Repository } from './repository.js';
import { upstreamLacksRepository } from './upstream-missing.js';

/** A ref name ensure-refs accepts. */
const REF = /^refs\/[A-Za-z0-9._\/-]+$/;
/** Largest ensure-refs request body (a JSON list of refs and commits). */
const ENSURE_REFS_MAX_BODY = 1 << 20;

/**
 * `POST …/ensure-refs` (reference git §2.7): makes sure the mirror holds the given refs (at the
 * given commits) and commits, fetching once when it does not, and answers what it holds.
 */
export async function handleEnsureRefs(req: IncomingMessage, res: ServerResponse, repo: Repository, mirrors: Pick<Mirrors, 'ensureReady'>): Promise<void> {
  let body: { refs?: Record<string, string>; commits?: string[] };
  try {
    let raw: Buffer;
    try {
      raw = await readBoundedBody(req, ENSURE_REFS_MAX_BODY);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return answerAndClose(req, res, 413, `request body too large: ensure-refs takes at most ${ENSURE_REFS_MAX_BODY} bytes`);
      if (err instanceof BodyIncompleteError) return;
      throw err;
    }
    body = JSON.parse(raw.toString() || 'null') as typeof body;
    if (!body || typeof body !== 'object') throw new Error('expected a JSON object');
  } catch (err) {
    return sendText(res, 400, `invalid request body: ${(err as Error).message}`);
  }
  const refs = body.refs ?? {};
  const commits = body.commits ?? [];
  if (typeof refs !== 'object' || !Array.isArray(commits)) return sendText(res, 400, 'invalid request body: refs must be an object and commits an array');
  if (Object.keys(refs).length === 0 && commits.length === 0) return sendText(res, 400, 'at least one of refs or commits must be provided');
  for (const [ref, sha] of Object.entries(refs)) {
    if (!REF.test(ref) || ref.includes('..') || ref.includes('//')) return sendText(res, 400, `invalid ref name ${JSON.stringify(ref)}`);
    if (typeof sha !== 'string' || (sha !== '' && !COMMIT_SHA.test(sha))) return sendText(res, 400, `invalid SHA for ${ref}: ${JSON.stringify(sha)}`);
  }
  for (const sha of commits) if (typeof sha !== 'string' || !COMMIT_SHA.test(sha)) return sendText(res, 400, `invalid commit SHA ${JSON.stringify(sha)}`);
  await withClientAbort(res, (signal) => ensureAndAnswer(res, repo, mirrors, refs, commits, signal));
}

/** Makes the mirror Ready, checks the refs and commits, fetches once if needed, and answers. */
async function ensureAndAnswer(res: ServerResponse, repo: Repository, mirrors: Pick<Mirrors, 'ensureReady'>, refs: Record<string, string>, commits: string[], signal: AbortSignal): Promise<void> {
  try {
    await holdingConnection(res, () => mirrors.ensureReady(repo, signal));
  } catch (err) {
    return sendAnswer(res, mirrorNotReadyAnswer(err));
  }
  const check = async () => {
    const local: Record<string, string> = {};
    for (const ref of Object.keys(refs)) {
      local[ref] = (await repo.git(['-C', repo.mirrorDir, 'rev-parse', '-q', '--verify', `${ref}^{commit}`], { timeoutMs: 30_000 }).catch(() => '')).trim();
    }
    const missing: string[] = [];
    for (const sha of commits) {
      const ok = await repo.git(['-C', repo.mirrorDir, 'cat-file', '-e', `${sha}^{commit}`], { timeoutMs: 30_000 }).then(() => true, () => false);
      if (!ok) missing.push(sha);
    }
    const satisfied = Object.entries(refs).every(([ref, want]) => local[ref] && (want === '' || local[ref] === want)) && missing.length === 0;
    return { local, missing, satisfied };
  };
  let result = await check();
  let fetched = false;
  if (!result.satisfied) {
    try {
      // Verified: the answer must reflect upstream as of now, not a fetch that was already running.
      await repo.fetch({ verified: true, signal });
      fetched = true;
      repo.invalidateRefCheck();
    } catch (err) {
      if (upstreamLacksRepository(err)) return sendText(res, 404, `repository not found: the upstream has no repository ${repo.upstreamURL}`);
      return sendText(res, 502, withoutServerPaths(`ensure refs: ${(err as Error).message}`));
    }
    result = await check();
  }
  sendJson(res, 200, { refs: result.local, missing_commits: result.missing, fetched });
}
