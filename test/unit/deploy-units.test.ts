// The remote targets' pure parts: kubectl's rollout decision, reading pods for a reason, the
// loopback rule, ko:// resolution in YAML, and the config sections' validation.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { validateConfig } from '../../src/config/validate.js';
import { resolveManifests } from '../../src/deploy/kube-manifests.js';
import { loadKubeConnection } from '../../src/deploy/kube-config.js';
import { diagnosePods, rolloutBlocker, rolloutStatus, type Deployment, type Pod } from '../../src/deploy/kube-rollout.js';
import { formatPlainEvent } from '../../ui/plain.js';
import { reduceAll } from '../../ui/dashboard/state.js';
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

describe('rolloutBlocker: what stops a rollout for good, said at once', () => {
  it('a paused Deployment, with the kubectl line that resumes it', () => {
    const paused: Deployment = { ...deployment(2, 1, { observedGeneration: 1 }), metadata: { name: 'web', namespace: 'team', generation: 2 } };
    paused.spec.paused = true;
    assert.deepEqual(rolloutBlocker(paused, 2), {
      reason: 'DeploymentPaused',
      message: 'deployment "web" is paused: the new image is set but will not roll out until it is resumed',
      hint: 'kubectl rollout resume deployment/web -n team',
    });
  });

  it('ReplicaFailure (a Pod Security violation) in one line, only once the new generation is observed', () => {
    const message = 'pods "web-5d4f-x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false),\nrunAsNonRoot != true';
    const failing = deployment(3, 1, { observedGeneration: 3, updatedReplicas: 0, conditions: [{ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message }] });
    const blocker = rolloutBlocker(failing, 3);
    assert.equal(blocker?.reason, 'FailedCreate');
    assert.equal(blocker?.message, `deployment "web" cannot create pods: ${message.replace('\n', ' ')}`);
    assert.match(blocker?.hint ?? '', /Pod Security level/);
    assert.equal(rolloutBlocker(failing, 4), undefined, 'a read older than the patch');
    assert.equal(rolloutBlocker({ ...failing, status: { ...failing.status, conditions: [{ type: 'ReplicaFailure', status: 'False', reason: 'FailedCreate' }] } }, 3), undefined);
    assert.equal(rolloutBlocker(deployment(3, 1, { observedGeneration: 3, conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] }))?.reason, 'ProgressDeadlineExceeded');
    assert.equal(rolloutBlocker(deployment(3, 1, { observedGeneration: 3, updatedReplicas: 0 })), undefined);
  });
});

describe('kubeconfig user fields @kubernetes/client-node leaves out', () => {
  it('tokenFile (relative to the kubeconfig), as-uid, as-groups and as-user-extra; KUBERNETES_EXEC_INFO for exec plugins', async (t) => {
    const dir = await makeTempDir('kubeconfig-extras', t);
    const file = join(dir, 'config');
    await writeFile(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: Zm9v}}]',
        'users:',
        '- {name: file-user, user: {tokenFile: secrets/token, as: alice, as-uid: "42", as-groups: [dev, ops], as-user-extra: {scopes: [read]}}}',
        '- {name: exec-user, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: plugin, provideClusterInfo: true}}}',
        'contexts: [{name: f, context: {cluster: c, user: file-user}}, {name: e, context: {cluster: c, user: exec-user}}]',
        'current-context: f',
        '',
      ].join('\n'),
    );
    const connection = await loadKubeConnection({ paths: [file], source: 'KUBECONFIG' });
    assert.deepEqual(connection.extras, { tokenFile: join(dir, 'secrets/token'), impersonateUid: '42', impersonateGroups: ['dev', 'ops'], impersonateExtra: { scopes: ['read'] } });
    const exec = await loadKubeConnection({ paths: [file], source: 'KUBECONFIG', context: 'e' });
    const env = (exec.kc.getCurrentUser()?.exec as { env: Array<{ name: string; value: string }> }).env;
    const info = JSON.parse(env.find((e) => e.name === 'KUBERNETES_EXEC_INFO')?.value ?? '{}');
    assert.deepEqual(info, { apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', spec: { interactive: false, cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': 'Zm9v' } } });
  });
});

describe('plain lines for preflight and rollout.failed', () => {
  it('carry the target and its own reason in one line', () => {
    const base = { time: 0, service: 'hello', iteration: 2 };
    assert.equal(formatPlainEvent({ ...base, type: 'rollout.failed', target: 'kubernetes', reason: 'CrashLoopBackOff', message: 'rollout of deployment "hello" failed', logs: ['boom', 'exit 2'] }), '[hello #2] rollout failed (kubernetes): CrashLoopBackOff: rollout of deployment "hello" failed (2 log lines)');
    assert.equal(formatPlainEvent({ time: 0, service: 'hello', type: 'preflight', target: 'kubernetes', ok: false, ms: 12, reason: 'Forbidden', message: 'may not patch' }), 'kubernetes preflight failed (Forbidden): may not patch');
    assert.equal(formatPlainEvent({ time: 0, type: 'preflight', target: 'kubernetes', ok: true, ms: 12, message: 'deployment/hello' }), 'kubernetes preflight ok in 12 ms: deployment/hello');
  });
});

describe('the dashboard shows preflight and rollout failures with the target\'s reason', () => {
  it('as the notice, and a crash\'s log lines in the service\'s panel', () => {
    const state = reduceAll([
      { time: 1, type: 'preflight', service: 'hello', target: 'kubernetes', ok: true, ms: 5, message: 'deployment/hello: patch allowed' },
      { time: 2, type: 'rollout.failed', service: 'hello', iteration: 1, target: 'kubernetes', reason: 'CrashLoopBackOff', message: 'rollout of deployment "hello" failed', logs: ['panic: boom'] },
    ]);
    assert.equal(state.notices.at(-1)?.message, 'rollout failed: CrashLoopBackOff: rollout of deployment "hello" failed');
    assert.deepEqual(state.services[0]?.logs.map((l) => l.line), ['preflight ok: deployment/hello: patch allowed', 'panic: boom']);
    const denied = reduceAll([{ time: 1, type: 'preflight', service: 'hello', target: 'kubernetes', ok: false, ms: 5, reason: 'Forbidden', message: 'may not patch' }]);
    assert.equal(denied.notices.at(-1)?.message, 'kubernetes preflight failed: Forbidden: may not patch');
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
    assert.deepEqual(first.skipped.map(({ object, missing }) => ({ object, missing })), [{ object: 'Deployment/api', missing: ['example.com/proxy'] }]);
    assert.deepEqual(first.objects.map((o) => `${o.kind}/${o.name}`), ['Service/api']);
    refs.set('example.com/proxy', 'r.example/proxy@sha256:2');
    const second = await resolveManifests([file], refs);
    const api = second.objects[0];
    assert.deepEqual(api?.importPaths, ['example.com/api', 'example.com/proxy']);
    assert.match(api?.yaml ?? '', /^# api\n/);
    assert.match(api?.yaml ?? '', /      - image: 'r\.example\/api@sha256:1' # pinned by tsko\n      - image: r\.example\/proxy@sha256:2\n$/);
    // The apply body is the object as JSON: no comment, no `---`.
    assert.deepEqual(api?.body, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'api' }, spec: { template: { spec: { containers: [{ image: 'r.example/api@sha256:1' }, { image: 'r.example/proxy@sha256:2' }] } } } });
    assert.doesNotMatch(JSON.stringify(second.objects.map((o) => o.body)), /pinned|---/);
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
