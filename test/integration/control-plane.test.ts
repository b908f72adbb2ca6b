// The tests' real Kubernetes control plane (test/support/control-plane), held to kubectl: real
// etcd, kube-apiserver and kube-controller-manager roll Deployments out with the stand-in kubelet;
// crash loops serve their logs through the real pods/log path; missing images fail the pull;
// PodSecurity, RBAC and token auth are the apiserver's own; stop() frees every port.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeImage, skopeo, writeOciLayout } from '../fixtures/registry/images.js';
import { startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { defaultBehaviour, startControlPlane, type ControlPlane, type PodBehaviour } from '../support/control-plane/index.js';
import { kubeClient } from '../support/control-plane/kube-client.js';
import { makeTempDir } from '../support/tmp.js';

const ROLLOUT_TIMEOUT = '120s';
const CRASH_LOGS = ['starting hello', 'panic: listen tcp :8080: bind: address already in use', 'goroutine 1 [running]:'];

interface Pod {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { containers: { image: string }[] };
  status: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { ready: boolean; restartCount: number; state: { waiting?: { reason: string } }; lastState?: { terminated?: { exitCode: number } } }[];
  };
}

interface Deployment {
  status: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}

function deployment(name: string, namespace: string, image: string, replicas = 2): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'app', image }] } },
    },
  });
}

