/**
 * Issue 10 point 1, the global last resort: in a real child process running hoard's HTTP server
 * and process-level handlers, each kind of bug in one request's handling (a synchronous throw, a
 * rejection, a throw in a timer or a detached promise the request started, a throw in a listener
 * of the request, a bug after the response head was sent) is logged with that request and
 * answered 500 (or cut), while another connection's response carries on to its end. A bug
 * outside every request still ends the process, with a log line.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHoardProcess, type HoardProcess } from '../fixtures/hoard-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let fixture: HoardProcess;

before(async () => {
  fixture = await startHoardProcess({ script: path.join(here, 'buggy-server.ts'), stdin: 'pipe', startTimeoutMs: 60_000, name: 'fixture' });
});
after(async () => {
  await fixture?.stop();
});

/** Log records of the fixture (JSON lines). */
const records = () => fixture.records();

async function waitForRecord(match: (r: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 500; i++) {
    const found = records().find(match);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no log record for ${what}; log:\n${fixture.log()}`);
}

test('each bug in one request is logged with it and answered 500 while another response streams on', async () => {
  // A response in flight on its own connection for the whole test.
  const streaming = new Promise<string>((resolve, reject) => {
    http
      .get(`${fixture.url}/stream`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
        res.on('error', reject);
      })
      .on('error', reject);
  });
  for (const [route, message] of [
    ['/bug/sync', 'sync bug'],
    ['/bug/async', 'async bug'],
    ['/bug/timer', 'timer bug'],
    ['/bug/rejection', 'detached rejection'],
    ['/bug/listener', 'listener bug'],
  ] as const) {
    const res = await fetch(`${fixture.url}${route}`);
    assert.equal(res.status, 500, route);
    assert.match(await res.text(), /internal server error/);
    const logged = await waitForRecord((r) => r['uri'] === route && (r['level'] as number) >= 50, route);
    assert.equal(logged['method'], 'GET');
    assert.match(String((logged['err'] as { message?: string }).message), new RegExp(message));
    assert.equal(fixture.child.exitCode, null, `the process survived ${route}`);
    assert.equal(await (await fetch(`${fixture.url}/ok`)).text(), 'fine\n', `serving after ${route}`);
  }
  await assert.rejects(
    fetch(`${fixture.url}/bug/after-headers`).then((res) => res.text()),
    'a bug after the head was sent cuts the response instead of completing it',
  );
  await waitForRecord((r) => r['uri'] === '/bug/after-headers' && (r['level'] as number) >= 50, '/bug/after-headers');
  assert.equal(await (await fetch(`${fixture.url}/release`)).text(), 'released\n');
  assert.equal(await streaming, 'first;last', 'the other connection got its whole response');
});

test('a bug outside any request is logged and ends the process', async () => {
  fixture.child.stdin!.write('boom\n');
  assert.equal(await fixture.exited, 1);
  assert.ok(records().some((r) => r['msg'] === 'uncaught error outside any request; exiting' && /outside any request/.test(String((r['err'] as { message?: string }).message))), fixture.log());
});
