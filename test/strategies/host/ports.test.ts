import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

// Two upstreams on one address, told apart only by their ports: a route prefix holding a port
// must be matched literally (find-my-way would read ":9000" as a parameter and refuse the second).
const origins: http.Server[] = [];
let hoard: TestServer;
let hosts: string[] = [];

before(async () => {
  for (const name of ['first', 'second']) {
    const origin = http.createServer((req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name} ${req.url}`));
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    origins.push(origin);
  }
  hosts = origins.map((o) => `127.0.0.1:${(o.address() as AddressInfo).port}`);
  hoard = await startTestServer({
    hcl: `cache memory {}\nmetadata memory {}\nmetrics { port = 0 }\n${hosts.map((h) => `strategy host "http://${h}" {}\n`).join('')}strategy artifactory "http://${hosts[0]}/artifactory" {}\n`,
  });
});
after(async () => {
  await hoard.close();
  for (const o of origins) {
    o.closeAllConnections();
    await new Promise((resolve) => o.close(resolve));
  }
});

test('host strategies for one address on different ports both start and each reaches its own upstream', async () => {
  assert.equal(await (await fetch(`${hoard.url}/${hosts[0]}/a.txt`)).text(), 'first /a.txt');
  assert.equal(await (await fetch(`${hoard.url}/${hosts[1]}/a.txt`)).text(), 'second /a.txt');
  assert.equal(await (await fetch(`${hoard.url}/${hosts[0]}/artifactory/libs/b.jar`)).text(), 'first /artifactory/libs/b.jar');
  // A port that no block names is not a parameter match.
  assert.equal((await fetch(`${hoard.url}/127.0.0.1:1/a.txt`)).status, 404);
});