/** Polls fn until it returns a value, at most `tries` times, 250 ms apart. */
async function eventually<T>(what: string, tries: number, fn: () => Promise<T | undefined>): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not reached after ${tries} tries${last instanceof Error ? ` (${last.message})` : ''}`);
}

/** GET of an apiserver path with the given headers only (none: anonymous). */
async function httpsGet(cp: ControlPlane, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const ca = await readFile(cp.caFile);
  return new Promise((resolve, reject) => {
    const req = request(`${cp.server}${path}`, { ca, headers, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the test control plane, held to kubectl', () => {
  let dir: string;
  let registry: DockerRegistry;
  let cp: ControlPlane;
  let imageA: string;
  let imageB: string;
  const crashImage = 'example.invalid/crasher:1';
  const behaviour = (image: string): Promise<PodBehaviour> | PodBehaviour =>
    image === crashImage ? { kind: 'crash', logs: CRASH_LOGS, exitCode: 2 } : defaultBehaviour(image);

  /** Pushes a fresh small image with skopeo; returns its digest reference. */
  const pushImage = async (repository: string): Promise<string> => {
    const image = await makeImage();
    const layout = join(dir, `layout-${repository.replace(/\W/g, '_')}-${image.digest.slice(7, 15)}`);
    await writeOciLayout(layout, 'v', { bytes: image.manifest, mediaType: image.mediaType }, [...image.layers, image.config]);
    const digestFile = join(dir, 'digest');
    await skopeo(['copy', '--dest-tls-verify=false', '--digestfile', digestFile, `oci:${layout}:v`, `docker://${registry.host}/${repository}:v`], dir);
    return `${registry.host}/${repository}@${(await readFile(digestFile, 'utf8')).trim()}`;
  };

  const pods = async (namespace: string, selector: string): Promise<Pod[]> => {
    const got = await cp.kubectl(['get', 'pods', '-n', namespace, '-l', selector, '-o', 'json']);
    assert.equal(got.exitCode, 0, got.stderr);
    return (JSON.parse(got.stdout) as { items: Pod[] }).items;
  };

  before(async () => {
    dir = await makeTempDir('control-plane');
    registry = await startDockerRegistry();
    cp = await startControlPlane({
      dir: join(dir, 'cp'),
      users: [{ name: 'nobody', token: 'nobody-token-0123456789' }, { name: 'viewer', token: 'viewer-token-0123456789', groups: ['tsko:viewers'] }],
      behaviour,
    });
    imageA = await pushImage('kcp/app');
    imageB = await pushImage('kcp/app');
  });
  after(async () => {
    await cp?.stop();
    await registry?.stop();
  });

  it('serves the Kubernetes version it was built as', async () => {
    const v = await cp.kubectl(['version', '-o', 'json']);
    assert.equal(v.exitCode, 0, v.stderr);
    assert.equal((JSON.parse(v.stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion, cp.version);
  });

  it('rolls out a Deployment of 2 replicas: kubectl rollout status succeeds and both pods are Ready', async () => {
    assert.equal((await cp.kubectl(['create', 'namespace', 'roll'])).exitCode, 0);
    const applied = await cp.kubectl(['apply', '-f', '-'], { input: deployment('web', 'roll', imageA) });
    assert.equal(applied.exitCode, 0, applied.stderr);
    const status = await cp.kubectl(['rollout', 'status', 'deployment/web', '-n', 'roll', `--timeout=${ROLLOUT_TIMEOUT}`], { timeoutMs: 150_000 });
    assert.equal(status.exitCode, 0, `${status.stdout}\n${status.stderr}\n${cp.logs()}`);
    assert.match(status.stdout, /deployment "web" successfully rolled out/);
    // The apiserver's audit log has the create, with the object as sent.
    const audit = (await readFile(cp.auditLogFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as {
      verb: string; user: { username: string }; objectRef?: { resource?: string; namespace?: string }; requestObject?: { kind?: string };
    });
    const created = audit.find((e) => e.verb === 'create' && e.objectRef?.resource === 'deployments' && e.objectRef.namespace === 'roll');
    assert.equal(created?.user.username, 'admin');
    assert.equal(created?.requestObject?.kind, 'Deployment');
    const running = await pods('roll', 'app=web');
    assert.equal(running.length, 2);
    for (const pod of running) {
      assert.equal(pod.status.phase, 'Running');
      assert.equal(pod.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True', pod.metadata.name);
      assert.equal(pod.spec.containers[0]?.image, imageA);
    }
  });

  it('kubectl set image makes a second ReplicaSet, the rollout completes and the old pods go away', async () => {
    const set = await cp.kubectl(['set', 'image', 'deployment/web', `app=${imageB}`, '-n', 'roll']);
    assert.equal(set.exitCode, 0, set.stderr);
    const status = await cp.kubectl(['rollout', 'status', 'deployment/web', '-n', 'roll', `--timeout=${ROLLOUT_TIMEOUT}`], { timeoutMs: 150_000 });
    assert.equal(status.exitCode, 0, `${status.stdout}\n${status.stderr}`);
    const rs = await cp.kubectl(['get', 'replicasets', '-n', 'roll', '-l', 'app=web', '-o', 'json']);
    const sets = (JSON.parse(rs.stdout) as { items: { spec: { replicas: number; template: { spec: { containers: { image: string }[] } } }; status: { readyReplicas?: number } }[] }).items;
    assert.equal(sets.length, 2);
    const byImage = new Map(sets.map((s) => [s.spec.template.spec.containers[0]?.image, s]));
    assert.equal(byImage.get(imageB)?.spec.replicas, 2);
    assert.equal(byImage.get(imageB)?.status.readyReplicas, 2);
    assert.equal(byImage.get(imageA)?.spec.replicas, 0);
    // Old pods were marked for deletion with a grace period; the kubelet finalizes them.
    const left = await eventually('only the new pods left', 120, async () => {
      const now = await pods('roll', 'app=web');
      return now.length === 2 && now.every((p) => p.spec.containers[0]?.image === imageB) ? now : undefined;
    });
    assert.equal(left.length, 2);
  });

  it('a crashing container shows CrashLoopBackOff with a climbing restart count, and its logs come through pods/log', async () => {
    assert.equal((await cp.kubectl(['create', 'namespace', 'crash'])).exitCode, 0);
    const applied = await cp.kubectl(['apply', '-f', '-'], { input: deployment('crasher', 'crash', crashImage, 1) });
    assert.equal(applied.exitCode, 0, applied.stderr);
    const pod = await eventually('a pod restarted at least twice', 120, async () => {
      const [p] = await pods('crash', 'app=crasher');
      const s = p?.status.containerStatuses?.[0];
      return s !== undefined && s.restartCount >= 2 ? p : undefined;
    });
    const s = pod.status.containerStatuses?.[0];
    assert.equal(s?.state.waiting?.reason, 'CrashLoopBackOff');
    assert.equal(s?.lastState?.terminated?.exitCode, 2);
    assert.equal(s?.ready, false);

    const events = await cp.kubectl(['get', 'events', '-n', 'crash', '--field-selector', `involvedObject.name=${pod.metadata.name},reason=BackOff`, '-o', 'json']);
    const backOff = (JSON.parse(events.stdout) as { items: { type: string; message: string }[] }).items;
    assert.ok(backOff.length >= 1, events.stdout);
    assert.equal(backOff[0]?.type, 'Warning');
    assert.match(backOff[0]?.message ?? '', /^Back-off restarting failed container app in pod crasher-/);

    const logs = await cp.kubectl(['logs', 'deployment/crasher', '-n', 'crash']);
    assert.equal(logs.exitCode, 0, logs.stderr);
    assert.equal(logs.stdout, CRASH_LOGS.map((l) => `${l}\n`).join(''));
    const tail = await cp.kubectl(['logs', pod.metadata.name, '-n', 'crash', '--tail=1']);
    assert.equal(tail.stdout, `${CRASH_LOGS.at(-1)}\n`);

    // A plain GET of the pods/log subresource through the apiserver, as a client library sends it.
    for (const accept of [undefined, '*/*']) {
      const res = await httpsGet(cp, `/api/v1/namespaces/crash/pods/${pod.metadata.name}/log?container=app`, {
        Authorization: `Bearer ${cp.adminToken}`,
        ...(accept !== undefined ? { Accept: accept } : {}),
      });
      assert.equal(res.status, 200, `Accept ${accept ?? '(none)'}: ${res.body}`);
      assert.equal(res.body, CRASH_LOGS.map((l) => `${l}\n`).join(''));
    }
    // The real apiserver refuses text/plain for pods/log (issue 13's first bullet).
    const plain = await httpsGet(cp, `/api/v1/namespaces/crash/pods/${pod.metadata.name}/log?container=app`, { Authorization: `Bearer ${cp.adminToken}`, Accept: 'text/plain' });
    assert.equal(plain.status, 406, plain.body);
  });

  it('an image missing from the registry shows ErrImagePull, then ImagePullBackOff; once pushed the pod becomes Ready', async () => {
    assert.equal((await cp.kubectl(['create', 'namespace', 'pull'])).exitCode, 0);
    const image = await makeImage();
    const missing = `${registry.host}/kcp/later@${image.digest}`;
    // Every status the kubelet writes is a watch event: none is missed between polls.
    const client = kubeClient(cp.server, await readFile(cp.caFile, 'utf8'), cp.adminToken);
    const reasons = new Set<string>();
    const watchAbort = new AbortController();
    const timeout = setTimeout(() => watchAbort.abort(), 90_000);
    const list = await client.request('GET', '/api/v1/namespaces/pull/pods');
    const rv = (JSON.parse(list.body) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const watching = client.watch(`/api/v1/namespaces/pull/pods?watch=1&resourceVersion=${rv}`, (event) => {
      const pod = event.object as unknown as Pod;
      const reason = pod.status.containerStatuses?.[0]?.state.waiting?.reason;
      if (reason !== undefined) reasons.add(reason);
      if (reasons.has('ErrImagePull') && reasons.has('ImagePullBackOff')) watchAbort.abort();
    }, watchAbort.signal).catch(() => {});
    try {
      const applied = await cp.kubectl(['apply', '-f', '-'], { input: deployment('later', 'pull', missing, 1) });
      assert.equal(applied.exitCode, 0, applied.stderr);
      await watching;
    } finally {
      clearTimeout(timeout);
      watchAbort.abort();
      client.close();
    }
    assert.deepEqual([...reasons].sort(), ['ErrImagePull', 'ImagePullBackOff']);
    const [pending] = await pods('pull', 'app=later');
    assert.equal(pending?.status.phase, 'Pending');
    assert.equal(pending?.status.conditions?.find((c) => c.type === 'Ready')?.status, 'False');

    const events = await cp.kubectl(['get', 'events', '-n', 'pull', '--field-selector', 'reason=Failed', '-o', 'jsonpath={range .items[*]}{.message}{"\\n"}{end}']);
    assert.match(events.stdout, new RegExp(`^Failed to pull image "${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}": `, 'm'));
    assert.match(events.stdout, /^Error: ErrImagePull$/m);

    // Push exactly that image: the next pull retry finds it.
    const layout = join(dir, 'layout-later');
    await writeOciLayout(layout, 'v', { bytes: image.manifest, mediaType: image.mediaType }, [...image.layers, image.config]);
    await skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:v`, `docker://${registry.host}/kcp/later:v`], dir);
    const status = await cp.kubectl(['rollout', 'status', 'deployment/later', '-n', 'pull', `--timeout=${ROLLOUT_TIMEOUT}`], { timeoutMs: 150_000 });
    assert.equal(status.exitCode, 0, `${status.stdout}\n${status.stderr}`);
  });

  it('in a namespace enforcing Pod Security "restricted", the Deployment gets ReplicaFailure / FailedCreate', async () => {
    assert.equal((await cp.kubectl(['create', 'namespace', 'locked'])).exitCode, 0);
    assert.equal((await cp.kubectl(['label', 'namespace', 'locked', 'pod-security.kubernetes.io/enforce=restricted'])).exitCode, 0);
    const applied = await cp.kubectl(['apply', '-f', '-'], { input: deployment('web', 'locked', imageA) });
    assert.equal(applied.exitCode, 0, applied.stderr);
    const failure = await eventually('a ReplicaFailure condition', 240, async () => {
      const got = await cp.kubectl(['get', 'deployment', 'web', '-n', 'locked', '-o', 'json']);
      return (JSON.parse(got.stdout) as Deployment).status.conditions?.find((c) => c.type === 'ReplicaFailure');
    });
    assert.equal(failure.status, 'True');
    assert.equal(failure.reason, 'FailedCreate');
    assert.match(failure.message ?? '', /violates PodSecurity "restricted:latest"/);
    assert.deepEqual(await pods('locked', 'app=web'), []);
  });

  it('RBAC is enforced: a token user without bindings gets 403, a bound one (inline token or tokenFile) is let in', async () => {
    const nobody = await cp.writeKubeconfig({ name: 'nobody', token: 'nobody-token-0123456789', namespace: 'roll' });
    const denied = await cp.kubectl(['get', 'deployments'], { kubeconfig: nobody });
    assert.notEqual(denied.exitCode, 0);
    assert.match(denied.stderr, /Error from server \(Forbidden\): deployments\.apps is forbidden: User "nobody" cannot list resource "deployments" in API group "apps" in the namespace "roll"/);
    assert.doesNotMatch(denied.stderr, /nobody-token/, 'the token is not echoed');

    // kubectl prompts for a username when a kubeconfig user has no credentials, so anonymous is a plain GET.
    const anonymous = await httpsGet(cp, '/apis/apps/v1/namespaces/roll/deployments', {});
    assert.equal(anonymous.status, 403);
    assert.match(anonymous.body, /User \\"system:anonymous\\" cannot list resource \\"deployments\\"/);

    const wrong = await cp.kubectl(['get', 'deployments', '-n', 'roll'], { kubeconfig: await cp.writeKubeconfig({ name: 'wrong', token: 'not-a-known-token' }) });
    assert.notEqual(wrong.exitCode, 0);
    assert.match(wrong.stderr, /Unauthorized|provide credentials/);

    const bound = await cp.kubectl(['create', 'rolebinding', 'viewers', '--clusterrole=view', '--group=tsko:viewers', '-n', 'roll']);
    assert.equal(bound.exitCode, 0, bound.stderr);
    const tokenFile = join(dir, 'viewer-token');
    await writeFile(tokenFile, 'viewer-token-0123456789\n', { mode: 0o600 });
    const viewer = await cp.writeKubeconfig({ name: 'viewer', tokenFile, namespace: 'roll' });
    // The authorizer sees a new RoleBinding through its informer, a moment later.
    const allowed = await eventually('the viewer is let in', 40, async () => {
      const got = await cp.kubectl(['get', 'deployments', '-o', 'name'], { kubeconfig: viewer });
      return got.exitCode === 0 ? got : undefined;
    });
    assert.equal(allowed.stdout, 'deployment.apps/web\n');
    const patch = await cp.kubectl(['set', 'image', 'deployment/web', `app=${imageA}`], { kubeconfig: viewer });
    assert.notEqual(patch.exitCode, 0);
    assert.match(patch.stderr, /User "viewer" cannot patch resource "deployments"/);
  });

  it('stop() ends etcd, the apiserver and the controller manager and frees their ports', async () => {
    const pids = cp.pids();
    assert.equal(pids.length, 3);
    const ports = [Number(new URL(cp.server).port), Number(new URL(cp.etcdUrl).port), cp.kubeletPort];
    for (const port of ports) assert.equal(await portIsFree(port), false, `port ${port} is in use while running`);
    await cp.stop();
    await cp.stop();
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} still runs`);
    for (const port of ports) assert.equal(await portIsFree(port), true, `port ${port} is free after stop`);
    const after = await new Promise<number>((resolve) => execFile('kubectl', ['--kubeconfig', cp.adminKubeconfig, 'get', 'ns', '--request-timeout=3s'], { env: { ...process.env, HOME: dir } }, (err) => resolve(err === null ? 0 : 1)));
    assert.equal(after, 1);
  });
});
