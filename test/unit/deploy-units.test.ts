// The remote targets' pure parts: kubectl's rollout decision, reading pods for a reason, the
// loopback rule, ko:// resolution in YAML, and the config sections' validation.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/validate.js';
import { resolveManifests } from '../../src/deploy/kube-manifests.js';
import { diagnosePods, rolloutStatus, type Deployment, type Pod } from '../../src/deploy/kube-rollout.js';
import { assertRegistryReachable } from '../../src/deploy/loopback.js';
import { isLoopbackHost } from '../../src/net/loopback.js';
import { makeTempDir } from '../support/tmp.js';

const deployment = (generation: number, spec: number | undefined, status: NonNullable<Deployment['status']>): Deployment => ({
  metadata: { name: 'web', generation },
  spec: { ...(spec === undefined ? {} : { replicas: spec }), template: { spec: { containers: [{ name: 'app' }] } } },
  status,
});

describe('rolloutStatus, as kubectl rollout status decides', () => {
  it('waits for the spec to be observed, then updated, old-terminated and available replicas', () => {
    assert.deepEqual(rolloutStatus(deployment(3, 2, { observedGeneration: 2 })), { state: 'waiting', message: 'Waiting for deployment spec update to be observed...' });
    assert.equal(rolloutStatus(deployment(3, 2, { observedGeneration: 3, updatedReplicas: 1, replicas: 3 })).message, 'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...');
    assert.equal(rolloutStatus(deployment(3, 2, { observedGeneration: 3, updatedReplicas: 2, replicas: 3, availableReplicas: 2 })).message, 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...');
    assert.equal(rolloutStatus(deployment(3, 2, { observedGeneration: 3, updatedReplicas: 2, replicas: 2, availableReplicas: 1 })).message, 'Waiting for deployment "web" rollout to finish: 1 of 2 updated replicas are available...');
    assert.deepEqual(rolloutStatus(deployment(3, 2, { observedGeneration: 3, updatedReplicas: 2, replicas: 2, availableReplicas: 2 })), { state: 'done', message: 'deployment "web" successfully rolled out' });
    assert.equal(rolloutStatus(deployment(0, 0, {})).state, 'done', 'zero replicas roll out at once');
  });

  it('fails on ProgressDeadlineExceeded, and never calls a read older than the patch done', () => {
    const stale = deployment(3, 1, { observedGeneration: 3, updatedReplicas: 1, replicas: 1, availableReplicas: 1 });
    assert.equal(rolloutStatus(stale, 4).state, 'waiting');
    const deadline = deployment(4, 1, { observedGeneration: 4, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] });
    assert.deepEqual(rolloutStatus(deadline), { state: 'failed', message: 'deployment "web" exceeded its progress deadline' });
  });
});

