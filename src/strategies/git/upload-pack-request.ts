import type { IncomingHttpHeaders } from 'node:http';
import { constants, gunzipSync } from 'node:zlib';

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
