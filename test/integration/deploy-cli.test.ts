// `tsko dev` on the remote targets, end to end against the fakes: it redeploys on save; a failed
// deploy (missing kubeconfig, unknown context, missing Deployment or service, a crash-looping or
// failing revision) is one line in an iteration.end and never ends the loop — the next save after
// the fix deploys. Also: a loopback registry is refused up front for a target elsewhere, and
// `tsko deploy --target local` serves until Ctrl-C.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { startDev, type DevProcess } from '../support/dev-process.js';
import { DIGEST_REF, errorLine, helloCopy } from '../support/deploy-fixture.js';
import { freePort } from '../support/docker-registry.js';
import { startFakeCloudRun } from '../support/fake-cloudrun.js';
import { startFakeKube } from '../support/fake-kube.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

type End = EventOf<'iteration.end'>;
const isEnd = (event: TskoEvent): event is End => event.type === 'iteration.end';
const nextEnd = (dev: DevProcess, from: number) => dev.waitFor(isEnd, { from, timeoutMs: 90_000 }) as Promise<End>;

describe('tsko dev --target kubernetes', () => {
  it('refuses to start on what its preflight finds (one line, nothing built); then reports each failed rollout as a failed iteration and keeps going', async (t) => {
    const dir = await makeTempDir('dev-kube', t);
    const fake = await startFakeKube({ dir, stepMs: 100 });
    t.after(() => fake.stop());
    fake.tokens.set('tok-admin', 'admin');
    const hello = await helloCopy('dev-kube', t);
    const kubeconfig = join(dir, 'kubeconfig');
    const refused = async (message: string) => {
      const early = startDev(['--target', 'kubernetes', '--context', 'dev'], { cwd: hello.dir, env: { ...hello.env, KUBECONFIG: kubeconfig } });
      t.after(() => {
        if (early.child.exitCode === null) early.child.kill('SIGKILL');
      });
      assert.equal(await early.exited(60_000), 1, early.stderr());
      const preflight = early.events.find((e) => e.type === 'preflight');
      assert.ok(preflight?.type === 'preflight' && !preflight.ok && preflight.message === message, JSON.stringify(early.events));
      assert.ok(!early.events.some((e) => e.type === 'stage.start' && e.stage === 'build'), 'nothing was built');
      assert.equal(errorLine(early.stderr()), `tsko: ${message}`);
    };
    // 1. No kubeconfig; 2. a kubeconfig without the context; 3. the context, but no Deployment.
    await refused(`no kubeconfig: ${kubeconfig} does not exist`);
    await writeFile(kubeconfig, fake.kubeconfig({ token: 'tok-admin' }, { context: 'other' }));
    await refused(`context "dev" is not in ${kubeconfig} (known: other)`);
    await writeFile(kubeconfig, fake.kubeconfig({ token: 'tok-admin' }, { context: 'dev' }));
    await refused(`deployment "hello" not found in namespace "default" (context "dev", ${fake.url})`);
    fake.addDeployment('default', 'hello', [{ name: 'hello', image: 'example.com/hello:old' }]);

    const dev = startDev(['--target', 'kubernetes', '--context', 'dev'], { cwd: hello.dir, env: { ...hello.env, KUBECONFIG: kubeconfig } });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const failed = async (from: number, message: string | RegExp) => {
      const end = await nextEnd(dev, from);
      assert.equal(end.result, 'deploy-failed', JSON.stringify(end));
      if (typeof message === 'string') assert.equal(end.error?.message, message);
      else assert.match(end.error?.message ?? '', message);
      return end;
    };
    let mark = 0;
    // 4. The Deployment exists: the first build rolls out, with the pushed digest.
    const deployed = await nextEnd(dev, mark);
    assert.equal(deployed.result, 'deployed', JSON.stringify(deployed));
    assert.match(deployed.reference ?? '', DIGEST_REF);
    assert.equal(fake.deployment('default', 'hello')?.spec.template.spec.containers[0].image, deployed.reference);
    assert.match(deployed.revision ?? '', /^hello-[0-9a-f]{10}$/);
    assert.ok(dev.events.slice(mark).some((e) => e.type === 'rollout' && /successfully rolled out/.test(e.message)), 'rollout progress is an event');
    assert.ok(dev.events.slice(mark).some((e) => e.type === 'stage.end' && e.stage === 'ready' && e.ok), 'time to rolled out is a stage');
    // 5. A crash-looping revision fails the iteration with the pod's reason and its logs.
    fake.mode = 'crash';
    mark = dev.events.length;
    await hello.setVersion('hello v5');
    const crash = await failed(mark, /^rollout of deployment "hello" failed: pod \S+ \(container hello\): CrashLoopBackOff/);
    assert.match(crash.error?.detail ?? '', /panic: cannot open config/);
    // 6. Fixed: the next save deploys again.
    fake.mode = 'normal';
    mark = dev.events.length;
    await hello.setVersion('hello v6');
    const again = await nextEnd(dev, mark);
    assert.equal(again.result, 'deployed', JSON.stringify(again));
    assert.equal(fake.deployment('default', 'hello')?.spec.template.spec.containers[0].image, again.reference);
    assert.equal(dev.child.exitCode, null, 'tsko dev is still running');

    dev.child.kill('SIGINT');
    assert.notEqual(await dev.exited(5000), 'timeout');
  });
});

