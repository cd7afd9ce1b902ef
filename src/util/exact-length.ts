import { Readable } from 'node:stream';

/**
 * Passes `body` through, failing the stream if it carries more or fewer than `expected` bytes:
 * a ranged answer that is short or long must never be spliced into a larger object.
 * `what` names the source in the error ("S3 range", "chunk 3").
 */
export function exactLength(body: Readable, expected: number, what: string): Readable {
  async function* checked(): AsyncGenerator<Buffer> {
    let seen = 0;
    for await (const chunk of body) {
      seen += (chunk as Buffer).length;
      if (seen > expected) throw new Error(`${what} carried more bytes than the range asked for`);
      yield chunk as Buffer;
    }
    if (seen !== expected) throw new Error(`${what} ended early: ${seen} of ${expected} bytes`);
  }
  const out = Readable.from(checked(), { objectMode: false });
  // Destroying the checked stream before it started reading must still release the source.
  out.once('close', () => body.destroy());
  return out;
}
