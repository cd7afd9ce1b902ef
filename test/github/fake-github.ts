import { generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** An RSA key pair for a test app, with the private key in both PEM encodings GitHub hands out. */
export interface TestAppKey {
  publicKey: KeyObject;
  pkcs1Pem: string;
  pkcs8Pem: string;
}

/** Generates a 2048-bit RSA key (GitHub App keys are RSA 2048). */
export function generateAppKey(): TestAppKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKey,
    pkcs1Pem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    pkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** Writes `pem` to a fresh temp file; returns its path (the caller removes the directory). */
export async function writeKeyFile(dir: string, name: string, pem: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, pem, { mode: 0o600 });
  return file;
}

/** One app the fake GitHub knows: its public key and where it is installed. */
export interface FakeApp {
  id: string;
  publicKey: KeyObject;
  /** Organisation login → installation id. */
  orgs?: Record<string, number>;
  /** User login → installation id. */
  users?: Record<string, number>;
}

/** One API request the fake saw (after its JWT was checked). */
export interface ApiRequest {
  method: string;
  path: string;
  /** The verified app id of a JWT-authenticated request. */
  appId?: string;
}

/** A minted installation token. */
export interface MintedToken {
  token: string;
  installation: number;
  expiresAt: number;
}

/** A loopback GitHub API: verifies app JWTs with the apps' public keys, serves lookups and mints tokens. */
export interface FakeGitHub {
  url: string;
  hostPort: string;
  requests: ApiRequest[];
  /** JWTs that failed verification, with the reason (a test asserts this stays empty). */
  rejectedJwts: string[];
  /** Every token minted, in order. */
  minted: MintedToken[];
  /** Lifetime of tokens minted from now on (default 60 min). */
  setTokenLifetime(ms: number): void;
  /** Holds token mints until the returned function is called (to make callers overlap). */
  holdMints(): () => void;
  /** Answer every request with this status (e.g. 500) until set back to undefined. */
  setFailure(status: number | undefined): void;
  /** Registers a private release asset for `GET /repos/<org>/<repo>/releases/tags/<tag>`. */
  addReleaseAsset(org: string, repo: string, tag: string, name: string, body: Buffer): void;
  /** Requests for releases and release assets, with the Authorization they carried. */
  assetRequests: Array<{ path: string; authorization: string | undefined }>;
  isValidToken(token: string): boolean;
  close(): Promise<void>;
}

