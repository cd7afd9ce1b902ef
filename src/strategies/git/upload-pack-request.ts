import type { IncomingHttpHeaders } from 'node:http';
import { promisify } from 'node:util';
import { constants, gunzip, gunzipSync } from 'node:zlib';

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
