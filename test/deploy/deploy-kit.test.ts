// The deployment kit is checked with the tools that would reject it in production: the Kubernetes
// OpenAPI schemas (kubernetes-models), systemd's own unit verifier, and hoard's config loader for
// every config file the kit ships.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { loadConfig } from '../../src/config/load.js';
import { allProviderSpecs } from '../../src/app/wiring.js';

const root = path.resolve(import.meta.dirname, '../..');
const read = (rel: string) => readFileSync(path.join(root, rel), 'utf8');

type Manifest = { kind: string; metadata: { name: string }; [k: string]: unknown };
const MODELS: Record<string, new (data: never) => { validate(): void }> = { ConfigMap, Service, StatefulSet, PodDisruptionBudget };

function manifests(): Manifest[] {
  const out: Manifest[] = [];
  for (const file of ['configmap.yaml', 'statefulset.yaml', 'service.yaml', 'pdb.yaml']) {
    for (const doc of parseAllDocuments(read(`deploy/kubernetes/${file}`))) {
      assert.deepEqual(doc.errors, [], `${file}: YAML errors`);
      out.push(doc.toJS() as Manifest);
    }
  }
  return out;
}

const loadKitConfig = (text: string, source: string) => loadConfig({ text, env: {}, cwd: '/', specs: allProviderSpecs(), source });

describe('deployment kit', () => {
  test('every Kubernetes manifest validates against the Kubernetes schema', () => {
    const all = manifests();
    assert.deepEqual(all.map((m) => m.kind).sort(), ['ConfigMap', 'PodDisruptionBudget', 'Service', 'Service', 'StatefulSet']);
    for (const m of all) {
      const Model = MODELS[m.kind];
      assert.ok(Model, `no model for ${m.kind}`);
      assert.doesNotThrow(() => new Model(m as never).validate(), `${m.kind}/${m.metadata.name}`);
    }
    // The validator itself rejects a wrong type, so the check above means something.
    const sts = all.find((m) => m.kind === 'StatefulSet') as Manifest & { spec: Record<string, unknown> };
    assert.throws(() => new StatefulSet({ ...sts, spec: { ...sts.spec, replicas: 'three' } } as never).validate());
  });

  test('the StatefulSet probes the right endpoints, mounts state and exposes what the config listens on', () => {
    const all = manifests();
    const sts = all.find((m) => m.kind === 'StatefulSet') as never as {
      spec: {
        selector: { matchLabels: Record<string, string> };
        template: { metadata: { labels: Record<string, string> }; spec: { securityContext: { runAsNonRoot: boolean }; containers: Array<Record<string, any>> } };
        volumeClaimTemplates: Array<{ metadata: { name: string } }>;
      };
    };
    const c = sts.spec.template.spec.containers[0]!;
    const portOf = (name: string) => (c.ports as Array<{ name: string; containerPort: number }>).find((p) => p.name === name)?.containerPort;
    assert.equal(c.readinessProbe.httpGet.path, '/_readiness');
    assert.equal(c.livenessProbe.httpGet.path, '/_liveness');
    assert.equal(sts.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.ok(sts.spec.volumeClaimTemplates.some((v) => v.metadata.name === 'state'));

    const cm = all.find((m) => m.kind === 'ConfigMap') as never as { data: Record<string, string> };
    const cfg = loadKitConfig(cm.data['hoard.hcl']!, 'configmap hoard.hcl');
    assert.equal(cfg.global.state, '/var/lib/hoard');
    assert.ok(c.volumeMounts.some((v: { mountPath: string }) => v.mountPath === cfg.global.state));
    assert.equal(portOf('http'), Number(cfg.global.bind.split(':').pop()));
    assert.equal(portOf('metrics'), cfg.global.metrics.port);
    assert.equal(cfg.global.metrics.bind, '0.0.0.0');

    const pdb = all.find((m) => m.kind === 'PodDisruptionBudget') as never as { spec: { selector: { matchLabels: Record<string, string> } } };
    for (const selector of [pdb.spec.selector.matchLabels, sts.spec.selector.matchLabels]) {
      for (const [k, v] of Object.entries(selector)) assert.equal(sts.spec.template.metadata.labels[k], v);
    }
  });

  test('the systemd unit passes systemd-analyze verify', (t) => {
    const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
    if (probe.error) {
      t.skip('systemd-analyze is not installed (Debian: apt-get install systemd)');
      return;
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'hoard-unit-'));
    try {
      // verify checks that ExecStart's binary exists: point it at this machine's node.
      const unit = read('deploy/systemd/hoard.service').replace('/usr/bin/node', process.execPath);
      writeFileSync(path.join(dir, 'hoard.service'), unit);
      const res = spawnSync('systemd-analyze', ['verify', path.join(dir, 'hoard.service')], { encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
      assert.equal(res.stderr.trim(), '', 'verify printed warnings');
      // The verifier is not a no-op: an unknown key is reported.
      writeFileSync(path.join(dir, 'bad.service'), `${unit}\nBogusKey=1\n`);
      const bad = spawnSync('systemd-analyze', ['verify', path.join(dir, 'bad.service')], { encoding: 'utf8' });
      assert.match(bad.stderr, /BogusKey/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the Dockerfile is multi-stage, runs as non-root, ships git/tar/zstd and checks /_liveness; its config loads', () => {
    const dockerfile = read('Dockerfile');
    const stages = dockerfile.match(/^FROM\s/gm) ?? [];
    assert.ok(stages.length >= 2, 'multi-stage build');
    const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const user = /^USER\s+(\S+)/m.exec(finalStage)?.[1] ?? '';
    assert.ok(user && !/^(0|root)(:|$)/.test(user), `final stage runs as ${user || 'root'}`);
    for (const tool of ['git', 'tar', 'zstd']) assert.match(finalStage, new RegExp(`apt-get install[^\\n]*\\b${tool}\\b`));
    assert.match(finalStage, /^HEALTHCHECK [^\n]*(\\\n[^\n]*)*\/_liveness/m);
    const cfg = loadKitConfig(read('deploy/docker/hoard.hcl'), 'deploy/docker/hoard.hcl');
    assert.equal(cfg.global.bind, '0.0.0.0:8080');
    assert.match(dockerfile, /^EXPOSE 8080 9102$/m);
    assert.equal(cfg.global.metrics.port, 9102);
  });
});