function base64url(data: string): Buffer {
  return Buffer.from(data.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** Starts the fake API on 127.0.0.1:0. */
export async function startFakeGitHub(apps: FakeApp[]): Promise<FakeGitHub> {
  const requests: ApiRequest[] = [];
  const rejectedJwts: string[] = [];
  const minted: MintedToken[] = [];
  const assetRequests: FakeGitHub['assetRequests'] = [];
  const releases = new Map<string, Array<{ id: number; name: string; body: Buffer }>>();
  const assets = new Map<number, { key: string; body: Buffer }>();
  let lifetimeMs = 60 * 60_000;
  let hold: Promise<void> | undefined;
  let failure: number | undefined;

  /** Checks a Bearer app JWT: RS256 signature by a known app's key, iss, iat and exp as GitHub wants them. */
  const verifyJwt = (authorization: string | undefined): FakeApp | string => {
    const m = /^Bearer (.+)$/.exec(authorization ?? '');
    if (!m?.[1]) return 'no bearer token';
    const parts = m[1].split('.');
    if (parts.length !== 3) return 'not a JWT';
    const [h = '', p = '', s = ''] = parts;
    let header: { alg?: string };
    let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
    try {
      header = JSON.parse(base64url(h).toString()) as typeof header;
      claims = JSON.parse(base64url(p).toString()) as typeof claims;
    } catch {
      return 'undecodable JWT';
    }
    if (header.alg !== 'RS256') return `alg ${header.alg}`;
    const app = apps.find((a) => String(a.id) === String(claims.iss));
    if (!app) return `unknown iss ${String(claims.iss)}`;
    if (!verify('sha256', Buffer.from(`${h}.${p}`), app.publicKey, base64url(s))) return 'bad signature';
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number') return 'iat/exp missing';
    if (claims.iat > now + 1) return 'iat in the future';
    if (claims.exp <= now) return 'expired';
    if (claims.exp - claims.iat > 600) return 'exp more than 10 minutes after iat';
    if (claims.exp > now + 600) return 'exp more than 10 minutes ahead';
    return app;
  };

  const validToken = (token: string) => minted.some((t) => t.token === token && t.expiresAt > Date.now());

  const send = (res: http.ServerResponse, status: number, body?: unknown) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  };

  const server = http.createServer((req, res) => {
    void (async () => {
      for await (const _ of req) void _;
      const url = new URL(req.url ?? '/', 'http://x');
      if (failure) return send(res, failure, { message: 'induced failure' });
      const release = /^\/repos\/([^/]+)\/([^/]+)\/releases\/(?:tags\/(.+)|assets\/(\d+))$/.exec(url.pathname);
      if (release) {
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
        assetRequests.push({ path: url.pathname, authorization: req.headers.authorization });
        if (!validToken(bearer)) return send(res, 404, { message: 'Not Found' });
        if (release[4]) {
          const asset = assets.get(Number(release[4]));
          if (!asset || req.headers.accept !== 'application/octet-stream') return send(res, 404, { message: 'Not Found' });
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': asset.body.length }).end(asset.body);
          return;
        }
        const list = releases.get(`${release[1]}/${release[2]}/${decodeURIComponent(release[3] ?? '')}`);
        if (!list) return send(res, 404, { message: 'Not Found' });
        return send(res, 200, { assets: list.map((a) => ({ id: a.id, name: a.name, url: `http://${hostPort}/repos/${release[1]}/${release[2]}/releases/assets/${a.id}` })) });
      }
      const verdict = verifyJwt(req.headers.authorization);
      if (typeof verdict === 'string') {
        rejectedJwts.push(`${req.method} ${url.pathname}: ${verdict}`);
        return send(res, 401, { message: verdict });
      }
      if (req.headers.accept !== 'application/vnd.github+json' || req.headers['x-github-api-version'] !== '2022-11-28') {
        rejectedJwts.push(`${req.method} ${url.pathname}: missing API headers`);
        return send(res, 415, { message: 'Accept and X-GitHub-Api-Version expected' });
      }
      requests.push({ method: req.method ?? '', path: url.pathname, appId: verdict.id });
      const lookup = /^\/(orgs|users)\/([^/]+)\/installation$/.exec(url.pathname);
      if (req.method === 'GET' && lookup) {
        const table = lookup[1] === 'orgs' ? verdict.orgs : verdict.users;
        const id = table?.[decodeURIComponent(lookup[2] ?? '')];
        return id ? send(res, 200, { id, app_id: Number(verdict.id) }) : send(res, 404, { message: 'Not Found' });
      }
      const mint = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(url.pathname);
      if (req.method === 'POST' && mint) {
        const installation = Number(mint[1]);
        const owned = [...Object.values(verdict.orgs ?? {}), ...Object.values(verdict.users ?? {})].includes(installation);
        if (!owned) return send(res, 404, { message: 'Not Found' });
        if (hold) await hold;
        const token: MintedToken = { token: `ghs_${randomBytes(18).toString('hex')}`, installation, expiresAt: Date.now() + lifetimeMs };
        minted.push(token);
        return send(res, 201, { token: token.token, expires_at: new Date(token.expiresAt).toISOString() });
      }
      send(res, 404, { message: 'Not Found' });
    })().catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500).end(err.message);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const hostPort = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  let nextAsset = 1;
  return {
    url: `http://${hostPort}`,
    hostPort,
    requests,
    rejectedJwts,
    minted,
    assetRequests,
    setTokenLifetime: (ms) => {
      lifetimeMs = ms;
    },
    holdMints: () => {
      let release!: () => void;
      hold = new Promise<void>((resolve) => (release = resolve));
      return () => {
        hold = undefined;
        release();
      };
    },
    setFailure: (status) => {
      failure = status;
    },
    addReleaseAsset: (org, repo, tag, name, body) => {
      const key = `${org}/${repo}/${tag}`;
      const id = nextAsset++;
      releases.set(key, [...(releases.get(key) ?? []), { id, name, body }]);
      assets.set(id, { key, body });
    },
    isValidToken: validToken,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A temp directory for key files. */
export function keyDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'hoard-gh-keys-'));
}
