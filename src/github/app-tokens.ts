import type { Logger } from 'pino';
import { SingleFlight } from '../util/single-flight.js';
import { githubApi, GitHubApiError } from './api.js';
import { readAppPrivateKey, signAppJwt, type AppJwt } from './app-jwt.js';
import type { GitHubTokenSource } from './token-source.js';

/** One `github-app` block as the config schema validated it. */
export interface GitHubAppBlock {
  'app-id'?: string | undefined;
  'private-key-path'?: string | undefined;
  installations?: Record<string, string> | undefined;
  'fallback-org'?: string | undefined;
  'api-url': string;
  'git-host'?: string | undefined;
}

/** Tunables (defaults suit GitHub; tests shorten the negative cache). */
export interface AppTokensOptions {
  logger: Logger;
  /**
   * A cached installation token is replaced once less than this remains (default 30 min of
   * GitHub's 1 h): a token handed to a long git clone must not expire in the middle of it.
   */
  refreshMarginMs?: number;
  /** How long "no app is installed for this org" is remembered before asking GitHub again (default 60 s). */
  unknownOrgTtlMs?: number;
}

const DEFAULT_REFRESH_MARGIN_MS = 30 * 60_000;
const DEFAULT_UNKNOWN_ORG_TTL_MS = 60_000;
/** An app JWT is re-signed when less than this is left of its 9.5 min. */
const JWT_REUSE_MARGIN_MS = 60_000;
/** Least lifetime left for an old token to stand in when its refresh failed. */
const MIN_USABLE_MS = 60_000;
/** Negative entries kept at most; expired ones are swept when the map grows past this. */
const MAX_UNKNOWN_ORGS = 10_000;
/** GitHub org and user names: what may appear in `/orgs/<org>/installation`. */
const ORG_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98})$/;

/** An installation token and when it expires (epoch ms). */
interface InstallationToken {
  token: string;
  expiresAtMs: number;
}

/** The installation of one app that serves one org. */
interface Installation {
  app: GitHubApp;
  id: number;
}

/** The GitHub host git URLs use for an API base: github.com for api.github.com, else the API's host (Enterprise). */
function defaultGitHost(apiUrl: URL): string {
  return apiUrl.host === 'api.github.com' ? 'github.com' : apiUrl.host;
}

/** One configured GitHub App: its key, its API and the JWT it signs. */
class GitHubApp {
  private jwt: AppJwt | undefined;
  private readonly signing = new SingleFlight<AppJwt>();

  constructor(
    readonly index: number,
    readonly appId: string,
    private readonly pkcs8Pem: string,
    readonly apiUrl: string,
    readonly gitHost: string,
    readonly fallbackOrg: string | undefined,
  ) {}

  private async bearer(): Promise<string> {
    if (this.jwt && this.jwt.expiresAtMs - Date.now() > JWT_REUSE_MARGIN_MS) return this.jwt.token;
    const jwt = await this.signing.run('jwt', () => signAppJwt(this.appId, this.pkcs8Pem));
    this.jwt = jwt;
    return jwt.token;
  }

  /**
   * The installation id of this app for `org`: `/orgs/<org>/installation`, then
   * `/users/<org>/installation` (a personal account). Undefined when both answer 404; any other
   * answer is an error (it says nothing about the org).
   */
  async findInstallation(org: string): Promise<number | undefined> {
    const bearer = await this.bearer();
    for (const kind of ['orgs', 'users']) {
      const answer = await githubApi(this.apiUrl, 'GET', `/${kind}/${encodeURIComponent(org)}/installation`, bearer);
      if (answer.status === 404) continue;
      const id = (answer.body as { id?: unknown } | undefined)?.id;
      if (answer.status === 200 && typeof id === 'number' && Number.isSafeInteger(id) && id > 0) return id;
      throw new GitHubApiError(`GitHub App ${this.appId}: ${kind}/${org}/installation answered ${answer.status}${answer.status === 200 ? ' without an installation id' : ''}`);
    }
    return undefined;
  }

