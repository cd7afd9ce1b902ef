/**
 * The parent-death watchdog of src/util/process.ts on its own: a process that started children
 * through startChild is killed with SIGKILL (no exit hook runs); its children, grandchildren in
 * the child's process group, and a grandchild that left the group with setsid all die with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { processTable, stillRunning, waitFor } from './process-table.js';

const processModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../src/util/process.ts');

test('SIGKILL of the parent kills its children, their groups, and descendants that left the group', async () => {
  // Unlikely sleep durations name the processes to look for.
  const [inGroup, escaped, direct] = [randomInt(1e8, 2e8), randomInt(2e8, 3e8), randomInt(3e8, 4e8)];
  const script = `
    import { startChild } from ${JSON.stringify(processModule)};
    startChild('sh', ['-c', 'sleep ${inGroup} & setsid sleep ${escaped} & echo started; wait'], { timeoutMs: 600000 })
      .child.stdout.once('data', () => {
        startChild('sleep', ['${direct}'], { timeoutMs: 600000 });
        setTimeout(() => console.log('ready'), 100);
      });
  `;
  const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    parent.stdout.on('data', (c: Buffer) => c.toString().includes('ready') && resolve());
    parent.once('exit', (code) => reject(new Error(`parent exited ${code} before its children started`)));
  });
  const sleepers = await waitFor('the three sleepers', 10_000, () => {
    const rows = processTable().filter((r) => [inGroup, escaped, direct].some((n) => r.cmdline === `sleep ${n}`));
    return rows.length === 3 ? rows : undefined;
  });
  try {
    parent.kill('SIGKILL');
    await waitFor(`the sleepers (${sleepers.map((r) => r.cmdline).join(', ')}) to die with their parent`, 10_000, () =>
      stillRunning(sleepers).length === 0 ? true : undefined,
    );
  } finally {
    for (const row of stillRunning(sleepers)) process.kill(row.pid, 'SIGKILL');
  }
  assert.equal(stillRunning(sleepers).length, 0);
});
