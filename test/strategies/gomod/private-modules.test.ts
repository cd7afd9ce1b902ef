import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { gitHoardHcl } from '../../fixtures/git-hoard.js';
import { git, startGitUpstream, type GitUpstream } from '../../fixtures/git-upstream.js';
import { buildGoApp, goClientEnv, runGo } from '../../fixtures/go-client.js';
import { startTestServer, type TestServer } from '../../fixtures/server.js';

/**
 * Private modules (`private-paths`) served from the git strategy's mirrors to the real `go`
 * command: tagged versions, a module in a subdirectory with `sub/mod/vX` tags, `/v2` both as a
 * `v2/` subdirectory and as a root go.mod declaring `/v2`, a repository without go.mod, a
 * pseudo-version for an untagged commit, `go mod verify`, and an offline rebuild from hoard's
 * cache once the git upstream is gone.
 */


let tmp: string;
let upstream: GitUpstream;
let upstreamOpen = false;
let hoard: TestServer;
let headCommit: string;

/** Writes files into a work tree, commits, tags and pushes (tags too). */
async function commitFiles(tree: string, files: Record<string, string | { symlink: string }>, message: string, tags: string[] = []): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(tree, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    if (typeof content === 'string') await fs.writeFile(file, content);
    else await fs.symlink(content.symlink, file);
  }
  git(['add', '-A'], tree);
  git(['commit', '-q', '-m', message], tree);
  for (const tag of tags) git(['tag', '-a', '-m', tag, tag], tree);
  git(['push', '-q', 'origin', 'main', ...tags], tree);
  return git(['rev-parse', 'HEAD'], tree);
}

const goFile = (pkg: string, name: string) => `package ${pkg}\n\nfunc Name() string { return "${name}" }\n`;

before(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'hoard-gomod-private-'));
  upstream = await startGitUpstream();
  upstreamOpen = true;

  const lib = await upstream.createRepo('private/lib.git', { files: 1 });
  await commitFiles(
    lib,
    {
      'go.mod': 'module example.com/private/lib\n\ngo 1.18\n',
      'lib.go': goFile('lib', 'lib-v1.0.0'),
      LICENSE: 'root license\n',
      'vendor/modules.txt': '# vendored\n',
      'vendor/example.com/x/x.go': 'package x\n',
      'nested/go.mod': 'module example.com/private/lib/nested\n',
      'nested/n.go': 'package nested\n',
      'link.go': { symlink: 'lib.go' },
    },
    'v1.0.0',
    ['v1.0.0'],
  );
  await commitFiles(
    lib,
    {
      'lib.go': goFile('lib', 'lib-v1.1.0'),
      'sub/mod/go.mod': 'module example.com/private/lib/sub/mod\n\ngo 1.18\n',
      'sub/mod/mod.go': goFile('mod', 'sub-mod-v0.2.0'),
      'v2/go.mod': 'module example.com/private/lib/v2\n\ngo 1.18\n',
      'v2/lib.go': goFile('lib', 'lib-v2.0.0'),
    },
    'v1.1.0, sub/mod/v0.2.0, v2.0.0',
    ['v1.1.0', 'sub/mod/v0.2.0', 'v2.0.0'],
  );
  headCommit = await commitFiles(lib, { 'lib.go': goFile('lib', 'lib-head') }, 'untagged');

  const major = await upstream.createRepo('private/major.git', { files: 1 });
  await commitFiles(major, { 'go.mod': 'module example.com/private/major/v2\n\ngo 1.18\n', 'major.go': goFile('major', 'major-v2.1.0') }, 'v2.1.0', ['v2.1.0']);

  const nomod = await upstream.createRepo('private/nomod.git', { files: 1 });
  await commitFiles(nomod, { 'nomod.go': goFile('nomod', 'nomod-v0.1.0') }, 'no go.mod', ['v0.1.0']);

  // Module paths with Go's `.git` qualifier: the go command can fetch these directly from git, so
  // its own zips are the reference for hoard's.
  const golden = await upstream.createRepo('private/golden.git', { files: 1 });
  await commitFiles(
    golden,
    {
      'go.mod': 'module example.com/private/golden.git\n\ngo 1.18\n',
      'golden.go': goFile('golden', 'golden'),
      LICENSE: 'root license\n',
      'vendor/modules.txt': '# vendored\n',
      'vendor/example.com/x/x.go': 'package x\n',
      'pkg/vendor/y/y.go': 'package y\n',
      'pkg/vendor/v.go': 'package vendor\n', // excluded only by x/mod's offset quirk
      'pkg/p.go': 'package pkg\n',
      'nested/go.mod': 'module example.com/private/golden.git/nested\n',
      'nested/n.go': 'package nested\n',
      'link.go': { symlink: 'golden.go' },
      '.hg_archival.txt': 'x\n',
      'sub/mod/go.mod': 'module example.com/private/golden.git/sub/mod\n\ngo 1.18\n',
      'sub/mod/mod.go': goFile('mod', 'golden-sub'),
      'sub/mod/vendor/z/z.go': 'package z\n',
      'exec.sh': '#!/bin/sh\n',
    },
    'golden',
    ['v1.0.0', 'sub/mod/v1.0.0'],
  );
  git(['update-index', '--chmod=+x', 'exec.sh'], golden);
  await commitFiles(golden, { 'more.go': 'package golden\n' }, 'exec bit', ['v1.0.1']);

  hoard = await startTestServer({
    hcl: `${gitHoardHcl(upstream.hostPort, { clone: 'ref-check-interval = "0s"' })}strategy gomod {
  proxy = "http://127.0.0.1:9"
  private-paths = ["example.com/private/*"]
  private-repo-hosts = { "example.com" = "${upstream.hostPort}" }
}
`,
  });
});

