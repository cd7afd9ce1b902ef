import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { startChild, type RunningChild } from '../../util/process.js';

/** A parsed CGI response: status, headers and the streaming rest of stdout. */
export interface CgiResponse {
  status: number;
  headers: Record<string, string>;
  body: Readable;
  child: RunningChild;
}

/** Largest CGI header block we accept before deciding the backend is broken. */
const MAX_HEADER_BYTES = 64 * 1024;

/**
 * Runs `git http-backend` for one request. `pathInfo` is relative to `projectRoot`; the request
 * headers become CGI variables (so `Git-Protocol: version=2` selects protocol v2 and a gzip
 * `Content-Encoding` is decoded by git). Resolves once the header block has been parsed.
 */
export async function runHttpBackend(opts: {
  projectRoot: string;
  pathInfo: string;
  method: string;
  query: string;
  headers: IncomingHttpHeaders;
  body: Buffer | undefined;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  remoteAddress?: string | undefined;
  extraEnv?: Record<string, string>;
}): Promise<CgiResponse> {
  const h = opts.headers;
  const env: NodeJS.ProcessEnv = {
    ...opts.env,
    GIT_PROJECT_ROOT: opts.projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    GIT_HTTP_MAX_REQUEST_BUFFER: '100M',
    PATH_INFO: opts.pathInfo,
    REQUEST_METHOD: opts.method,
    QUERY_STRING: opts.query,
    REMOTE_ADDR: opts.remoteAddress ?? '127.0.0.1',
    CONTENT_TYPE: String(h['content-type'] ?? ''),
    ...(opts.body ? { CONTENT_LENGTH: String(opts.body.length) } : {}),
    ...(h['content-encoding'] ? { HTTP_CONTENT_ENCODING: String(h['content-encoding']) } : {}),
    ...(h['git-protocol'] ? { GIT_PROTOCOL: String(h['git-protocol']), HTTP_GIT_PROTOCOL: String(h['git-protocol']) } : {}),
    ...opts.extraEnv,
  };
  const child = startChild('git', ['http-backend'], { env, timeoutMs: opts.timeoutMs, signal: opts.signal, stdin: 'pipe', stderrLimit: 64 * 1024 });
  child.child.stdin?.on('error', () => undefined);
  child.child.stdin?.end(opts.body ?? Buffer.alloc(0));
  const stdout = child.child.stdout!;

  return new Promise<CgiResponse>((resolve, reject) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf('\r\n\r\n');
      let sepLength = 4;
      if (end === -1) {
        end = head.indexOf('\n\n');
        sepLength = 2;
      }
      if (end === -1) {
        if (head.length > MAX_HEADER_BYTES) {
          cleanup();
          child.kill();
          reject(new Error('git http-backend sent an oversized header block'));
        }
        return;
      }
      cleanup();
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === 'status') status = Number.parseInt(value, 10) || 500;
        else headers[name] = value;
      }
      const body = new PassThrough({ highWaterMark: 1 << 20 });
      const rest = head.subarray(end + sepLength);
      if (rest.length) body.write(rest);
      stdout.pipe(body);
      stdout.once('error', (err) => body.destroy(err));
      body.once('close', () => {
        if (!stdout.readableEnded) child.kill();
      });
      resolve({ status, headers, body, child });
    };
    const onEnd = () => {
      cleanup();
      child.done.then(
        () => reject(new Error('git http-backend produced no response')),
        (err: Error) => reject(err),
      );
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      stdout.off('data', onData);
      stdout.off('end', onEnd);
      stdout.off('error', onError);
    };
    stdout.on('data', onData);
    stdout.once('end', onEnd);
    stdout.once('error', onError);
  });
}