  /** Mints an installation token (`POST /app/installations/<id>/access_tokens`, 201 `{token, expires_at}`). */
  async mintToken(installationId: number): Promise<InstallationToken | 'gone'> {
    const answer = await githubApi(this.apiUrl, 'POST', `/app/installations/${installationId}/access_tokens`, await this.bearer());
    // The app was uninstalled (or the id moved) since discovery: the caller discovers again.
    if (answer.status === 404) return 'gone';
    const body = answer.body as { token?: unknown; expires_at?: unknown } | undefined;
    const expiresAtMs = typeof body?.expires_at === 'string' ? Date.parse(body.expires_at) : NaN;
    if (answer.status !== 201 || typeof body?.token !== 'string' || !body.token || !Number.isFinite(expiresAtMs)) {
      throw new GitHubApiError(`GitHub App ${this.appId}: minting a token for installation ${installationId} answered ${answer.status}${answer.status === 201 ? ' without token and expires_at' : ''}`);
    }
    return { token: body.token, expiresAtMs };
  }
}

/**
 * GitHub App installation tokens for every configured app (cachew §7.2): per org, the first app
 * (in file order) installed there; tokens cached per (app, org) and replaced once less than the
 * refresh margin is left, one mint in flight per (app, org) however many callers wait. An org no
 * app is installed on gets the token of the first app's `fallback-org` that declares one, looked
 * up on demand (it need not have been asked for before), and is remembered as unknown for a
 * short while so a stream of requests does not repeat the lookups.
 */
export class GitHubAppTokens implements GitHubTokenSource {
  private readonly installations = new Map<string, Installation>();
  private readonly unknown = new Map<string, number>();
  private readonly tokens = new Map<string, InstallationToken>();
  private readonly discovery = new SingleFlight<Installation | undefined>();
  private readonly minting = new SingleFlight<string | undefined>();
  private readonly refreshMarginMs: number;
  private readonly unknownOrgTtlMs: number;
  private readonly logger: Logger;

  constructor(
    private readonly apps: GitHubApp[],
    opts: AppTokensOptions,
  ) {
    this.logger = opts.logger;
    this.refreshMarginMs = opts.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
    this.unknownOrgTtlMs = opts.unknownOrgTtlMs ?? DEFAULT_UNKNOWN_ORG_TTL_MS;
  }

  covers(host: string): boolean {
    return this.apps.some((app) => app.gitHost === host.toLowerCase());
  }

  async tokenFor(host: string, org: string, signal?: AbortSignal): Promise<string | undefined> {
    const apps = this.apps.filter((app) => app.gitHost === host.toLowerCase());
    if (apps.length === 0 || !ORG_NAME.test(org)) return undefined;
    // GitHub names are case-insensitive: one cache entry per org however clients spell it.
    const name = org.toLowerCase();
    const found = await this.installationOf(`${host}\n${name}`, apps, name, signal);
    if (found) return this.token(found, name, signal);
    const fallbackApp = apps.find((app) => app.fallbackOrg);
    if (!fallbackApp?.fallbackOrg) return undefined;
    const fallbackOrg = fallbackApp.fallbackOrg.toLowerCase();
    // Discovered on the app that declares it, so it works before anyone asked for that org itself.
    const fallback = await this.installationOf(`fallback ${fallbackApp.index}\n${fallbackOrg}`, [fallbackApp], fallbackOrg, signal);
    if (!fallback) {
      this.logger.warn({ appId: fallbackApp.appId, fallbackOrg }, 'github-app: the fallback-org has no installation of its app');
      return undefined;
    }
    return this.token(fallback, fallbackOrg, signal);
  }

  /** The cached installation for `key`, or a discovery (one per key at a time) over `apps` in order. */
  private async installationOf(key: string, apps: GitHubApp[], org: string, signal: AbortSignal | undefined): Promise<Installation | undefined> {
    const known = this.installations.get(key);
    if (known) return known;
    const until = this.unknown.get(key);
    if (until !== undefined) {
      if (until > Date.now()) return undefined;
      this.unknown.delete(key);
    }
    return this.discovery.run(
      key,
      async () => {
        let failure: unknown;
        for (const app of apps) {
          try {
            const id = await app.findInstallation(org);
            if (id === undefined) continue;
            const found = { app, id };
            this.installations.set(key, found);
            this.logger.info({ org, appId: app.appId, installation: id }, 'github-app: installation found');
            return found;
          } catch (err) {
            failure ??= err;
          }
        }
        // An API failure is no answer about the org: not remembered, the next caller asks again.
        if (failure) throw failure;
        this.rememberUnknown(key);
        this.logger.info({ org, apps: apps.map((a) => a.appId) }, 'github-app: no installation for org');
        return undefined;
      },
      signal,
    );
  }

