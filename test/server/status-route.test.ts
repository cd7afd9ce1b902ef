import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Writable } from 'node:stream';
import { startTestServer } from '../fixtures/server.js';
import { gatherStatus } from '../../src/server/status/data.js';
import { escapeHtml, renderStatusPage } from '../../src/server/status/page.js';
import { RecentErrors, scrubCredentials } from '../../src/server/status/recent-errors.js';
import { Registry } from 'prom-client';
import { StrategyMetrics } from '../../src/server/strategy-metrics.js';
import type { Strategy } from '../../src/http/strategy.js';

describe('status page', () => {
  test('GET / is for trusted callers only; a remote caller gets 403, a loopback one the page and its JSON', async () => {
    const remote = await startTestServer({ trustedRemote: () => false });
    try {
      assert.equal((await fetch(`${remote.url}/`)).status, 403);
      assert.equal((await fetch(`${remote.url}/?format=json`)).status, 403);
    } finally {
      await remote.close();
    }
    const local = await startTestServer();
    try {
      const page = await fetch(`${local.url}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(await page.text(), /<section id="repositories">/);
      const json = (await (await fetch(`${local.url}/?format=json`)).json()) as { tables: Array<{ id: string }> };
      assert.deepEqual(json.tables.map((t) => t.id), ['repositories', 'strategies', 'tiers', 'upstreams', 'errors']);
    } finally {
      await local.close();
    }
  });

  test('every shown text is HTML-escaped (a repository name can hold any character)', async () => {
    const evil = 'https://x/<script>alert(1)</script>"\'&<img src=x onerror=alert(2)>';
    const strategy: Strategy = { name: 'git', status: () => ({ repositories: [{ name: evil, state: '<b>ready</b>', lastFetchMs: Date.now() }] }) };
    const recent = new RecentErrors();
    recent.add('error', 'failed <script>x()</script>', '<i>git</i>');
    const html = renderStatusPage(await gatherStatus({ strategies: [strategy], metrics: new StrategyMetrics(new Registry()), recentErrors: recent }));
    assert.ok(!html.includes('<script>alert'), 'no injected script element');
    assert.ok(!html.includes('<img'), 'no injected element');
    assert.ok(!html.includes('<b>ready'), 'state escaped');
    assert.ok(!html.includes('<i>git'), 'source escaped');
    assert.ok(html.includes(escapeHtml(evil)));
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    // Exactly one script element: the page's own.
    assert.equal(html.match(/<script/g)?.length, 1);
  });

  test('recent errors: a bounded ring of warn/error records with credentials scrubbed', () => {
    const ring = new RecentErrors(3);
    const logger = pino({ level: 'info', hooks: { logMethod: ring.logHook() as never } }, new Writable({ write: (_c, _e, cb) => cb() }));
    logger.info('not kept');
    logger.child({ strategy: 'git' }).warn({ err: new Error('fetch https://bob:s3cret@github.com/o/r failed') }, 'clone failed');
    for (let i = 0; i < 4; i++) logger.error(`error ${i} token=abc${i}def`);
    const list = ring.list();
    assert.equal(list.length, 3, 'bounded');
    assert.deepEqual(list.map((r) => r.message), ['error 3 token=***', 'error 2 token=***', 'error 1 token=***']);
    const one = new RecentErrors();
    const l2 = pino({ hooks: { logMethod: one.logHook() as never } }, new Writable({ write: (_c, _e, cb) => cb() }));
    l2.child({ strategy: 'git' }).warn({ err: new Error('fetch https://bob:s3cret@github.com/o/r failed') }, 'clone failed');
    assert.equal(one.list()[0]?.message, 'clone failed: fetch https://***@github.com/o/r failed');
    assert.equal(one.list()[0]?.source, 'git');
    assert.doesNotMatch(scrubCredentials('Authorization: Bearer abc.def'), /abc\.def/);
    assert.equal(scrubCredentials('https://s3/x?X-Amz-Signature=deadbeef&y=1'), 'https://s3/x?X-Amz-Signature=***&y=1');
  });
});
