// The Kubernetes target (issue 6): first the API fake is held to the installed kubectl (set image,
// patch types, server-side apply, rollout status, an exec-plugin kubeconfig), then `tsko deploy
// --target kubernetes` runs against it: the image is patched to the pushed digest and the rollout
// waited for, manifests are resolved and applied, and every bad input prints its one line.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { startFakeKube, type FakeKube } from '../support/fake-kube.js';
import { DIGEST_REF, errorLine, helloCopy, type HelloCopy } from '../support/deploy-fixture.js';
import { makeTempDir } from '../support/tmp.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('the Kubernetes API fake, held to kubectl', () => {
  let fake: FakeKube;
  let dir: string;
  let kubeconfig: string;
  before(async () => {
    dir = await makeTempDir('fake-kube');
    fake = await startFakeKube({ dir, stepMs: 100 });
    fake.tokens.set('tok-admin', 'admin');
    kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeconfig({ token: 'tok-admin' }));
  });
  after(() => fake.stop());

  const kubectl = (args: string[], env: Record<string, string> = {}, config = kubeconfig) =>
    execa('kubectl', ['--kubeconfig', config, '--cache-dir', join(dir, 'cache'), ...args], {
      env: { HOME: dir, PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      extendEnv: false,
      reject: false,
      timeout: 60_000,
    });

  it('kubectl set image sends a strategic merge patch that keeps the other containers, and rollout status sees it roll out', async () => {
    fake.addDeployment('default', 'web', [{ name: 'app', image: 'example.com/web:old' }, { name: 'sidecar', image: 'example.com/side:1' }]);
    const set = await kubectl(['set', 'image', 'deployment/web', `app=example.com/web@${DIGEST}`]);
    assert.equal(set.exitCode, 0, set.stderr);
    assert.match(set.stdout, /deployment.apps\/web image updated/);
    const patch = fake.requests.findLast((r) => r.method === 'PATCH');
    assert.equal(patch?.contentType, 'application/strategic-merge-patch+json');
    assert.equal(patch?.query.fieldManager, 'kubectl-set');
    assert.equal(patch?.user, 'admin', 'the bearer token went with it over https');
    const containers = fake.deployment('default', 'web')?.spec.template.spec.containers;
    assert.deepEqual(containers, [{ name: 'app', image: `example.com/web@${DIGEST}` }, { name: 'sidecar', image: 'example.com/side:1' }]);
    assert.equal(fake.deployment('default', 'web')?.metadata.generation, 2);

    const status = await kubectl(['rollout', 'status', 'deployment/web', '--timeout=30s']);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /deployment "web" successfully rolled out/);
  });

  it('merge patch replaces the container list, JSON patch is guarded by test, server-side apply creates objects', async () => {
    fake.addDeployment('default', 'lists', [{ name: 'app', image: 'a:1' }, { name: 'sidecar', image: 's:1' }]);
    const merge = await kubectl(['patch', 'deployment', 'lists', '--type=merge', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"a:2"}]}}}}']);
    assert.equal(merge.exitCode, 0, merge.stderr);
    assert.deepEqual(fake.deployment('default', 'lists')?.spec.template.spec.containers, [{ name: 'app', image: 'a:2' }]);

    const guard = { op: 'test', path: '/spec/template/spec/containers/0/name', value: 'app' };
    const json = await kubectl(['patch', 'deployment', 'lists', '--type=json', '-p', JSON.stringify([guard, { op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'a:3' }])]);
    assert.equal(json.exitCode, 0, json.stderr);
    assert.equal(fake.deployment('default', 'lists')?.spec.template.spec.containers[0].image, 'a:3');
    const wrong = await kubectl(['patch', 'deployment', 'lists', '--type=json', '-p', JSON.stringify([{ ...guard, value: 'other' }, { op: 'replace', path: '/spec/template/spec/containers/0/image', value: 'a:4' }])]);
    assert.notEqual(wrong.exitCode, 0, 'a failed test op rejects the whole patch');
    assert.equal(fake.deployment('default', 'lists')?.spec.template.spec.containers[0].image, 'a:3');

    const file = join(dir, 'apply.yaml');
    await writeFile(file, 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: hi\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: applied\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: applied}\n  template:\n    metadata:\n      labels: {app: applied}\n    spec:\n      containers:\n      - name: app\n        image: a:1\n');
    const apply = await kubectl(['apply', '--server-side', '--validate=false', '-f', file]);
    assert.equal(apply.exitCode, 0, apply.stderr);
    const applies = fake.requests.filter((r) => r.contentType === 'application/apply-patch+yaml');
    assert.equal(applies.length, 2);
    assert.ok(applies.every((r) => r.query.fieldManager === 'kubectl'));
    assert.equal(fake.object('/api/v1/namespaces/default/configmaps/settings')?.data.greeting, 'hi');
    const status = await kubectl(['rollout', 'status', 'deployment/applied', '--timeout=30s']);
    assert.equal(status.exitCode, 0, status.stderr);
  });

  it('rollout status: a rollout that never completes times out; a progress deadline fails', async () => {
    fake.addDeployment('default', 'stuck', [{ name: 'app', image: 'a:1' }]);
    fake.mode = 'stuck';
    try {
      assert.equal((await kubectl(['set', 'image', 'deployment/stuck', 'app=a:2'])).exitCode, 0);
      const timedOut = await kubectl(['rollout', 'status', 'deployment/stuck', '--timeout=2s']);
      assert.equal(timedOut.exitCode, 1);
      assert.match(timedOut.stderr, /timed out waiting for the condition/);
      assert.match(timedOut.stdout, /1 old replicas are pending termination/);

      fake.mode = 'deadline';
      assert.equal((await kubectl(['set', 'image', 'deployment/stuck', 'app=a:3'])).exitCode, 0);
      const deadline = await kubectl(['rollout', 'status', 'deployment/stuck', '--timeout=20s']);
      assert.equal(deadline.exitCode, 1);
      assert.match(deadline.stderr, /exceeded its progress deadline/);
    } finally {
      fake.mode = 'normal';
    }
  });

  it('a kubeconfig whose user is the gke-gcloud-auth-plugin exec plugin: the plugin answers offline, kubectl sends its token', async () => {
    const env = { CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-gke', CLOUDSDK_CONFIG: join(dir, 'gcloud') };
    // The plugin returns CLOUDSDK_AUTH_ACCESS_TOKEN as it is, and opens no network socket doing so.
    const traced = await execa('strace', ['-f', '-e', 'trace=connect', 'gke-gcloud-auth-plugin'], { env: { PATH: process.env.PATH ?? '', HOME: dir, ...env }, extendEnv: false, reject: false, timeout: 60_000 });
    assert.equal(traced.exitCode, 0, traced.stderr);
    assert.equal(JSON.parse(traced.stdout).status.token, 'tok-gke');
    assert.doesNotMatch(traced.stderr, /AF_INET/, 'no TCP connection');

    const execConfig = join(dir, 'kubeconfig-exec');
    await writeFile(execConfig, fake.kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: 'gke-gcloud-auth-plugin', provideClusterInfo: true, interactiveMode: 'Never' } }));
    const denied = await kubectl(['get', 'deployment', 'web'], env, execConfig);
    assert.notEqual(denied.exitCode, 0, 'a token the fake does not know is refused');
    assert.match(denied.stderr, /Unauthorized|must be logged in/);
    fake.tokens.set('tok-gke', 'gke-user');
    const got = await kubectl(['get', 'deployment', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image}'], env, execConfig);
    assert.equal(got.exitCode, 0, got.stderr);
    assert.equal(got.stdout, `example.com/web@${DIGEST}`);
    assert.equal(fake.requests.at(-1)?.user, 'gke-user');
  });
});