describe('diagnosePods', () => {
  const pod = (name: string, image: string, status: Pod['status']): Pod => ({ metadata: { name }, spec: { containers: [{ name: 'app', image }] }, status });
  it('looks only at pods running the new image, and puts what will not cure itself first', () => {
    const pods = [
      pod('old', 'img@old', { phase: 'Running', containerStatuses: [{ name: 'app', state: { waiting: { reason: 'CrashLoopBackOff' } } }] }),
      pod('pending', 'img@new', { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available' }] }),
      pod('pull', 'img@new', { phase: 'Pending', containerStatuses: [{ name: 'app', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image' } } }] }),
    ];
    assert.deepEqual(diagnosePods(pods, 'img@new'), { pod: 'pull', container: 'app', reason: 'ImagePullBackOff', message: 'Back-off pulling image', fatal: true, wantsLogs: false });
    assert.deepEqual(diagnosePods(pods.slice(0, 2), 'img@new'), { pod: 'pending', reason: 'Unschedulable', message: 'Pending: 0/3 nodes are available', fatal: false, wantsLogs: false });
    assert.equal(diagnosePods(pods, 'img@other'), undefined);
  });
});

describe('the loopback rule', () => {
  it('knows loopback hosts in every spelling', () => {
    for (const host of ['127.0.0.1:5001', 'localhost', 'localhost:5000/team', 'https://127.0.0.1:6443', '[::1]:5000', 'http://[::1]:80/', '127.1.2.3']) assert.ok(isLoopbackHost(host), host);
    for (const host of ['gcr.io/p', 'europe-docker.pkg.dev/p/r', 'https://10.0.0.1', 'https://run.googleapis.com', '192.168.1.2:5000', 'localhost.example.com']) assert.ok(!isLoopbackHost(host), host);
  });
  it('refuses only a loopback registry with an endpoint elsewhere', () => {
    assert.throws(() => assertRegistryReachable('127.0.0.1:5001/hello@sha256:x', 'https://10.0.0.1', 'the cluster', 'set it'), /images go to 127\.0\.0\.1:5001, which the cluster cannot pull from/);
    assertRegistryReachable('127.0.0.1:5001/hello', 'https://127.0.0.1:6443', 'the cluster', 'set it');
    assertRegistryReachable('gcr.io/p/hello', 'https://10.0.0.1', 'the cluster', 'set it');
  });
});

describe('resolveManifests', () => {
  it('replaces known ko:// references in place, keeps comments, and holds back objects whose image is not pushed yet', async (t) => {
    const dir = await makeTempDir('manifests', t);
    const file = join(dir, 'app.yaml');
    await writeFile(file, "# api\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec:\n      containers:\n      - image: 'ko://example.com/api' # pinned by tsko\n      - image: ko://example.com/proxy\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\n");
    const refs = new Map([['example.com/api', 'r.example/api@sha256:1']]);
    const first = await resolveManifests([file], refs);
    assert.deepEqual(first.skipped, [{ object: 'Deployment/api', missing: ['example.com/proxy'] }]);
    assert.deepEqual(first.objects.map((o) => `${o.kind}/${o.name}`), ['Service/api']);
    refs.set('example.com/proxy', 'r.example/proxy@sha256:2');
    const second = await resolveManifests([file], refs);
    const api = second.objects[0];
    assert.deepEqual(api?.importPaths, ['example.com/api', 'example.com/proxy']);
    assert.match(api?.yaml ?? '', /^# api\n/);
    assert.match(api?.yaml ?? '', /      - image: 'r\.example\/api@sha256:1' # pinned by tsko\n      - image: r\.example\/proxy@sha256:2\n$/);
    await assert.rejects(resolveManifests([join(dir, 'absent.yaml')], refs), /cannot read manifest .*absent\.yaml: ENOENT/);
  });
});

describe('config: dev.kubernetes and dev.cloudrun', () => {
  it('accepts the typed keys and names the first bad one', () => {
    validateConfig({ dev: { target: 'kubernetes', kubernetes: { context: 'c', namespace: 'n', deployment: 'd', container: 'x', manifests: ['a.yaml'], timeout: 60 }, cloudrun: { project: 'p', region: 'r', service: 's', timeout: 30 } } }, 'tsko.config.ts');
    assert.throws(() => validateConfig({ dev: { kubernetes: { deploy: 'x' } } }, 'tsko.config.ts'), /tsko\.config\.ts: dev\.kubernetes\.deploy is not a known key \(known: context, namespace, deployment, container, manifests, timeout\)/);
    assert.throws(() => validateConfig({ dev: { kubernetes: { manifests: 'a.yaml' } } }, 'x'), /dev\.kubernetes\.manifests must be a list of strings/);
    assert.throws(() => validateConfig({ dev: { cloudrun: { timeout: -1 } } }, 'x'), /dev\.cloudrun\.timeout must be a positive number/);
    assert.throws(() => validateConfig({ dev: { cloudrun: { project: 7 } } }, 'x'), /dev\.cloudrun\.project must be a string/);
  });
});
