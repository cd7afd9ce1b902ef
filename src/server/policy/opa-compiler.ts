import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChildProcessError, runChild, startChild } from '../../util/process.js';
import { withScratchDir } from '../../util/scratch.js';

/** The query every policy answers (cachew §7.1): package `cachew.authz`, boolean rule `allow`. */
export const ENTRYPOINT = 'cachew/authz/allow';

/**
 * What hoard compiles and evaluates: a wrapper that is true only when the policy's `allow` is
 * the boolean true. A policy without `allow` still compiles (and denies everything, as in
 * cachew), where building it with `-e cachew/authz/allow` would fail.
 */
export const DECISION_ENTRYPOINT = 'hoard/decision/allow';
const DECISION_MODULE = `package hoard.decision

default allow := false

allow if data.cachew.authz.allow == true
`;

/** Deadline of one `opa build` or `opa test` run: both take well under a second for real policies. */
const OPA_TIMEOUT_MS = 60_000;

/** Why an `opa` command could not run or refused the policy; the message is shown at start-up. */
export class PolicyCompileError extends Error {}

const HOW_TO_INSTALL =
  'install the opa binary on PATH (https://www.openpolicyagent.org/docs/#running-opa, or `go install github.com/open-policy-agent/opa@v1.22.3`), ' +
  `or compile the policy yourself (\`opa build -t wasm -e ${ENTRYPOINT} policy.rego\`) and set opa { bundle = "bundle.tar.gz" } or opa { policy-wasm = "policy.wasm" }`;

/** Bytes of opa's output kept for an error message. */
const OUTPUT_LIMIT = 64 << 10;

/**
 * Runs `opa` with `args` in `cwd`. opa reports compile errors and failed tests on stdout, so
 * both streams go into the error; a missing binary says how to install it or what to pass instead.
 */
async function opa(args: string[], cwd: string, what: string): Promise<string> {
  let running;
  try {
    running = startChild('opa', args, { cwd, timeoutMs: OPA_TIMEOUT_MS, stdout: 'pipe', stderrLimit: OUTPUT_LIMIT });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new PolicyCompileError(`opa: ${what} needs the opa binary, which is not on PATH: ${HOW_TO_INSTALL}`);
    throw err;
  }
  let out = '';
  running.child.stdout?.on('data', (chunk: Buffer) => {
    if (out.length < OUTPUT_LIMIT) out += chunk.toString();
  });
  try {
    await running.done;
    return out;
  } catch (err) {
    if (/ENOENT/.test((err as Error).message)) throw new PolicyCompileError(`opa: ${what} needs the opa binary, which is not on PATH: ${HOW_TO_INSTALL}`);
    const output = `${out}\n${err instanceof ChildProcessError ? err.stderrText : ''}`.trim();
    throw new PolicyCompileError(`opa: ${what} failed${output ? `:\n${output}` : ` (${(err as Error).message})`}`);
  }
}

/** Rego sources to compile: the policy module, an optional test module and optional JSON data. */
export interface PolicySources {
  policy: string;
  test?: string | undefined;
  data?: unknown;
}

/** What `compilePolicy` produced. */
export interface CompiledPolicy {
  wasm: Buffer;
  /** The `opa test` report when a test module ran (every test passed). */
  testReport?: string;
}

/**
 * Compiles a Rego policy to WebAssembly with the real `opa build -t wasm` (never a home-made
 * interpreter), after running the test module with `opa test` when one is given: a failing
 * test fails start-up, as in cachew. Works in a private temporary directory removed afterwards.
 */
export async function compilePolicy(sources: PolicySources): Promise<CompiledPolicy> {
  return await withScratchDir(os.tmpdir(), 'hoard-opa-', async (dir) => {
    await fs.writeFile(path.join(dir, 'policy.rego'), sources.policy);
    const inputs = ['policy.rego'];
    if (sources.data !== undefined) {
      // `opa test` loads data.json files as `data` at the root, as the server's setData does.
      await fs.mkdir(path.join(dir, 'data'));
      await fs.writeFile(path.join(dir, 'data', 'data.json'), JSON.stringify(sources.data));
    }
    let testReport: string | undefined;
    if (sources.test !== undefined) {
      await fs.writeFile(path.join(dir, 'policy_test.rego'), sources.test);
      const testInputs = [...inputs, 'policy_test.rego', ...(sources.data !== undefined ? ['data'] : [])];
      testReport = (await opa(['test', '--format', 'pretty', '--verbose', ...testInputs], dir, 'the opa { test } module')).trim();
    }
    await fs.writeFile(path.join(dir, 'hoard_decision.rego'), DECISION_MODULE);
    await opa(['build', '--target', 'wasm', '--entrypoint', DECISION_ENTRYPOINT, '--output', 'bundle.tar.gz', ...inputs, 'hoard_decision.rego'], dir, 'compiling the policy');
    const wasm = await wasmFromBundle(path.join(dir, 'bundle.tar.gz'));
    return testReport === undefined ? { wasm } : { wasm, testReport };
  });
}

/** Extracts `/policy.wasm` from an OPA bundle (`opa build -t wasm` output, a .tar.gz). */
export async function wasmFromBundle(bundlePath: string): Promise<Buffer> {
  return await withScratchDir(os.tmpdir(), 'hoard-opa-bundle-', async (dir) => {
    try {
      await runChild('tar', ['-xzf', path.resolve(bundlePath), '-C', dir, '--no-same-owner', '--wildcards', '*policy.wasm'], { timeoutMs: OPA_TIMEOUT_MS });
    } catch (err) {
      throw new PolicyCompileError(`opa: ${bundlePath} is not an OPA wasm bundle (expected /policy.wasm inside; build it with \`opa build -t wasm -e ${ENTRYPOINT}\`): ${(err as Error).message}`);
    }
    // tar strips the leading '/' of the bundle's `/policy.wasm` entry.
    return await fs.readFile(path.join(dir, 'policy.wasm'));
  });
}
