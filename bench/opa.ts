/**
 * `npm run bench -- opa`: the cost of one authorization decision with cachew's own OPA policy
 * (compiled by `opa build -t wasm`, evaluated in-process) next to the built-in default policy,
 * plus the start-up cost of compiling and loading the policy. Needs `opa` on PATH.
 */
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { IncomingMessage as Message } from 'node:http';
import { createAuthorizer, defaultAuthorizer } from '../src/server/policy/authorizer.js';
import { median, printTable } from './table.js';

const CACHEW_POLICY = `package cachew.authz
default allow := false
allow if startswith(input.remote_addr, "127.0.0.1:")
allow if not input.path[0] in {"api", "admin"}
`;

function fakeRequest(path: string, remote: string): IncomingMessage {
  const socket = new Socket();
  Object.defineProperty(socket, 'remoteAddress', { value: remote });
  Object.defineProperty(socket, 'remotePort', { value: 40000 });
  const req = new Message(socket);
  req.method = 'GET';
  req.url = path;
  req.headers = { host: 'hoard', 'user-agent': 'git/2.39', accept: '*/*', authorization: 'Bearer x' };
  req.rawHeaders = ['Host', 'hoard', 'User-Agent', 'git/2.39', 'Accept', '*/*', 'Authorization', 'Bearer x'];
  return req;
}

const N = 200_000;
const requests = [fakeRequest('/git/github.com/org/repo/info/refs', '10.0.0.1'), fakeRequest('/api/v1/object/ns/k', '10.0.0.1'), fakeRequest('/api/v1/object/ns/k', '127.0.0.1')];
const paths = ['/git/github.com/org/repo/info/refs', '/api/v1/object/ns/k', '/api/v1/object/ns/k'];

const loadTimes: number[] = [];
let opa = await createAuthorizer({ policy: CACHEW_POLICY });
for (let i = 0; i < 3; i++) {
  const t = process.hrtime.bigint();
  opa = await createAuthorizer({ policy: CACHEW_POLICY });
  loadTimes.push(Number(process.hrtime.bigint() - t) / 1e6);
}
const builtIn = defaultAuthorizer();

function perDecisionUs(decide: (i: number) => unknown): number {
  const runs: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) decide(i % 3);
    runs.push(Number(process.hrtime.bigint() - t) / 1e3 / N);
  }
  return median(runs);
}

// Same answers from both, or the comparison means nothing.
for (let i = 0; i < 3; i++) if (opa.decide(requests[i]!, paths[i]!) !== builtIn.decide(requests[i]!, paths[i]!)) throw new Error(`policies disagree on case ${i}`);

const rows = [
  { name: 'built-in default policy', value: perDecisionUs((i) => builtIn.decide(requests[i]!, paths[i]!)), unit: 'µs' },
  { name: "cachew's policy via opa-wasm", value: perDecisionUs((i) => opa.decide(requests[i]!, paths[i]!)), unit: 'µs' },
];
printTable(`One authorization decision (median of 3 × ${N})`, rows, 'built-in default policy');
console.log(`\nopa build -t wasm + load at start-up: ${median(loadTimes).toFixed(0)} ms (median of 3)`);
