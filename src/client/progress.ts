import { Transform } from 'node:stream';

/** A byte-counting pass-through that drives a progress bar on a TTY and is silent otherwise. */
export async function progressStream(label: string, total: number | undefined, opts: { quiet?: boolean } = {}): Promise<Transform> {
  let done = 0;
  const show = !opts.quiet && process.stderr.isTTY === true;
  let bar: { update(n: number): void; stop(): void } | undefined;
  if (show) {
    const { SingleBar, Presets } = await import('cli-progress');
    const single = new SingleBar(
      {
        format: `${label} [{bar}] {percentage}% | {value_mb}/{total_mb} MB | {speed} MB/s`,
        hideCursor: true,
        stream: process.stderr,
      },
      Presets.shades_classic,
    );
    const started = Date.now();
    const mb = (n: number) => (n / 1048576).toFixed(1);
    single.start(total ?? 0, 0, { value_mb: '0.0', total_mb: total ? mb(total) : '?', speed: '0.0' });
    bar = {
      update: (n) => single.update(n, { value_mb: mb(n), speed: (n / 1048576 / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1) }),
      stop: () => single.stop(),
    };
  }
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      bar?.update(done);
      cb(null, chunk);
    },
    flush(cb) {
      bar?.stop();
      cb();
    },
    destroy(err, cb) {
      bar?.stop();
      cb(err);
    },
  });
}