  private rememberUnknown(key: string): void {
    if (this.unknown.size >= MAX_UNKNOWN_ORGS) {
      const now = Date.now();
      for (const [k, until] of this.unknown) if (until <= now) this.unknown.delete(k);
      if (this.unknown.size >= MAX_UNKNOWN_ORGS) this.unknown.delete(this.unknown.keys().next().value as string);
    }
    this.unknown.set(key, Date.now() + this.unknownOrgTtlMs);
  }

  /** The cached token of (app, org), or one mint shared by every caller that needs a new one. */
  private async token(found: Installation, org: string, signal: AbortSignal | undefined): Promise<string | undefined> {
    const key = `${found.app.index}\n${org}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAtMs - Date.now() > this.refreshMarginMs) return cached.token;
    const minting = this.minting.run(
      key,
      async () => {
        const minted = await found.app.mintToken(found.id);
        if (minted === 'gone') {
          // Forget the installation everywhere it was cached; the next request discovers again.
          for (const [k, v] of this.installations) if (v.app === found.app && v.id === found.id) this.installations.delete(k);
          this.tokens.delete(key);
          throw new GitHubApiError(`GitHub App ${found.app.appId}: installation ${found.id} for ${org} no longer exists`);
        }
        this.tokens.set(key, minted);
        this.logger.debug({ org, appId: found.app.appId, expiresAt: new Date(minted.expiresAtMs).toISOString() }, 'github-app: installation token minted');
        return minted.token;
      },
      signal,
    );
    if (!cached) return minting;
    // A refresh that fails while the old token still has a while to live keeps the old one.
    return minting.catch((err: unknown) => {
      if (signal?.aborted || cached.expiresAtMs - Date.now() <= MIN_USABLE_MS) throw err;
      this.logger.warn({ err: (err as Error).message, org, appId: found.app.appId }, 'github-app: token refresh failed; using the current token until it expires');
      return cached.token;
    });
  }
}

/**
 * Builds the token source from the `github-app` blocks, reading and checking every private key
 * now (a bad key stops the start with a message naming its file). Undefined when no block names
 * an app. Start-up warnings: a block with neither app-id nor private-key-path is ignored (as
 * cachew does), and `installations` is ignored (deprecated in cachew: installations are
 * discovered per org).
 */
export function createGitHubAppTokens(blocks: GitHubAppBlock[], opts: AppTokensOptions): GitHubAppTokens | undefined {
  const apps: GitHubApp[] = [];
  blocks.forEach((block, position) => {
    const appId = block['app-id'] ?? '';
    const keyPath = block['private-key-path'] ?? '';
    if (!appId && !keyPath) {
      opts.logger.warn(`github-app block #${position + 1}: neither app-id nor private-key-path is set; the block is ignored`);
      return;
    }
    if (!appId || !keyPath) throw new Error(`github-app block #${position + 1}: ${appId ? 'private-key-path' : 'app-id'} is required when ${appId ? 'app-id' : 'private-key-path'} is set`);
    let api: URL;
    try {
      api = new URL(block['api-url']);
    } catch {
      throw new Error(`github-app ${appId}: api-url is not a URL: ${JSON.stringify(block['api-url'])}`);
    }
    if (api.protocol !== 'https:' && api.protocol !== 'http:') throw new Error(`github-app ${appId}: api-url must be http(s): ${JSON.stringify(block['api-url'])}`);
    if (block.installations !== undefined) {
      opts.logger.warn({ appId }, `github-app ${appId}: installations is deprecated and ignored (as in cachew): each org's installation is discovered through the GitHub API`);
    }
    const pem = readAppPrivateKey(keyPath);
    const gitHost = (block['git-host'] || defaultGitHost(api)).toLowerCase();
    const fallbackOrg = block['fallback-org'] || undefined;
    if (fallbackOrg && !ORG_NAME.test(fallbackOrg)) throw new Error(`github-app ${appId}: fallback-org is not a GitHub organisation name: ${JSON.stringify(fallbackOrg)}`);
    apps.push(new GitHubApp(apps.length, appId, pem, api.href.replace(/\/+$/, ''), gitHost, fallbackOrg));
    opts.logger.info({ appId, api: api.origin, gitHost, fallbackOrg }, 'github-app: tokens enabled');
  });
  return apps.length ? new GitHubAppTokens(apps, opts) : undefined;
}
