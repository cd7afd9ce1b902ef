import type { IncomingHttpHeaders } from 'node:http';
import { promisify } from 'node:util';
import { constants, createGunzip, gunzip, gunzipSync } from 'node:zlib';

const gunzipAsync = promisify(gunzip);

/** Compressed bytes looked at: a protocol v2 command line is always at the very start of a body. */
const INSPECT_INPUT_BYTES = 64 << 10;
/**
 * Most bytes inflated while looking for the command. A request of a few KiB can inflate to
 * gigabytes (a gzip bomb), so inflation stops here and anything bigger is not an ls-refs.
 */
const INSPECT_OUTPUT_BYTES = 64 << 10;
/** `command=ls-refs` is the first pkt-line of an ls-refs request, well inside this prefix. */
const COMMAND_LOOKAHEAD = 4096;

/**
 * True when an upload-pack POST is a protocol v2 `ls-refs` command (a ref listing, which must be
 * fresh), as opposed to a `fetch`. Gzip bodies are inflated with a hard output limit; a body that
 * does not inflate within it (or at all) is treated as not ls-refs, so it is served from the mirror.
 */
export function isLsRefsRequest(headers: IncomingHttpHeaders, body: Buffer): boolean {
  if (!String(headers['git-protocol'] ?? '').includes('version=2')) return false;
  let plain: Buffer;
  if (String(headers['content-encoding'] ?? '').toLowerCase().includes('gzip')) {
    try {
      // Z_SYNC_FLUSH: a body longer than the inspected input is cut mid-stream; inflate what is there.
      plain = gunzipSync(body.subarray(0, INSPECT_INPUT_BYTES), { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: INSPECT_OUTPUT_BYTES });
    } catch {
      return false;
    }
  } else {
    plain = body;
  }
  return plain.subarray(0, COMMAND_LOOKAHEAD).toString('latin1').includes('command=ls-refs');
}

/** Most bytes a v2 fetch body may inflate to while its wants are read (a 100k-ref mirror clone is ~5 MiB). */
const WANTS_OUTPUT_BYTES = 32 << 20;
const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * The object ids a protocol v2 `fetch` command wants (`want <id>` lines), `[]` for any other
 * request, or undefined when the body cannot be read as one (bad pkt-lines, an id that is not
 * hex, gzip that does not inflate within the limit) so the caller can refuse to judge it.
 */
export async function fetchWants(headers: IncomingHttpHeaders, body: Buffer): Promise<string[] | undefined> {
  if (!String(headers['git-protocol'] ?? '').includes('version=2')) return [];
  let plain: Buffer;
  if (String(headers['content-encoding'] ?? '').toLowerCase().includes('gzip')) {
    try {
      plain = await gunzipAsync(body, { maxOutputLength: WANTS_OUTPUT_BYTES });
    } catch {
      return undefined;
    }
  } else {
    plain = body;
  }
  const wants: string[] = [];
  let command: string | undefined;
  for (let at = 0; at < plain.length; ) {
    const prefix = plain.toString('latin1', at, at + 4);
    if (!/^[0-9a-f]{4}$/i.test(prefix)) return undefined;
    const length = Number.parseInt(prefix, 16);
    if (length === 3 || at + Math.max(length, 4) > plain.length) return undefined;
    if (length <= 2) {
      at += 4; // flush, delim or response-end packet
      continue;
    }
    const line = plain.toString('latin1', at + 4, at + length).replace(/\n$/, '');
    at += length;
    if (command === undefined) {
      command = line;
      if (command !== 'command=fetch') return [];
      continue;
    }
    if (!line.startsWith('want ')) continue;
    const id = line.slice('want '.length);
    if (!OBJECT_ID.test(id)) return undefined;
    wants.push(id);
  }
  return wants;
}

/** Longest pkt-line git accepts (LARGE_PACKET_MAX): 4 length bytes plus 65516 of payload. */
const MAX_PKT_LENGTH = 65520;
/**
 * Most bytes a gzip request body may inflate to while its framing is checked: the limit `git
 * http-backend` itself is given (GIT_HTTP_MAX_REQUEST_BUFFER in cgi.ts), so anything it would
 * accept is checked to the end, and a gzip bomb costs bounded time and no memory.
 */
const MAX_INFLATED_BYTES = 100 << 20;

/** Why an upload-pack request body is refused: 400 for bad framing, 413 for an oversized inflation. */
export interface UploadPackBodyProblem {
  status: 400 | 413;
  message: string;
}

/**
 * Walks the pkt-line framing of a request body chunk by chunk, holding only the current
 * packet's header and, for short packets, their payload (gitprotocol-common, gitprotocol-pack,
 * gitprotocol-v2):
 * - every packet has a 4-hex-digit length: 0000 flush, 0001 delimiter (v2 only), else ≥ 4 and
 *   ≤ 65520 bytes;
 * - the body ends exactly at a packet boundary;
 * - v0/v1 requests start with `want ` and end with a flush (a negotiation round) or `done`;
 *   v2 requests are one flush alone or start with `command=` and end with a flush.
 */
