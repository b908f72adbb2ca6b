// The Kubernetes API fake, for the faults a real control plane cannot be made to show on demand
// (a pod running but never Ready, a progress deadline passed, a watch cut with 410 Gone). It is held
// to the installed kubectl first (set image, patch types, server-side apply with kubectl's JSON
// body, rollout status, an exec-plugin kubeconfig), and to what the real apiserver refuses (pods/log
// with Accept: text/plain is 406, checked against the real one in kube-real.test.ts). Everything a
// real control plane can show is tested there.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { startFakeKube, type FakeKube } from '../support/fake-kube.js';
import { errorLine, helloCopy, type HelloCopy } from '../support/deploy-fixture.js';
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
    // kubectl sends the apply body as JSON under the YAML media type; tsko does the same.
    assert.deepEqual(applies.map((r) => (JSON.parse(r.body) as { kind: string }).kind).sort(), ['ConfigMap', 'Deployment']);
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

  it('pods/log: kubectl logs (Accept */*) is served, Accept: text/plain is refused 406 as the real apiserver refuses it', async () => {
    fake.addDeployment('default', 'logs', [{ name: 'app', image: 'a:1' }]);
    fake.mode = 'crash';
    try {
      assert.equal((await kubectl(['set', 'image', 'deployment/logs', 'app=a:2'])).exitCode, 0);
      const pod = await waitForPod('logs');
      const logs = await kubectl(['logs', pod, '-c', 'app', '--tail=20']);
      assert.equal(logs.exitCode, 0, logs.stderr);
      assert.match(logs.stdout, /panic: cannot open config/);
      assert.match(fake.requests.findLast((r) => r.path.endsWith('/log'))?.accept ?? '', /\*\/\*/);
      const plain = await fetchWithAccept(`${fake.url}/api/v1/namespaces/default/pods/${pod}/log`, 'text/plain');
      assert.equal(plain, 406);
    } finally {
      fake.mode = 'normal';
    }
  });

  const waitForPod = async (app: string): Promise<string> => {
    for (let i = 0; i < 50; i++) {
      const pod = (await kubectl(['get', 'pods', '-l', `app=${app}`, '-o', 'jsonpath={.items[0].metadata.name}'])).stdout;
      if (pod) return pod;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no pod of ${app}`);
  };

  const fetchWithAccept = (url: string, accept: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(url, { ca: Buffer.from(fake.caData, 'base64'), headers: { accept, authorization: 'Bearer tok-admin' }, timeout: 10_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
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

describe('tsko deploy --target kubernetes, faults only the fake can inject', () => {
  let fake: FakeKube;
  let hello: HelloCopy;
  let kubeconfig: string;
  let dir: string;
  before(async () => {
    dir = await makeTempDir('kube-deploy');
    fake = await startFakeKube({ dir, stepMs: 100 });
    fake.tokens.set('tok-admin', 'admin');
    kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, fake.kubeconfig({ token: 'tok-admin' }));
    fake.addDeployment('default', 'hello', [{ name: 'hello', image: 'example.com/hello:old' }], 2);
    hello = await helloCopy('kube');
  });
  after(() => fake.stop());

  const deploy = (args: string[], env: Record<string, string | undefined> = {}) => hello.deploy(['--target', 'kubernetes', ...args], { KUBECONFIG: kubeconfig, ...env });

  it('follows the rollout with a watch from the PATCH answer\'s resourceVersion, and asks for pod logs with Accept */*', async () => {
    fake.mode = 'crash';
    await hello.setVersion('hello crash');
    try {
      const result = await deploy([]);
      assert.equal(result.code, 1);
      const patch = fake.requests.findLast((r) => r.method === 'PATCH' && r.path.endsWith('/deployments/hello'));
      const watch = fake.requests.find((r) => r.query.watch === 'true' && r.path === '/apis/apps/v1/namespaces/default/deployments');
      assert.ok(patch && watch, 'a watch on the deployments');
      assert.equal(watch.query.fieldSelector, 'metadata.name=hello');
      assert.match(watch.query.resourceVersion ?? '', /^\d+$/);
      assert.equal(fake.requests.filter((r) => r.method === 'GET' && r.path === '/apis/apps/v1/namespaces/default/deployments/hello').length, 2, 'no polling: one GET by the preflight, one before the patch');
      const logs = fake.requests.filter((r) => r.path.endsWith('/log'));
      assert.ok(logs.length > 0 && logs.every((r) => r.accept === '*/*'), JSON.stringify(logs.map((r) => r.accept)));
      assert.match(result.stderr, /last log lines of \S+:\nstarting hello\npanic: cannot open config: no such file/);
    } finally {
      fake.mode = 'normal';
    }
  });

  it('a watch the server cuts with 410 Gone is opened again from a fresh read', async () => {
    fake.expireNextWatch = true;
    await hello.setVersion('hello expired');
    const result = await deploy([]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(fake.expireNextWatch, false, 'the 410 was answered');
    const watches = fake.requests.filter((r) => r.query.watch === 'true');
    assert.ok(watches.length >= 2, `watched again (${watches.length} watches)`);
    assert.match(result.stderr, /deployment "hello" successfully rolled out/);
  });

  describe('bad input prints one line', () => {
    it('a missing kubeconfig, and an unknown context', async () => {
      const missing = await deploy([], { KUBECONFIG: join(dir, 'absent') });
      assert.equal(errorLine(missing.stderr), `tsko: no kubeconfig: ${join(dir, 'absent')} does not exist`);
      const unknown = await deploy(['--context', 'prod']);
      assert.equal(errorLine(unknown.stderr), `tsko: context "prod" is not in ${kubeconfig} (known: fake)`);
    });

    it('a rollout that times out says how far it got (a pod running but never Ready)', async () => {
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

    it('a progress deadline fails the rollout at once, as rollout.failed', async () => {
      fake.mode = 'deadline';
      await hello.setVersion('hello deadline');
      try {
        const deadline = await deploy(['--json']);
        assert.equal(deadline.code, 1);
        assert.equal(errorLine(deadline.stderr), 'tsko: deployment "hello" exceeded its progress deadline');
        const failed = deadline.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; reason?: string }).find((e) => e.type === 'rollout.failed');
        assert.equal(failed?.reason, 'ProgressDeadlineExceeded');
      } finally {
        fake.mode = 'normal';
      }
    });
  });
});
