import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcessError, runChild, startChild } from '../../src/util/process.js';

/** True while a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number, timeoutMs = 3000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

// A shell that starts a grandchild `sleep`, prints its pid, then waits on it: killing only the
// shell would leave the grandchild running, so these tests prove the whole group dies.
const withGrandchild = ['-c', 'sleep 30 & echo $!; wait'];

async function grandchildPid(running: ReturnType<typeof startChild>): Promise<number> {
  return new Promise((resolve) => running.child.stdout?.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
}

describe('child processes', () => {
  test('runChild returns stdout and reports non-zero exits with stderr', async () => {
    assert.equal((await runChild('sh', ['-c', 'echo hello'], { timeoutMs: 5000 })).trim(), 'hello');
    await assert.rejects(runChild('sh', ['-c', 'echo oops >&2; exit 3'], { timeoutMs: 5000 }), (err: unknown) => {
      assert.ok(err instanceof ChildProcessError);
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /exited with code 3: oops/);
      return true;
    });
  });

  test('the deadline kills the whole process group', async () => {
    const running = startChild('sh', withGrandchild, { timeoutMs: 300 });
    const pid = await grandchildPid(running);
    await assert.rejects(running.done, (err: unknown) => err instanceof ChildProcessError && err.killedBy === 'timeout');
    assert.ok(await gone(pid), 'grandchild killed with the group');
  });

  test('an abort (client disconnect) kills the whole process group', async () => {
    const controller = new AbortController();
    const running = startChild('sh', withGrandchild, { timeoutMs: 30_000, signal: controller.signal });
    const pid = await grandchildPid(running);
    controller.abort();
    await assert.rejects(running.done, (err: unknown) => err instanceof ChildProcessError && err.killedBy === 'abort');
    assert.ok(await gone(pid), 'grandchild killed with the group');
  });

  test('the deadline still kills the group after its leader exited (a grandchild holding our pipes)', async () => {
    // The shell exits at once; its background sleep keeps stdout open, so `done` would wait
    // for it unless the deadline kills the group although the leader is gone.
    const running = startChild('sh', ['-c', 'sleep 30 & echo $!; exit 0'], { timeoutMs: 500 });
    const pid = await grandchildPid(running);
    const started = Date.now();
    await assert.rejects(running.done, (err: unknown) => err instanceof ChildProcessError && err.killedBy === 'timeout');
    assert.ok(Date.now() - started < 5000, 'done settled at the deadline');
    assert.ok(await gone(pid), 'grandchild killed with the group');
  });

  test("another child's output can be a child's stdin without passing through this process", async () => {
    const producer = startChild('sh', ['-c', 'printf "a\\nb\\nc\\n"'], { timeoutMs: 5000 });
    const consumer = startChild('wc', ['-l'], { timeoutMs: 5000, stdin: producer.child.stdout! });
    producer.child.stdout!.destroy();
    const lines: Buffer[] = [];
    consumer.child.stdout!.on('data', (b: Buffer) => lines.push(b));
    await Promise.all([producer.done, consumer.done]);
    assert.equal(Buffer.concat(lines).toString().trim(), '3');
  });

  test('kill() after the child closed sends no signal (its pid may already belong to someone else)', async () => {
    const running = startChild('true', [], { timeoutMs: 5000 });
    await running.done;
    const realKill = process.kill;
    const signalled: number[] = [];
    process.kill = ((pid: number, sig?: string | number) => {
      signalled.push(pid);
      return realKill(pid, sig);
    }) as typeof process.kill;
    try {
      running.kill();
    } finally {
      process.kill = realKill;
    }
    assert.deepEqual(signalled, []);
  });
});

test('a failed child is named by its subcommand, not by a leading option', async () => {
  const { runChild, subcommandOf } = await import('../../src/util/process.js');
  assert.equal(subcommandOf(['-c', 'http.followRedirects=false', '-C', '/x', 'fetch', '--prune']), 'fetch');
  assert.equal(subcommandOf(['--version']), '--version');
  await assert.rejects(runChild('git', ['-c', 'core.x=y', 'no-such-subcommand'], { timeoutMs: 10_000 }), /git no-such-subcommand exited with code/);
});