after(async () => {
  if (upstreamOpen) await upstream.close();
  await hoard?.close();
  if (tmp) {
    spawnSync('chmod', ['-R', 'u+w', tmp]); // Go writes its module cache read-only
    await fs.rm(tmp, { recursive: true, force: true });
  }
});

/** The go command's environment: private modules skip the public checksum database, but still go through hoard (GONOPROXY=none). */
const goEnv = (home: string) => goClientEnv({ home, buildCache: path.join(tmp, 'gocache'), proxy: `${hoard.url}/gomod`, privatePaths: 'example.com/private/*' });


const APP_MAIN = `package main

import (
\tlib "example.com/private/lib"
\tsubmod "example.com/private/lib/sub/mod"
\tlibv2 "example.com/private/lib/v2"
\tmajor "example.com/private/major/v2"
\t"example.com/private/nomod"
)

func main() { println(lib.Name(), submod.Name(), libv2.Name(), major.Name(), nomod.Name()) }
`;
const appGoMod = (libVersion: string) => `module example.com/app

go 1.18

require (
\texample.com/private/lib ${libVersion}
\texample.com/private/lib/sub/mod v0.2.0
\texample.com/private/lib/v2 v2.0.0
\texample.com/private/major/v2 v2.1.0
\texample.com/private/nomod v0.1.0
)
`;

const buildApp = (home: string, libVersion: string) => buildGoApp(home, { goMod: appGoMod(libVersion), main: APP_MAIN }, goEnv(home));

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(path.join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out.sort();
}

