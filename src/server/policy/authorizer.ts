import { promises as fs } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { isAllowed, isAllowedByRoute, type TrustedRemote } from '../authz.js';
import type { TrustedOnlyRule } from '../../http/strategy.js';
import { compilePolicy, DECISION_ENTRYPOINT, ENTRYPOINT, PolicyCompileError, wasmFromBundle } from './opa-compiler.js';

/** A decision on one request. `error` is answered 500 `policy evaluation error` (cachew §7.1). */
export type Decision = 'allow' | 'deny' | 'error';

/** Decides whether a request may proceed; `path` is the decoded path the router matches. */
export interface Authorizer {
  readonly kind: 'default' | 'opa';
  decide(req: IncomingMessage, path: string): Decision;
  /**
   * After routing: whether a request its route declares trusted-only may proceed. Only the
   * default policy has one; an OPA policy decides everything in `decide` (it sees method and path).
   */
  decideRoute?(req: IncomingMessage, path: string, rule: TrustedOnlyRule): Decision;
}

/** The `opa` block as the config loader resolved it. */
export interface OpaSettings {
  policy?: string | undefined;
  'policy-file'?: string | undefined;
  'policy-wasm'?: string | undefined;
  bundle?: string | undefined;
  data?: string | undefined;
  'data-file'?: string | undefined;
  test?: string | undefined;
}

/**
 * The built-in default policy as Rego, equivalent to `isAllowed`: used only when a `test` module
 * is given without a policy, so the tests run against exactly what is then enforced.
 */
export const DEFAULT_POLICY_REGO = `package cachew.authz

default allow := false

loopback if startswith(input.remote_addr, "127.")
loopback if startswith(input.remote_addr, "[::1]:")
loopback if startswith(input.remote_addr, "[::ffff:127.")

allow if loopback
allow if {
  not lower(input.path[0]) in {"api", "admin"}
  not git_refresh
  not status_page
}

# GET / (the status page, a trusted-only route).
status_page if count(input.path) == 0

# POST /git/{host}/{repo}/refresh (the git strategy's trusted-only route).
git_refresh if {
  input.method == "POST"
  input.path[0] == "git"
  input.path[count(input.path) - 1] == "refresh"
}
`;

/** The built-in policy: `/api`, `/admin` and routes' trusted-only requests from trusted (loopback) callers only. */
export function defaultAuthorizer(trusted?: TrustedRemote): Authorizer {
  return {
    kind: 'default',
    decide: (req, path) => (isAllowed(path, req.socket?.remoteAddress, trusted) ? 'allow' : 'deny'),
    decideRoute: (req, path, rule) => (isAllowedByRoute(rule, req.method ?? 'GET', path, req.socket?.remoteAddress, trusted) ? 'allow' : 'deny'),
  };
}

/** The input document of cachew §7.1, built from a request and its decoded path. */
export function policyInput(req: IncomingMessage, path: string): { method: string; path: string[]; headers: Record<string, string>; remote_addr: string } {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  const headers: Record<string, string> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    // cachew's Go server drops Host from the header map; policies written for it never see it.
    if (name !== 'host' && values?.[0] !== undefined) headers[name] = values[0];
  }
  const address = req.socket?.remoteAddress ?? '';
  const port = req.socket?.remotePort ?? 0;
  return { method: req.method ?? 'GET', path: trimmed === '' ? [] : trimmed.split('/'), headers, remote_addr: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}` };
}

/** An authorizer evaluating a compiled Rego policy in-process (WebAssembly). */
export function opaAuthorizer(policy: LoadedPolicy, entrypoint: string): Authorizer {
  return {
    kind: 'opa',
    decide(req, path) {
      try {
        const results = policy.evaluate(policyInput(req, path), entrypoint) as Array<{ result?: unknown }>;
        // Undefined (no result) and non-boolean results deny.
        return results[0]?.result === true ? 'allow' : 'deny';
      } catch {
        return 'error';
      }
    },
  };
}

function exclusive(cfg: OpaSettings, names: Array<keyof OpaSettings>): void {
  const set = names.filter((n) => cfg[n] !== undefined);
  if (set.length > 1) throw new PolicyCompileError(`opa: set only one of ${set.join(' and ')}`);
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new PolicyCompileError(`opa: cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

function parseData(text: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new PolicyCompileError(`opa: ${where} is not valid JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new PolicyCompileError(`opa: ${where} must be a JSON object (it becomes data.*)`);
  return value as Record<string, unknown>;
}

/**
 * Builds the request authorizer from the `opa` block. Without a policy the built-in default
 * applies; with one, the policy is compiled (or loaded precompiled), its tests run, and it is
 * enforced on every request. Anything that would leave a configured policy unenforced (no `opa`
 * binary, a bad bundle, failing tests, data that is not an object) fails start-up instead.
 */
export async function createAuthorizer(cfg: OpaSettings, opts: { trusted?: TrustedRemote | undefined; onTestReport?: (report: string) => void } = {}): Promise<Authorizer> {
  exclusive(cfg, ['policy', 'policy-file', 'policy-wasm', 'bundle']);
  exclusive(cfg, ['data', 'data-file']);
  const data = cfg.data !== undefined ? parseData(cfg.data, 'opa { data }') : cfg['data-file'] !== undefined ? parseData(await readText(cfg['data-file'], 'data-file'), cfg['data-file']) : undefined;
  const precompiled = cfg['policy-wasm'] ?? cfg.bundle;
  if (precompiled !== undefined && cfg.test !== undefined) {
    throw new PolicyCompileError('opa: a test module needs the policy source (policy or policy-file); a precompiled policy-wasm or bundle cannot be tested at start-up');
  }
  let source = cfg.policy ?? (cfg['policy-file'] !== undefined ? await readText(cfg['policy-file'], 'policy-file') : undefined);
  if (source === undefined && precompiled === undefined) {
    if (cfg.test === undefined) {
      if (data !== undefined) throw new PolicyCompileError('opa: data is set but there is no policy to use it (set policy or policy-file)');
      return defaultAuthorizer(opts.trusted);
    }
    source = DEFAULT_POLICY_REGO;
  }
  let wasm: Buffer;
  if (source !== undefined) {
    const compiled = await compilePolicy({ policy: source, test: cfg.test, data });
    if (compiled.testReport !== undefined) opts.onTestReport?.(compiled.testReport);
    wasm = compiled.wasm;
  } else if (cfg.bundle !== undefined) {
    wasm = await wasmFromBundle(cfg.bundle);
  } else {
    wasm = await fs.readFile(cfg['policy-wasm'] as string).catch((err: Error) => {
      throw new PolicyCompileError(`opa: cannot read policy-wasm ${cfg['policy-wasm']}: ${err.message}`);
    });
  }
  let policy: LoadedPolicy;
  try {
    policy = await loadPolicy(wasm);
  } catch (err) {
    throw new PolicyCompileError(`opa: the compiled policy does not load: ${(err as Error).message}`);
  }
  // hoard's own builds answer through the wrapper; a bundle built by hand answers cachew's query.
  const entrypoints = Object.keys(policy.entrypoints ?? {});
  const entrypoint = [DECISION_ENTRYPOINT, ENTRYPOINT].find((e) => entrypoints.includes(e));
  if (!entrypoint) {
    throw new PolicyCompileError(`opa: the compiled policy has no ${ENTRYPOINT} entrypoint (entrypoints: ${entrypoints.join(', ') || 'none'}); build it with -e ${ENTRYPOINT}`);
  }
  if (data !== undefined) policy.setData(data);
  return opaAuthorizer(policy, entrypoint);
}