describe('tsko deploy --target kubernetes', () => {
  let fake: FakeKube;
  let hello: HelloCopy;
  let kubeconfig: string;
  let dir: string;
  before(async () => {
    dir = await makeTempDir('kube-deploy');
    fake = await startFakeKube({ dir, stepMs: 100 });
    fake.tokens.set('tok-admin', 'admin');
    fake.tokens.set('tok-viewer', 'viewer');
    fake.readOnly.add('viewer');
    kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeconfig({ token: 'tok-admin' }));
    hello = await helloCopy('kube');
  });
  after(() => fake.stop());

  const deploy = (args: string[], env: Record<string, string | undefined> = {}) => hello.deploy(['--target', 'kubernetes', ...args], { KUBECONFIG: kubeconfig, ...env });
  const image = (name = 'hello', ns = 'default') => fake.deployment(ns, name)?.spec.template.spec.containers[0].image as string;

  it('patches the container image to the pushed digest (strategic merge, field manager tsko) and waits for the rollout', async () => {
    fake.addDeployment('default', 'hello', [{ name: 'hello', image: 'example.com/hello:old' }], 2);
    const result = await deploy([]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(image(), DIGEST_REF);
    const patch = fake.requests.find((r) => r.method === 'PATCH' && r.path.endsWith('/deployments/hello'));
    assert.equal(patch?.contentType, 'application/strategic-merge-patch+json');
    assert.equal(patch?.query.fieldManager, 'tsko');
    assert.deepEqual(JSON.parse(patch?.body ?? '{}'), { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'hello' }], containers: [{ name: 'hello', image: image() }] } } } });
    const status = fake.deployment('default', 'hello')?.status;
    assert.equal(status.availableReplicas, 2, 'it returned only once the rollout was done');
    assert.equal(status.observedGeneration, fake.deployment('default', 'hello')?.metadata.generation);
    assert.match(result.stdout.trim(), /^hello-[0-9a-f]{10}$/, 'the revision is the new ReplicaSet');
    assert.match(result.stderr, /deployment "hello" successfully rolled out/);
    assert.doesNotMatch(result.stderr + result.stdout, /tok-admin/, 'no token in the output');
  });

  it('works with a kubeconfig whose user is the gke-gcloud-auth-plugin exec plugin', async () => {
    const execConfig = join(dir, 'kubeconfig-exec');
    await writeFile(execConfig, fake.kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: 'gke-gcloud-auth-plugin', provideClusterInfo: true, interactiveMode: 'Never' } }));
    fake.tokens.set('tok-plugin', 'plugin-user');
    await hello.setVersion('hello exec');
    const before = image();
    const result = await hello.deploy(['--target', 'kubernetes'], { KUBECONFIG: execConfig, CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-plugin' });
    assert.equal(result.code, 0, result.stderr);
    assert.notEqual(image(), before);
    assert.match(image(), DIGEST_REF);
    const patch = fake.requests.findLast((r) => r.method === 'PATCH');
    assert.equal(patch?.user, 'plugin-user');
  });

  it('picks the container by --container, and says which containers there are when it cannot', async () => {
    fake.addDeployment('default', 'multi', [{ name: 'proxy', image: 'envoy:1' }, { name: 'app', image: 'x:1' }]);
    const ambiguous = await deploy(['--deployment', 'multi']);
    assert.equal(ambiguous.code, 1);
    assert.equal(errorLine(ambiguous.stderr), 'tsko: deployment "multi" in namespace "default" has 2 containers (proxy, app); pass --container to say which runs the image');
    const missing = await deploy(['--deployment', 'multi', '--container', 'web']);
    assert.equal(errorLine(missing.stderr), 'tsko: deployment "multi" in namespace "default" has no container "web" (it has: proxy, app)');
    const ok = await deploy(['--deployment', 'multi', '--container', 'app']);
    assert.equal(ok.code, 0, ok.stderr);
    const containers = fake.deployment('default', 'multi')?.spec.template.spec.containers;
    assert.equal(containers[0].image, 'envoy:1');
    assert.match(containers[1].image, DIGEST_REF);
  });

  it('manifests mode resolves ko:// in the YAML (comments kept) and server-side applies it', async () => {
    const file = join(hello.dir, 'k8s.yaml');
    await writeFile(
      file,
      [
        '# the service tsko deploys',
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        '  name: from-yaml',
        'spec:',
        '  replicas: 1',
        '  selector:',
        '    matchLabels: {app: from-yaml}',
        '  template:',
        '    metadata:',
        '      labels: {app: from-yaml}',
        '    spec:',
        '      containers:',
        '      - name: app',
        '        image: ko://example.com/hello # resolved by tsko',
        '---',
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: from-yaml-settings',
        'data:',
        '  mode: dev',
        '',
      ].join('\n'),
    );
    const result = await deploy(['-f', file]);
    assert.equal(result.code, 0, result.stderr);
    const applied = fake.requests.filter((r) => r.contentType === 'application/apply-patch+yaml');
    assert.equal(applied.length, 2);
    assert.ok(applied.every((r) => r.query.fieldManager === 'tsko' && r.query.force === 'true'));
    const body = applied[0]?.body ?? '';
    assert.match(body, /^# the service tsko deploys\n/);
    assert.match(body, /image: 127\.0\.0\.1:\d+\/hello-[0-9a-f]{32}@sha256:[0-9a-f]{64} # resolved by tsko\n/);
    assert.match(fake.deployment('default', 'from-yaml')?.spec.template.spec.containers[0].image, DIGEST_REF);
    assert.equal(fake.object('/api/v1/namespaces/default/configmaps/from-yaml-settings')?.data.mode, 'dev');
    assert.equal(fake.deployment('default', 'from-yaml')?.status.availableReplicas, 1);

    await writeFile(join(hello.dir, 'other.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
    const none = await deploy(['-f', join(hello.dir, 'other.yaml')]);
    assert.equal(errorLine(none.stderr), `tsko: no manifest in ${join(hello.dir, 'other.yaml')} references ko://example.com/hello`);
  });

  describe('bad input prints one line', () => {
    it('a Deployment that does not exist names it and where it looked', async () => {
      const result = await deploy(['--deployment', 'nope', '--namespace', 'team']);
      assert.equal(result.code, 1);
      assert.equal(errorLine(result.stderr), `tsko: deployment "nope" not found in namespace "team" (context "fake", ${fake.url})`);
    });

    it('a missing kubeconfig, and an unknown context', async () => {
      const missing = await deploy([], { KUBECONFIG: join(dir, 'absent') });
      assert.equal(errorLine(missing.stderr), `tsko: no kubeconfig: ${join(dir, 'absent')} does not exist`);
      const unknown = await deploy(['--context', 'prod']);
      assert.equal(errorLine(unknown.stderr), `tsko: context "prod" is not in ${kubeconfig} (known: fake)`);
    });

    it('403 names the user and the permission', async () => {
      const viewer = join(dir, 'kubeconfig-viewer');
      await writeFile(viewer, fake.kubeconfig({ token: 'tok-viewer' }));
      const result = await deploy([], { KUBECONFIG: viewer });
      assert.equal(result.code, 1);
      assert.match(errorLine(result.stderr), /^tsko: kubeconfig user "fake-user" \(context "fake"\) may not PATCH \/apis\/apps\/v1\/namespaces\/default\/deployments\/hello: deployments.apps "hello" is forbidden: User "viewer" cannot patch resource "deployments"/);
      assert.doesNotMatch(result.stderr, /tok-viewer/);
    });

    it('an expired token is refreshed once (the exec plugin runs again), then a clear error', async () => {
      const runs = join(dir, 'plugin-runs');
      const plugin = join(dir, 'token-plugin.sh');
      // Its first token is one the cluster no longer takes; every later run hands out the renewed one.
      await writeFile(plugin, `#!/bin/sh\nif [ -f ${runs} ]; then t=tok-fresh; else t=tok-stale; fi\necho run >> ${runs}\nprintf '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"%s"}}' "$t"\n`, { mode: 0o755 });
      const config = join(dir, 'kubeconfig-plugin');
      await writeFile(config, fake.kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: plugin, interactiveMode: 'Never' } }));
      fake.tokens.set('tok-fresh', 'fresh-user');
      await hello.setVersion('hello refresh');
      const result = await deploy([], { KUBECONFIG: config });
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await readFile(runs, 'utf8')).split('\n').filter(Boolean).length, 2, 'the plugin ran twice');
      const users = fake.requests.filter((r) => r.path.endsWith('/deployments/hello')).map((r) => r.user ?? '401');
      assert.ok(users.includes('401') && users.at(-1) === 'fresh-user', users.join(','));

      fake.tokens.delete('tok-fresh');
      const expired = await deploy([], { KUBECONFIG: config });
      assert.equal(expired.code, 1);
      assert.equal(errorLine(expired.stderr), `tsko: the cluster at ${fake.url} rejected the credentials of kubeconfig user "fake-user" (context "fake") even after reloading them: Unauthorized`);
      fake.tokens.set('tok-fresh', 'fresh-user');
    });

    it('a rollout that times out says how far it got', async () => {
      fake.mode = 'stuck';
      await hello.setVersion('hello stuck');
      try {
        const result = await deploy(['--timeout', '2']);
        assert.equal(result.code, 1);
        assert.match(errorLine(result.stderr), /^tsko: rollout of deployment "hello" timed out after 2 s: pod hello-[0-9a-f]+-[0-9a-f]+ \(container hello\): NotReady: container hello is running but not ready \(readiness probe\)$/);
      } finally {
        fake.mode = 'normal';
      }
    });

    it('ImagePullBackOff and CrashLoopBackOff (with its last log lines) fail the rollout early; a progress deadline fails it', async () => {
      try {
        fake.mode = 'image-pull';
        await hello.setVersion('hello pull');
        const pull = await deploy([]);
        assert.match(errorLine(pull.stderr), /^tsko: rollout of deployment "hello" failed: pod \S+ \(container hello\): ImagePullBackOff: Back-off pulling image "127\.0\.0\.1:\d+\/hello-/);
        assert.match(pull.stderr, /hint: the cluster cannot pull 127\.0\.0\.1/);

        fake.mode = 'crash';
        await hello.setVersion('hello crash');
        const crash = await deploy([]);
        assert.match(errorLine(crash.stderr), /^tsko: rollout of deployment "hello" failed: pod \S+ \(container hello\): CrashLoopBackOff: back-off 40s restarting failed container \(last exit code 2, Error\)$/);
        assert.match(crash.stderr, /last log lines of \S+:\nstarting hello\npanic: cannot open config: no such file/);
        assert.match(crash.stderr, /previous pods keep serving/);

        fake.mode = 'deadline';
        await hello.setVersion('hello deadline');
        const deadline = await deploy([]);
        assert.equal(errorLine(deadline.stderr), 'tsko: deployment "hello" exceeded its progress deadline');
      } finally {
        fake.mode = 'normal';
      }
    });
  });
});