describe('private modules from git mirrors with the real go client', () => {
  test('go list -m -versions reads tags: prefixed for a subdirectory module, by major version for /vN', async () => {
    const home = path.join(tmp, 'list');
    await fs.mkdir(home, { recursive: true });
    const env = goEnv(home);
    const versions = async (module: string) => (await runGo(['list', '-m', '-versions', module], home, env)).trim();
    assert.equal(await versions('example.com/private/lib'), 'example.com/private/lib v1.0.0 v1.1.0');
    assert.equal(await versions('example.com/private/lib/sub/mod'), 'example.com/private/lib/sub/mod v0.2.0');
    assert.equal(await versions('example.com/private/lib/v2'), 'example.com/private/lib/v2 v2.0.0');
    assert.equal(await versions('example.com/private/major/v2'), 'example.com/private/major/v2 v2.1.0');

    const answer = async (p: string) => {
      const res = await fetch(`${hoard.url}/gomod/${p}`);
      return { status: res.status, cacheControl: res.headers.get('cache-control'), body: await res.text() };
    };
    const list = await answer('example.com/private/lib/@v/list');
    assert.deepEqual([list.status, list.cacheControl, list.body], [200, 'public, max-age=60', 'v1.0.0\nv1.1.0\n']);
    const latest = await answer('example.com/private/lib/@latest');
    assert.equal(latest.cacheControl, 'public, max-age=60');
    assert.equal((JSON.parse(latest.body) as { Version: string }).Version, 'v1.1.0');
    const query = await answer('example.com/private/lib/@v/main.info');
    assert.match((JSON.parse(query.body) as { Version: string }).Version, /^v1\.1\.1-0\.\d{14}-[0-9a-f]{12}$/);
    const unknownVersion = await answer('example.com/private/lib/@v/v9.9.9.info');
    assert.deepEqual([unknownVersion.status, unknownVersion.cacheControl], [404, 'public, max-age=600']);
    assert.match(unknownVersion.body, /^not found: .*unknown revision v9\.9\.9/);
    // A v2 tag is no version of the v0/v1 module, and a v1 tag none of /v2.
    assert.equal((await answer('example.com/private/lib/@v/v2.0.0.mod')).status, 404);
    assert.equal((await answer('example.com/private/lib/v2/@v/v1.1.0.mod')).status, 404);
    // No such repository upstream: a 404 nobody may keep, so the go command can try again later.
    const missing = await answer('example.com/private/missing/@v/list');
    assert.deepEqual([missing.status, missing.cacheControl], [404, 'no-cache, no-store']);
  });

  test("module zips hash as the go command's own, fetched directly from git, do", async () => {
    const viaHoard = path.join(tmp, 'golden-hoard');
    const direct = path.join(tmp, 'golden-direct');
    await fs.mkdir(viaHoard, { recursive: true });
    await fs.mkdir(direct, { recursive: true });
    // Direct mode: the go command runs git itself; this git config sends example.com to the loopback upstream.
    const gitConfig = path.join(direct, 'gitconfig');
    await fs.writeFile(gitConfig, `[url "${upstream.url}/"]\n\tinsteadOf = https://example.com/\n`);
    const directEnv = { ...goEnv(direct), GOPROXY: 'direct', GIT_CONFIG_GLOBAL: gitConfig, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' };
    for (const target of ['example.com/private/golden.git@v1.0.0', 'example.com/private/golden.git@v1.0.1', 'example.com/private/golden.git/sub/mod@v1.0.0']) {
      const ours = JSON.parse(await runGo(['mod', 'download', '-json', target], viaHoard, goEnv(viaHoard))) as { Sum: string; GoModSum: string; Dir: string };
      const theirs = JSON.parse(await runGo(['mod', 'download', '-json', target], direct, directEnv)) as { Sum: string; GoModSum: string; Dir: string };
      assert.equal(ours.Sum, theirs.Sum, `${target}: ${JSON.stringify(await listFiles(ours.Dir))} vs ${JSON.stringify(await listFiles(theirs.Dir))}`);
      assert.equal(ours.GoModSum, theirs.GoModSum, target);
    }
  });

  test('download, build, go get of a commit (pseudo-version), go mod verify, then an offline rebuild from the cache', async () => {
    const home = path.join(tmp, 'online');
    assert.equal(await buildApp(home, 'v1.1.0'), 'lib-v1.1.0 sub-mod-v0.2.0 lib-v2.0.0 major-v2.1.0 nomod-v0.1.0');
    const app = path.join(home, 'app');
    const env = goEnv(home);

    // The zip rules: no vendored packages (modules.txt stays), no nested modules (sub/mod, v2/
    // and nested/ have their own go.mod), no symlinks; the subdirectory module gets the root LICENSE.
    const modcache = path.join(home, 'modcache');
    assert.deepEqual(await listFiles(path.join(modcache, 'example.com/private/lib@v1.1.0')), ['LICENSE', 'dir0/file0.txt', 'go.mod', 'lib.go', 'vendor/modules.txt']);
    assert.deepEqual(await listFiles(path.join(modcache, 'example.com/private/lib/sub/mod@v0.2.0')), ['LICENSE', 'go.mod', 'mod.go']);
    assert.deepEqual(await listFiles(path.join(modcache, 'example.com/private/lib/v2@v2.0.0')), ['LICENSE', 'go.mod', 'lib.go']);
    // No go.mod in the repository: the .mod is synthesized.
    assert.equal(await fs.readFile(path.join(modcache, 'cache/download/example.com/private/nomod/@v/v0.1.0.mod'), 'utf8'), 'module example.com/private/nomod\n');

    // An untagged commit: a pseudo-version after the highest tag among its ancestors.
    await runGo(['get', `example.com/private/lib@${headCommit.slice(0, 12)}`], app, env);
    const goMod = await fs.readFile(path.join(app, 'go.mod'), 'utf8');
    const pseudo = /example\.com\/private\/lib (v1\.1\.1-0\.\d{14}-[0-9a-f]{12})\n/.exec(goMod)?.[1];
    assert.ok(pseudo, goMod);
    assert.ok(pseudo.endsWith(headCommit.slice(0, 12)), pseudo);
    await runGo(['build', '-o', 'app', '.'], app, env);
    assert.equal(spawnSync(path.join(app, 'app'), { encoding: 'utf8' }).stderr.trim(), 'lib-head sub-mod-v0.2.0 lib-v2.0.0 major-v2.1.0 nomod-v0.1.0');
    assert.match(await runGo(['mod', 'verify'], app, env), /all modules verified/);

    // A pseudo-version whose timestamp is not the commit's is refused.
    const forged = pseudo.replace(/\.(\d{14})-/, (_m, ts: string) => `.${String(Number(ts.slice(0, 4)) - 1)}${ts.slice(4)}-`);
    const refused = await fetch(`${hoard.url}/gomod/example.com/private/lib/@v/${forged}.info`);
    assert.equal(refused.status, 404);
    assert.match(await refused.text(), /does not match the commit time/);

    // Upstream gone, module cache empty: every module file comes from hoard's cache.
    await upstream.close();
    upstreamOpen = false;
    const offline = await buildApp(path.join(tmp, 'offline'), pseudo);
    assert.equal(offline, 'lib-head sub-mod-v0.2.0 lib-v2.0.0 major-v2.1.0 nomod-v0.1.0');
    // The same zips, byte for byte the same module content (go.sum of both runs agree).
    const sums = async (dir: string) => (await fs.readFile(path.join(dir, 'app', 'go.sum'), 'utf8')).split('\n').filter((l) => l.includes(pseudo)).sort();
    assert.deepEqual(await sums(path.join(tmp, 'offline')), await sums(home));

    // Disable-Module-Fetch: cached files are served, nothing else is built or fetched.
    const cached = await fetch(`${hoard.url}/gomod/example.com/private/lib/@v/v1.1.0.mod`, { headers: { 'disable-module-fetch': 'true' } });
    assert.equal(cached.status, 200);
    assert.equal(cached.headers.get('cache-control'), 'public, max-age=604800');
    assert.equal(await cached.text(), 'module example.com/private/lib\n\ngo 1.18\n');
    const notCached = await fetch(`${hoard.url}/gomod/example.com/private/lib/@v/v1.0.0.zip`, { headers: { 'disable-module-fetch': 'true' } });
    assert.equal(notCached.status, 404);
    assert.match(await notCached.text(), /not cached \(Disable-Module-Fetch\)/);
    const list = await fetch(`${hoard.url}/gomod/example.com/private/lib/@v/list`, { headers: { 'disable-module-fetch': 'true' } });
    assert.equal(list.status, 404);
  });
});