describe('tsko dev --target cloudrun', () => {
  it('creates a missing service on the first iteration (after its preflight); a failing revision fails its iteration; the previous revision keeps serving; saves redeploy', async (t) => {
    const fake = await startFakeCloudRun({ stepMs: 150 });
    t.after(() => fake.stop());
    fake.tokens.set('tok-dev', 'dev@example.com');
    const hello = await helloCopy('dev-run', t);
    const dev = startDev(['--target', 'cloudrun', '--project', 'p', '--region', 'europe-west1', '--allow-unauthenticated'], {
      cwd: hello.dir,
      env: { ...hello.env, CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN: fake.url, CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-dev' },
    });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });

    const first = await nextEnd(dev, 0);
    assert.equal(first.result, 'deployed', JSON.stringify(first));
    assert.match(first.revision ?? '', /^hello-00001-[0-9a-f]{3}$/);
    const preflight = dev.events.find((e) => e.type === 'preflight');
    assert.equal(preflight?.type === 'preflight' && preflight.message, 'service hello does not exist in project p, region europe-west1: the first deploy creates it (public: --allow-unauthenticated)');
    assert.ok(fake.calls.some((c) => c.method === 'POST' && c.query.serviceId === 'hello'), 'services.create');
    assert.deepEqual(fake.policy('p', 'europe-west1', 'hello')?.bindings, [{ role: 'roles/run.invoker', members: ['allUsers'] }]);

    let mark = dev.events.length;
    await hello.setVersion('hello v2');
    const deployed = await nextEnd(dev, mark);
    assert.equal(deployed.result, 'deployed', JSON.stringify(deployed));
    assert.equal(deployed.url, 'https://hello-x7fake-uc.a.run.app');
    assert.match(deployed.revision ?? '', /^hello-00002-[0-9a-f]{3}$/);
    assert.equal(fake.service('p', 'europe-west1', 'hello')?.template.containers[0].image, deployed.reference);
    // The IAM policy is set once a session, not on every save.
    assert.equal(fake.calls.filter((c) => c.path.endsWith(':setIamPolicy')).length, 1);

    fake.mode = 'fail';
    mark = dev.events.length;
    await hello.setVersion('hello v3');
    const broken = await nextEnd(dev, mark);
    assert.equal(broken.result, 'deploy-failed');
    assert.match(broken.error?.message ?? '', /^revision hello-00003-\S+ of Cloud Run service "hello" failed: Revision 'hello-00003-\S+' is not ready/);
    assert.equal(broken.error?.hint, `${deployed.revision} keeps serving; the next save rolls a new revision`);
    const failed = dev.events.slice(mark).find((e) => e.type === 'rollout.failed');
    assert.equal(failed?.type === 'rollout.failed' && failed.reason, 'REVISION_FAILED');
    assert.equal(fake.service('p', 'europe-west1', 'hello')?.latestReadyRevision.split('/').pop(), deployed.revision);

    fake.mode = 'ready';
    mark = dev.events.length;
    await hello.setVersion('hello v4');
    const fixed = await nextEnd(dev, mark);
    assert.equal(fixed.result, 'deployed', JSON.stringify(fixed));
    assert.match(fixed.revision ?? '', /^hello-00004-/);
    assert.equal(dev.child.exitCode, null);
    dev.child.kill('SIGINT');
    assert.notEqual(await dev.exited(5000), 'timeout');
  });
});

