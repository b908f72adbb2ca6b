// The Kubernetes target against a real control plane (issue 13): kube-apiserver, the deployment and
// ReplicaSet controllers, RBAC and Pod Security admission, built from the Go module proxy
// (test/support/control-plane), with a stand-in kubelet that marks pods Ready, crash-looping (logs
// through the real pods/log path) or ErrImagePull, and Debian's docker-registry holding the
// images. Each fix of issue 13 is checked here: crash-loop logs, ReplicaFailure at once, tokenFile,
// JSON apply bodies, a paused Deployment, watch-based rollout tracking (timed beside `kubectl rollout
// status`, recorded not asserted), the preflight before the first build, and the dev loop's three
// saves as three ReplicaSets with their save→rolled-out times in --json.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { spawn } from 'node:child_process';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { TskoEvent } from '../../src/events.js';
import { rolloutStatus, type Deployment } from '../../src/deploy/kube-rollout.js';
import { startControlPlane, type ControlPlane, type PodBehaviour } from '../support/control-plane/index.js';
import { kubeClient } from '../support/control-plane/kube-client.js';
import { errorLine, helloCopy, type HelloCopy } from '../support/deploy-fixture.js';
import { startDev } from '../support/dev-process.js';
import { freePort, startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { makeTempDir } from '../support/tmp.js';

const TEST_TIMEOUT = 240_000;
const DEPLOYER_TOKEN = 'deployer-token-0123456789';
const VIEWER_TOKEN = 'viewer-token-0123456789';
const POLLER_TOKEN = 'poller-token-0123456789';
/** An image tsko pushed to the test registry, by digest. */
const DIGEST_REF = /^127\.0\.0\.1:\d+\/dev\/hello-[0-9a-f]{32}@sha256:[0-9a-f]{64}$/;
const CRASH_LOGS = ['starting hello', 'panic: cannot open config: no such file', 'goroutine 1 [running]:'];

type Mode = 'ready' | 'crash' | 'image-pull';

interface AuditEvent {
  verb: string;
  user: { username: string };
  userAgent?: string;
  objectRef?: { resource?: string; namespace?: string; name?: string };
  requestObject?: Record<string, unknown>;
  impersonatedUser?: { username: string; groups?: string[] };
  responseStatus?: { code?: number };
}

describe('tsko and the Kubernetes target on a real control plane', () => {
  let cp: ControlPlane;
  let registry: DockerRegistry;
  let hello: HelloCopy;
  let dir: string;
  let deployerConfig: string;
  let viewerConfig: string;
  /** What the images pushed to the test registry do in a pod; every other image is Ready. */
  let mode: Mode = 'ready';

  before(async () => {
    dir = await makeTempDir('kube-real');
    cp = await startControlPlane({
      dir,
      users: [
        { name: 'deployer', token: DEPLOYER_TOKEN },
        { name: 'viewer', token: VIEWER_TOKEN },
        { name: 'poller', token: POLLER_TOKEN },
      ],
    });
    registry = await startDockerRegistry();
    cp.setBehaviour((image): PodBehaviour => {
      if (!image.startsWith(`${registry.host}/`)) return { kind: 'ready' };
      if (mode === 'crash') return { kind: 'crash', logs: CRASH_LOGS, exitCode: 2 };
      if (mode === 'image-pull') return { kind: 'image-pull' };
      return { kind: 'ready' };
    });
    hello = await helloCopy('kube-real');
    hello.env.KO_DOCKER_REPO = `${registry.host}/dev`;
    // The deployer reads its token from a file (kubeconfig `tokenFile`), as a projected service-account token is read.
    const tokenFile = join(dir, 'deployer.token');
    await writeFile(tokenFile, `${DEPLOYER_TOKEN}\n`, { mode: 0o600 });
    deployerConfig = await cp.writeKubeconfig({ name: 'deployer', tokenFile });
    viewerConfig = await cp.writeKubeconfig({ name: 'viewer', token: VIEWER_TOKEN });
    // Roles of their own: the aggregated edit/view ClusterRoles need the controller manager's clusterrole-aggregation controller.
    await grant('default');
    await must(cp.kubectl(['create', 'role', 'viewer', '--verb=get,list,watch', '--resource=deployments.apps,replicasets.apps,pods,configmaps', '-n', 'default']));
    await must(cp.kubectl(['create', 'rolebinding', 'viewer', '--role=viewer', '--user=viewer', '-n', 'default']));
    await must(cp.kubectl(['create', 'deployment', 'hello', '--image=example.com/hello:old', '--replicas=2']));
    await must(cp.kubectl(['rollout', 'status', 'deployment/hello', '--timeout=120s']));
  });

  after(async () => {
    await cp?.stop();
    await registry?.stop();
  });

  const must = async (run: Promise<{ exitCode: number; stdout: string; stderr: string }>) => {
    const result = await run;
    assert.equal(result.exitCode, 0, result.stderr);
    return result.stdout;
  };
  /** What the deployer may do in a namespace: what tsko needs, as a Role of its own. */
  const grant = async (namespace: string) => {
    await must(cp.kubectl(['create', 'role', 'deployer', '--verb=get,list,watch,patch,create,update', '--resource=deployments.apps,replicasets.apps,pods,pods/log,configmaps', '-n', namespace]));
    await must(cp.kubectl(['create', 'rolebinding', 'deployer', '--role=deployer', '--user=deployer', '-n', namespace]));
  };
  const deploy = (args: string[], kubeconfig = deployerConfig, env: Record<string, string | undefined> = {}) =>
    hello.deploy(['--target', 'kubernetes', '--json', ...args], { KUBECONFIG: kubeconfig, ...env });
  const eventsOf = (stdout: string): TskoEvent[] => stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as TskoEvent);
  const image = async (name = 'hello', ns = 'default') => must(cp.kubectl(['get', 'deployment', name, '-n', ns, '-o', 'jsonpath={.spec.template.spec.containers[0].image}']));
  const audit = async (): Promise<AuditEvent[]> => (await readFile(cp.auditLogFile, 'utf8')).split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as AuditEvent);
  const built = (events: TskoEvent[]) => events.some((e) => e.type === 'stage.start' && e.stage === 'build');

  it('patches the Deployment to the pushed digest with a tokenFile user, waits for the rollout, and names the new ReplicaSet', { timeout: TEST_TIMEOUT }, async () => {
    const before = await must(cp.kubectl(['get', 'rs', '-l', 'app=hello', '-o', 'name']));
    const result = await deploy([]);
    assert.equal(result.code, 0, result.stderr);
    const events = eventsOf(result.stdout);
    assert.match(await image(), DIGEST_REF);
    const preflight = events.find((e) => e.type === 'preflight');
    assert.equal(preflight?.type === 'preflight' && preflight.ok, true, JSON.stringify(preflight));
    assert.ok(events.indexOf(preflight as TskoEvent) < events.findIndex((e) => e.type === 'stage.start' && e.stage === 'build'), 'the preflight ran before the build');
    const end = events.find((e) => e.type === 'iteration.end');
    assert.equal(end?.type === 'iteration.end' && end.result, 'deployed');
    const revision = end?.type === 'iteration.end' ? end.revision : undefined;
    assert.match(revision ?? '', /^hello-[0-9a-z]+$/);
    const after = await must(cp.kubectl(['get', 'rs', '-l', 'app=hello', '-o', 'name']));
    assert.ok(!before.includes(`replicaset.apps/${revision}`) && after.includes(`replicaset.apps/${revision}`), `${revision} is a new ReplicaSet`);
    const ready = await must(cp.kubectl(['get', 'deployment', 'hello', '-o', 'jsonpath={.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}']));
    assert.equal(ready, '2/2/2', 'it returned only once the rollout was done');
    // tokenFile was honoured: the patch came from "deployer", not anonymous.
    const patch = (await audit()).findLast((e) => e.verb === 'patch' && e.objectRef?.resource === 'deployments' && e.objectRef.name === 'hello');
    assert.equal(patch?.user.username, 'deployer');
    assert.equal(patch?.responseStatus?.code, 200);
    assert.doesNotMatch(result.stdout + result.stderr, new RegExp(DEPLOYER_TOKEN), 'no token in the output');
  });

  it('a crash loop fails the rollout early with the container\'s last log lines (pods/log asked as the apiserver serves it)', { timeout: TEST_TIMEOUT }, async () => {
    mode = 'crash';
    try {
      await hello.setVersion('hello crash');
      const result = await deploy(['--timeout', '200']);
      assert.equal(result.code, 1, result.stderr);
      const failed = eventsOf(result.stdout).find((e) => e.type === 'rollout.failed');
      assert.ok(failed?.type === 'rollout.failed', result.stdout);
      assert.equal(failed.target, 'kubernetes');
      assert.match(failed.reason, /^(CrashLoopBackOff|Error)$/);
      assert.deepEqual(failed.logs, CRASH_LOGS);
      assert.match(errorLine(result.stderr), /^tsko: rollout of deployment "hello" failed: pod hello-\S+ \(container hello\): (CrashLoopBackOff|Error)/);
      assert.match(result.stderr, /last log lines of hello-\S+:\nstarting hello\npanic: cannot open config: no such file/);
      assert.match(result.stderr, /previous pods keep serving/);
    } finally {
      mode = 'ready';
    }
  });

  it('the real apiserver answers pods/log 406 to Accept: text/plain and serves */* (what the fake is held to)', { timeout: TEST_TIMEOUT }, async () => {
    const pods = JSON.parse(await must(cp.kubectl(['get', 'pods', '-l', 'app=hello', '-o', 'json']))) as { items: Array<{ metadata: { name: string } }> };
    const pod = pods.items[0]?.metadata.name;
    assert.ok(pod, 'a hello pod');
    const path = `/api/v1/namespaces/default/pods/${pod}/log?container=hello`;
    const plain = await get(cp, path, 'text/plain');
    assert.equal(plain.status, 406, plain.body);
    const any = await get(cp, path, '*/*');
    assert.notEqual(any.status, 406, any.body);
  });

  it('an image the cluster cannot pull fails early with the pull hint', { timeout: TEST_TIMEOUT }, async () => {
    mode = 'image-pull';
    try {
      await hello.setVersion('hello pull');
      const result = await deploy(['--timeout', '200']);
      assert.equal(result.code, 1, result.stderr);
      const failed = eventsOf(result.stdout).find((e) => e.type === 'rollout.failed');
      assert.ok(failed?.type === 'rollout.failed' && /^(ErrImagePull|ImagePullBackOff)$/.test(failed.reason), result.stdout);
      assert.match(result.stderr, /hint: the cluster cannot pull 127\.0\.0\.1/);
    } finally {
      mode = 'ready';
    }
  });

  it('pods that Pod Security "restricted" refuses: ReplicaFailure/FailedCreate in one line, at once (not at the timeout)', { timeout: TEST_TIMEOUT }, async () => {
    await must(cp.kubectl(['create', 'namespace', 'locked']));
    await must(cp.kubectl(['label', 'namespace', 'locked', 'pod-security.kubernetes.io/enforce=restricted']));
    await must(cp.kubectl(['create', 'deployment', 'hello', '-n', 'locked', '--image=example.com/hello:old']));
    await grant('locked');
    await hello.setVersion('hello locked');
    const result = await deploy(['--namespace', 'locked', '--timeout', '200']);
    assert.equal(result.code, 1, result.stderr);
    const failed = eventsOf(result.stdout).find((e) => e.type === 'rollout.failed');
    assert.ok(failed?.type === 'rollout.failed', result.stdout);
    assert.equal(failed.reason, 'FailedCreate');
    assert.match(failed.message, /violates PodSecurity "restricted:latest"/);
    const line = errorLine(result.stderr);
    assert.match(line, /^tsko: deployment "hello" cannot create pods: pods "hello-\S+" is forbidden: violates PodSecurity "restricted:latest": /);
    assert.doesNotMatch(line, /timed out/);
    assert.equal(line.includes('\n'), false);
    assert.match(result.stderr, /hint: make the pod template meet namespace "locked"'s Pod Security level/);
    assert.match(await image('hello', 'locked'), DIGEST_REF, 'the image was set; the pods are what is refused');
  });

  it('a paused Deployment is reported at once with the kubectl line that resumes it', { timeout: TEST_TIMEOUT }, async () => {
    await must(cp.kubectl(['create', 'deployment', 'paused', '--image=example.com/hello:old']));
    await must(cp.kubectl(['rollout', 'status', 'deployment/paused', '--timeout=120s']));
    await must(cp.kubectl(['rollout', 'pause', 'deployment/paused']));
    await hello.setVersion('hello paused');
    const result = await deploy(['--deployment', 'paused', '--container', 'hello', '--timeout', '200']);
    assert.equal(result.code, 1, result.stderr);
    const failed = eventsOf(result.stdout).find((e) => e.type === 'rollout.failed');
    assert.ok(failed?.type === 'rollout.failed', result.stdout);
    assert.equal(failed.reason, 'DeploymentPaused');
    assert.equal(errorLine(result.stderr), 'tsko: deployment "paused" is paused: the new image is set but will not roll out until it is resumed');
    assert.match(result.stderr, /hint: kubectl rollout resume deployment\/paused -n default/);
    assert.match(await image('paused'), DIGEST_REF);
  });

  it('manifests mode server-side applies JSON bodies, as kubectl apply --server-side does (the audit log records both objects)', { timeout: TEST_TIMEOUT }, async () => {
    const file = join(hello.dir, 'k8s.yaml');
    const deploymentYaml = (name: string, image: string) =>
      [
        `# the service tsko deploys`,
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        `  name: ${name}`,
        'spec:',
        '  replicas: 1',
        '  selector:',
        `    matchLabels: {app: ${name}}`,
        '  template:',
        '    metadata:',
        `      labels: {app: ${name}}`,
        '    spec:',
        '      containers:',
        '      - name: app',
        `        image: ${image} # resolved by tsko`,
      ].join('\n');
    await writeFile(file, `${deploymentYaml('from-yaml', 'ko://example.com/hello')}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml-settings\ndata:\n  mode: dev\n`);
    const result = await deploy(['-f', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(await image('from-yaml'), DIGEST_REF);
    assert.equal(await must(cp.kubectl(['get', 'configmap', 'from-yaml-settings', '-o', 'jsonpath={.data.mode}'])), 'dev');

    // kubectl's own server-side apply of the same kind of file, for comparison.
    const kubectlFile = join(dir, 'kubectl-apply.yaml');
    await writeFile(kubectlFile, `${deploymentYaml('by-kubectl', 'example.com/hello:old')}\n`);
    await must(cp.kubectl(['apply', '--server-side', '-f', kubectlFile]));

    const events = await audit();
    const applyOf = (name: string) => events.findLast((e) => e.verb === 'patch' && e.objectRef?.name === name);
    for (const name of ['from-yaml', 'from-yaml-settings', 'by-kubectl']) {
      const event = applyOf(name);
      assert.ok(event, `an audit event for ${name}`);
      assert.equal(typeof event.requestObject, 'object', `the audit log could encode the apply body of ${name} (JSON)`);
    }
    const applied = applyOf('from-yaml')?.requestObject as { spec: { template: { spec: { containers: Array<{ image: string }> } } } };
    assert.match(applied.spec.template.spec.containers[0]?.image ?? '', DIGEST_REF);
    assert.equal(applyOf('from-yaml')?.user.username, 'deployer');
  });

  it('an exec-plugin kubeconfig (gke-gcloud-auth-plugin, offline) works, and a rejected exec token is fetched again once', { timeout: TEST_TIMEOUT }, async () => {
    const execConfig = join(dir, 'kubeconfig-exec');
    const server = cp.server;
    const ca = Buffer.from(await readFile(cp.caFile)).toString('base64');
    const config = (exec: Record<string, unknown>) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'real', cluster: { server, 'certificate-authority-data': ca } }],
        users: [{ name: 'exec-user', user: { exec } }],
        contexts: [{ name: 'real', context: { cluster: 'real', user: 'exec-user' } }],
        'current-context': 'real',
      });
    await writeFile(execConfig, config({ apiVersion: 'client.authentication.k8s.io/v1beta1', command: 'gke-gcloud-auth-plugin', provideClusterInfo: true, interactiveMode: 'Never' }));
    await hello.setVersion('hello exec');
    const ok = await deploy([], execConfig, { CLOUDSDK_AUTH_ACCESS_TOKEN: DEPLOYER_TOKEN });
    assert.equal(ok.code, 0, ok.stderr);

    const runs = join(dir, 'plugin-runs');
    const plugin = join(dir, 'token-plugin.sh');
    // Its first token is one the cluster does not take; every later run hands out the deployer's.
    const execInfo = join(dir, 'exec-info.json');
    await writeFile(plugin, `#!/bin/sh\nprintf '%s' "$KUBERNETES_EXEC_INFO" > ${execInfo}\nif [ -f ${runs} ]; then t=${DEPLOYER_TOKEN}; else t=stale-token; fi\necho run >> ${runs}\nprintf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%s"}}' "$t"\n`, { mode: 0o755 });
    const refreshConfig = join(dir, 'kubeconfig-refresh');
    await writeFile(refreshConfig, config({ apiVersion: 'client.authentication.k8s.io/v1beta1', command: plugin, interactiveMode: 'Never', provideClusterInfo: true }));
    await hello.setVersion('hello refresh');
    const refreshed = await deploy([], refreshConfig);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    assert.equal((await readFile(runs, 'utf8')).split('\n').filter(Boolean).length, 2, 'the plugin ran twice');
    // As client-go, the plugin is told its API version, that it may not prompt, and (provideClusterInfo) the cluster.
    const info = JSON.parse(await readFile(execInfo, 'utf8')) as { apiVersion: string; kind: string; spec: { interactive: boolean; cluster?: { server: string } } };
    assert.deepEqual([info.apiVersion, info.kind, info.spec.interactive, info.spec.cluster?.server], ['client.authentication.k8s.io/v1beta1', 'ExecCredential', false, server]);
  });

  it('impersonation from the kubeconfig (as, as-groups): the admin acts as a user whose group holds the Role', { timeout: TEST_TIMEOUT }, async () => {
    await must(cp.kubectl(['create', 'rolebinding', 'release-team', '--role=deployer', '--group=release-team', '-n', 'default']));
    const config = parseYaml(await readFile(cp.adminKubeconfig, 'utf8')) as { users: Array<{ user: Record<string, unknown> }> };
    Object.assign(config.users[0]?.user ?? {}, { as: 'ci-bot', 'as-groups': ['release-team'] });
    const impersonating = join(dir, 'kubeconfig-impersonating');
    await writeFile(impersonating, stringifyYaml(config));
    await hello.setVersion('hello impersonated');
    const result = await deploy([], impersonating);
    assert.equal(result.code, 0, result.stderr);
    const patch = (await audit()).findLast((e) => e.verb === 'patch' && e.objectRef?.name === 'hello');
    assert.deepEqual(patch?.impersonatedUser, { username: 'ci-bot', groups: ['release-team', 'system:authenticated'] });
  });

  it('a user who may not watch Deployments is followed by polling, and still rolls out', { timeout: TEST_TIMEOUT }, async () => {
    await must(cp.kubectl(['create', 'role', 'poller', '--verb=get,list,patch', '--resource=deployments.apps,replicasets.apps,pods', '-n', 'default']));
    await must(cp.kubectl(['create', 'rolebinding', 'poller', '--role=poller', '--user=poller', '-n', 'default']));
    const config = await cp.writeKubeconfig({ name: 'poller', token: POLLER_TOKEN });
    await hello.setVersion('hello polled');
    const result = await deploy([], config);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(eventsOf(result.stdout).some((e) => e.type === 'rollout' && /successfully rolled out/.test(e.message)));
    assert.match(await image(), DIGEST_REF);
  });

  describe('the preflight fails before the first build, in one line with the fix', () => {
    const failedPreflight = (stdout: string) => {
      const events = eventsOf(stdout);
      const preflight = events.find((e) => e.type === 'preflight');
      assert.ok(preflight?.type === 'preflight' && !preflight.ok, stdout);
      assert.equal(built(events), false, 'nothing was built');
      return preflight;
    };

    it('401: credentials the cluster does not take', { timeout: TEST_TIMEOUT }, async () => {
      const config = await cp.writeKubeconfig({ name: 'nobody', token: 'not-a-real-token' });
      const result = await deploy([], config);
      assert.equal(result.code, 1);
      assert.equal(failedPreflight(result.stdout).reason, 'Unauthorized');
      assert.equal(errorLine(result.stderr), `tsko: the cluster at ${cp.server} rejected the credentials of kubeconfig user "nobody" (context "nobody") even after reloading them: Unauthorized`);
      assert.doesNotMatch(result.stderr + result.stdout, /not-a-real-token/);
    });

    it('404: the Deployment, with -n and the context in the fix; a missing namespace; a missing container', { timeout: TEST_TIMEOUT }, async () => {
      const missing = await deploy(['--deployment', 'nope']);
      assert.equal(missing.code, 1);
      assert.equal(failedPreflight(missing.stdout).reason, 'NotFound');
      assert.equal(errorLine(missing.stderr), `tsko: deployment "nope" not found in namespace "default" (context "deployer", ${cp.server})`);
      assert.match(missing.stderr, /hint: create it once \(kubectl --context deployer -n default create deployment nope --image=IMAGE\)/);

      const namespace = await deploy(['--namespace', 'nowhere'], cp.adminKubeconfig);
      assert.equal(failedPreflight(namespace.stdout).reason, 'NotFound');
      assert.equal(errorLine(namespace.stderr), `tsko: namespace "nowhere" does not exist (context "admin", ${cp.server})`);
      assert.match(namespace.stderr, /hint: create it \(kubectl --context admin create namespace nowhere\)/);

      const container = await deploy(['--container', 'web']);
      assert.equal(failedPreflight(container.stdout).reason, 'ContainerNotFound');
      assert.equal(errorLine(container.stderr), 'tsko: deployment "hello" in namespace "default" has no container "web" (it has: hello)');
    });

    it('RBAC: a user who may read but not patch (SelfSubjectAccessReview)', { timeout: TEST_TIMEOUT }, async () => {
      const result = await deploy([], viewerConfig);
      assert.equal(result.code, 1);
      assert.equal(failedPreflight(result.stdout).reason, 'Forbidden');
      assert.match(errorLine(result.stderr), /^tsko: kubeconfig user "viewer" \(context "viewer"\) may not patch deployment "hello" in namespace "default"/);
      assert.match(result.stderr, /kubectl auth can-i patch deployments\.apps\/hello -n default --context viewer/);

      // Where the viewer may not even read the Deployment, the preflight's GET is what is refused.
      const unreadable = await deploy(['--namespace', 'locked'], viewerConfig);
      assert.equal(failedPreflight(unreadable.stdout).reason, 'Forbidden');
      assert.match(errorLine(unreadable.stderr), /^tsko: kubeconfig user "viewer" \(context "viewer"\) may not GET \/apis\/apps\/v1\/namespaces\/locked\/deployments\/hello: deployments\.apps "hello" is forbidden: User "viewer" cannot get resource "deployments"/);
      assert.match(unreadable.stderr, /hint: ask for the permission; check it with kubectl auth can-i get deployments\.apps\/hello -n locked --context viewer/);
    });

    it('an API server nobody answers on', { timeout: TEST_TIMEOUT }, async () => {
      const config = join(dir, 'kubeconfig-closed');
      const text = (await readFile(deployerConfig, 'utf8')).replace(cp.server, `https://127.0.0.1:${await freePort()}`);
      await writeFile(config, text);
      const result = await deploy([], config);
      assert.equal(result.code, 1);
      assert.equal(failedPreflight(result.stdout).reason, 'Unreachable');
      assert.match(errorLine(result.stderr), /^tsko: cannot reach the cluster at https:\/\/127\.0\.0\.1:\d+ \(context "deployer"\): /);
    });

    it('manifests mode: a namespace that does not exist, and apply not allowed', { timeout: TEST_TIMEOUT }, async () => {
      const file = join(hello.dir, 'elsewhere.yaml');
      await writeFile(file, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: absent}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: x}}\n    spec: {containers: [{name: app, image: ko://example.com/hello}]}\n');
      const absent = await deploy(['-f', file], cp.adminKubeconfig);
      assert.equal(failedPreflight(absent.stdout).reason, 'NotFound');
      assert.equal(errorLine(absent.stderr), `tsko: namespace "absent" does not exist (context "admin", ${cp.server})`);

      const here = join(hello.dir, 'here.yaml');
      await writeFile(here, (await readFile(file, 'utf8')).replace('namespace: absent', 'namespace: default'));
      const denied = await deploy(['-f', here], viewerConfig);
      assert.equal(failedPreflight(denied.stdout).reason, 'Forbidden');
      assert.match(errorLine(denied.stderr), /^tsko: kubeconfig user "viewer" \(context "viewer"\) may not apply Deployment\/x in namespace "default"/);
    });
  });

  it('tsko dev: three saves are three new ReplicaSets, with save→rolled-out times in --json; rollout detection timed beside kubectl rollout status', { timeout: 600_000 }, async (t) => {
    await hello.setVersion('hello dev 0');
    const rsBefore = new Set((await must(cp.kubectl(['get', 'rs', '-l', 'app=hello', '-o', 'name']))).split('\n').filter(Boolean));
    const dev = startDev(['--target', 'kubernetes'], { cwd: hello.dir, env: { ...hello.env, KUBECONFIG: deployerConfig } });
    const figures: string[] = [];
    try {
      const first = await dev.waitFor((e) => e.type === 'iteration.end', { timeoutMs: 180_000 });
      assert.equal(first.type === 'iteration.end' && first.result, 'deployed', dev.stderr());
      const revisions: string[] = [];
      const times: number[] = [];
      const ca = await readFile(cp.caFile, 'utf8');
      const observer = kubeClient(cp.server, ca, cp.adminToken);
      try {
        for (let save = 1; save <= 3; save++) {
          const from = dev.events.length;
          const generation = Number(await must(cp.kubectl(['get', 'deployment', 'hello', '-o', 'jsonpath={.metadata.generation}'])));
          // A third observer, the test's own watch, notes when the rollout is done as kubectl decides it.
          const stopWatch = new AbortController();
          let doneAt = 0;
          const watching = observer
            .watch('/apis/apps/v1/namespaces/default/deployments?watch=1&fieldSelector=metadata.name%3Dhello', (event) => {
              const object = event.object as unknown as Deployment;
              if (!doneAt && (object.metadata?.generation ?? 0) > generation && rolloutStatus(object, generation + 1).state === 'done') doneAt = Date.now();
            }, stopWatch.signal)
            .catch(() => undefined);
          await hello.setVersion(`hello dev ${save}`);
          // The moment tsko has patched, kubectl starts following the same rollout.
          const patched = await dev.waitFor((e) => e.type === 'rollout' && / set to /.test(e.message), { timeoutMs: 120_000, from });
          const kubectlStarted = Date.now();
          const kubectl = kubectlRolloutStatus(deployerConfig, join(dir, 'kubectl-home'));
          const end = await dev.waitFor((e) => e.type === 'iteration.end', { timeoutMs: 180_000, from });
          assert.ok(end.type === 'iteration.end' && end.result === 'deployed', JSON.stringify(end));
          // tsko's decision is its `successfully rolled out` line (the ReplicaSet's name is looked up after it).
          const rolledOut = dev.events.slice(from).find((e) => e.type === 'rollout' && /successfully rolled out/.test(e.message));
          assert.ok(rolledOut, 'the rolled-out event');
          const seen = await kubectl;
          assert.equal(seen.exitCode, 0, seen.stderr);
          stopWatch.abort();
          await watching;
          revisions.push(end.revision ?? '');
          times.push(end.ms);
          const lag = (at: number) => (doneAt ? `${at - doneAt} ms` : 'n/a');
          figures.push(
            `save ${save}: save→rolled-out ${Math.round(end.ms)} ms (iteration.end.ms); patch→done ${doneAt ? doneAt - patched.time : 'n/a'} ms; ` +
              `done→seen: tsko ${lag(rolledOut.time)}, kubectl rollout status ${lag(seen.doneAt)} (kubectl started ${kubectlStarted - patched.time} ms after the patch)`,
          );
        }
      } finally {
        observer.close();
      }
      for (const line of figures) t.diagnostic(line);
      assert.equal(new Set(revisions).size, 3, revisions.join(', '));
      const rsAfter = (await must(cp.kubectl(['get', 'rs', '-l', 'app=hello', '-o', 'name']))).split('\n').filter(Boolean);
      for (const revision of revisions) {
        assert.match(revision, /^hello-[0-9a-z]+$/);
        assert.ok(rsAfter.includes(`replicaset.apps/${revision}`) && !rsBefore.has(`replicaset.apps/${revision}`), `${revision} is a new ReplicaSet`);
      }
      assert.ok(times.every((ms) => Number.isFinite(ms) && ms > 0), times.join(', '));
    } finally {
      dev.child.kill('SIGINT');
      // 130: ended by SIGINT, as a shell reports it.
      assert.equal(await dev.exited(30_000), 130, dev.stderr());
    }
  });
});

/** A GET with a chosen Accept header, as the admin, straight to the apiserver. */
function get(cp: ControlPlane, path: string, accept: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    void readFile(cp.caFile).then((ca) => {
      const url = new URL(cp.server + path);
      const req = httpsRequest(url, { method: 'GET', ca, headers: { accept, authorization: `Bearer ${cp.adminToken}` }, timeout: 30_000 }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    }, reject);
  });
}

/** `kubectl rollout status` on deployment/hello, with the moment (ms since the epoch) it printed "successfully rolled out". */
function kubectlRolloutStatus(kubeconfig: string, home: string): Promise<{ exitCode: number; stderr: string; doneAt: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(home, 'cache'), 'rollout', 'status', 'deployment/hello', '--timeout=120s'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let doneAt = 0;
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.stdout.on('data', (chunk: Buffer) => {
      if (!doneAt && chunk.toString().includes('successfully rolled out')) doneAt = Date.now();
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ exitCode: code ?? -1, stderr, doneAt });
    });
  });
}
