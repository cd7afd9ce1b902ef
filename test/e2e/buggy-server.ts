/**
 * A child-process fixture for the last-resort test: hoard's real HTTP server and process-level
 * handlers around routes with deliberate bugs, which no production route can be made to have.
 * Prints `listening on <url>` to stderr, logs JSON to stderr. A line on stdin throws outside any
 * request (the case that must still end the process).
 */
import pino from 'pino';
import type { AddressInfo } from 'node:net';
import { createHttpServer } from '../../src/server/http-server.js';
import { installLastResort } from '../../src/server/last-resort.js';
import { ServerMetrics } from '../../src/server/metrics.js';
import { Router, sendText } from '../../src/http/router.js';

const logger = pino({ level: 'info' }, pino.destination({ fd: 2, sync: true }));
const router = new Router();
let release: () => void = () => undefined;
const released = new Promise<void>((resolve) => (release = resolve));

router.on('GET', '/ok', (_req, res) => sendText(res, 200, 'fine'));
router.on('GET', '/bug/sync', () => {
  throw new Error('sync bug');
});
router.on('GET', '/bug/async', async () => {
  await new Promise((resolve) => setImmediate(resolve));
  throw new Error('async bug');
});
router.on('GET', '/bug/timer', () => {
  setTimeout(() => {
    throw new Error('timer bug');
  }, 1);
});
router.on('GET', '/bug/rejection', () => {
  // Deliberately unhandled: the promise is started by the request and nobody awaits it.
  void new Promise((resolve) => setImmediate(resolve)).then(() => {
    throw new Error('detached rejection');
  });
});
router.on('GET', '/bug/listener', (req) => {
  // 'end' is emitted from the socket's context, outside the handler's call stack.
  req.once('end', () => {
    throw new Error('listener bug');
  });
  req.resume();
});
router.on('GET', '/bug/after-headers', async (_req, res) => {
  res.writeHead(200, { 'content-length': '100' });
  res.write('partial');
  await new Promise((resolve) => setImmediate(resolve));
  throw new Error('bug after the head was sent');
});
router.on('GET', '/stream', async (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.write('first;');
  await released;
  res.end('last');
});
router.on('GET', '/release', (_req, res) => {
  release();
  sendText(res, 200, 'released');
});

const server = createHttpServer({ router, logger, metrics: new ServerMetrics('hoard') });
installLastResort(logger);
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.stdin.on('data', () => {
  throw new Error('a bug outside any request');
});