describe('a loopback registry with a remote target', () => {
  it('is refused up front, saying what to set, unless the endpoint is on this machine too', async (t) => {
    const hello = await helloCopy('loopback', t);
    const dir = await makeTempDir('loopback', t);
    const kubeconfig = join(dir, 'kubeconfig');
    // A cluster elsewhere; nothing connects to it, the refusal comes first.
    await writeFile(kubeconfig, JSON.stringify({
      apiVersion: 'v1',
      clusters: [{ name: 'remote', cluster: { server: 'https://10.255.255.1:6443' } }],
      users: [{ name: 'u', user: { token: 'x' } }],
      contexts: [{ name: 'remote', context: { cluster: 'remote', user: 'u' } }],
      'current-context': 'remote',
    }));
    const kube = await hello.deploy(['--target', 'kubernetes'], { KUBECONFIG: kubeconfig });
    assert.equal(kube.code, 1);
    assert.match(errorLine(kube.stderr), /^tsko: images go to 127\.0\.0\.1:\d+, which the cluster at https:\/\/10\.255\.255\.1:6443 cannot pull from \(it is this machine's loopback address\)$/);
    assert.match(kube.stderr, /hint: set KO_DOCKER_REPO to a registry the cluster can pull from/);
    assert.doesNotMatch(kube.stderr, /Building/, 'refused before building');

    const run = await hello.deploy(['--target', 'cloudrun', '--project', 'p', '--region', 'r'], { KO_DOCKER_REPO: 'localhost:5000/team' });
    assert.equal(run.code, 1);
    assert.equal(errorLine(run.stderr), "tsko: images go to localhost:5000, which Cloud Run cannot pull from (it is this machine's loopback address)");
    assert.match(run.stderr, /hint: set KO_DOCKER_REPO to an Artifact Registry repository/);

    const dev = startDev(['--target', 'kubernetes'], { cwd: hello.dir, env: { ...hello.env, KUBECONFIG: kubeconfig } });
    assert.equal(await dev.exited(30_000), 1, 'tsko dev refuses it at start too');
    assert.match(dev.stderr(), /which the cluster at https:\/\/10\.255\.255\.1:6443 cannot pull from/);
  });
});

describe('tsko deploy --target local', () => {
  it('prints the URL once the revision serves, and serves until Ctrl-C', async (t) => {
    const hello = await helloCopy('deploy-local', t);
    const port = await freePort();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...process.env, ...hello.env })) if (v !== undefined) env[k] = v;
    const child = spawn(join(repoRoot, 'node_modules/.bin/node'), [join(repoRoot, 'bin/tsko.js'), 'deploy', '--target', 'local', '--port', String(port)], { cwd: hello.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL within 90 s:\n${stderr}`)), 90_000);
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        if (stdout.includes('\n')) {
          clearTimeout(timer);
          resolve(stdout.trim());
        }
      });
      child.once('exit', () => reject(new Error(`exited early:\n${stderr}`)));
    });
    assert.equal(url, `http://127.0.0.1:${port}`);
    assert.equal((await httpGet(url)).body, 'hello v1\n');
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0);
    await assert.rejects(httpGet(url, 1000));
  });
});