class PktLineChecker {
  private header = '';
  private remaining = 0;
  /** The payload of the packet being read when it is short enough to matter (first or `done`). */
  private payload = '';
  private packets = 0;
  private last: 'flush' | 'delim' | 'data' | undefined;
  private lastPayload = '';
  private offset = 0;

  constructor(private readonly v2: boolean) {}

  /** Feeds the next bytes; returns the problem as soon as one is found. */
  push(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        if (this.payload.length < 16) this.payload += chunk.toString('latin1', i, i + Math.min(take, 16 - this.payload.length));
        this.remaining -= take;
        i += take;
        this.offset += take;
        if (this.remaining === 0) {
          const problem = this.endData();
          if (problem) return problem;
        }
        continue;
      }
      const take = Math.min(4 - this.header.length, chunk.length - i);
      this.header += chunk.toString('latin1', i, i + take);
      i += take;
      if (this.header.length < 4) continue;
      const problem = this.startPacket();
      if (problem) return problem;
    }
    return undefined;
  }

  /** Called at the end of the body. */
  end(): string | undefined {
    if (this.header.length > 0 || this.remaining > 0) return `truncated: the body ends inside the pkt-line at byte ${this.offset}`;
    if (this.packets === 0) return 'empty request body';
    if (this.last === 'flush') return undefined;
    if (!this.v2 && this.last === 'data' && /^done\n?$/.test(this.lastPayload)) return undefined;
    return `truncated: the request must end with ${this.v2 ? 'a flush-pkt (0000)' : 'a flush-pkt (0000) or "done"'}`;
  }

  private startPacket(): string | undefined {
    const text = this.header;
    const at = this.offset;
    this.header = '';
    if (!/^[0-9a-fA-F]{4}$/.test(text)) return `bad pkt-line length ${JSON.stringify(text)} at byte ${at}`;
    const length = Number.parseInt(text, 16);
    this.offset += 4;
    if (length === 0 || length === 1) {
      if (length === 1 && !this.v2) return `delim-pkt (0001) at byte ${at} outside protocol v2`;
      if (this.packets === 0 && (length === 1 || !this.v2)) return `the request starts with ${length === 0 ? 'a flush-pkt' : 'a delim-pkt'} instead of ${this.v2 ? '"command="' : '"want "'}`;
      this.packets++;
      this.last = length === 0 ? 'flush' : 'delim';
      return undefined;
    }
    if (length < 4) return `invalid pkt-line length ${text} at byte ${at}`;
    if (length > MAX_PKT_LENGTH) return `pkt-line of ${length} bytes at byte ${at} (at most ${MAX_PKT_LENGTH})`;
    this.remaining = length - 4;
    this.payload = '';
    if (this.remaining === 0) return this.endData();
    return undefined;
  }

  private endData(): string | undefined {
    if (this.packets === 0) {
      const expected = this.v2 ? 'command=' : 'want ';
      if (!this.payload.startsWith(expected)) return `the request starts with ${JSON.stringify(this.payload.slice(0, 16))} instead of ${JSON.stringify(expected)}`;
    }
    this.packets++;
    this.last = 'data';
    this.lastPayload = this.payload;
    return undefined;
  }
}

/**
 * Checks the framing of a `git-upload-pack` request body before git (or the upstream) sees it:
 * given garbage, git http-backend answers 200 and an empty body, which clients report as an
 * obscure protocol error. A gzip body is inflated as a stream and checked as it inflates, so
 * nothing but the current packet header is held. Returns undefined for a well-framed body.
 */
export async function uploadPackBodyProblem(headers: IncomingHttpHeaders, body: Buffer): Promise<UploadPackBodyProblem | undefined> {
  const checker = new PktLineChecker(String(headers['git-protocol'] ?? '').includes('version=2'));
  const encoding = String(headers['content-encoding'] ?? '').trim().toLowerCase();
  // The encodings git http-backend inflates; any other body is passed to upload-pack as it is.
  if (encoding !== 'gzip' && encoding !== 'x-gzip') {
    const problem = checker.push(body) ?? checker.end();
    return problem ? { status: 400, message: problem } : undefined;
  }
  const inflater = createGunzip();
  inflater.end(body);
  let inflated = 0;
  try {
    for await (const chunk of inflater) {
      inflated += (chunk as Buffer).length;
      if (inflated > MAX_INFLATED_BYTES) return { status: 413, message: `the gzip body inflates to more than ${MAX_INFLATED_BYTES} bytes` };
      const problem = checker.push(chunk as Buffer);
      if (problem) return { status: 400, message: problem };
    }
  } catch (err) {
    return { status: 400, message: `the body is not valid gzip: ${(err as Error).message}` };
  } finally {
    inflater.destroy();
  }
  const problem = checker.end();
  return problem ? { status: 400, message: problem } : undefined;
}
