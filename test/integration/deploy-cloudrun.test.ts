// The Cloud Run target (issues 6 and 13): the Admin API v2 fake is first held to the official
// @google-cloud/run client (get, create and update as long-running operations, a failing
// revision, :wait, the service's IAM policy and testIamPermissions, locations, and the errors:
// NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, SERVICE_DISABLED and CONSUMER_INVALID with their
// ErrorInfo, UNAUTHENTICATED) and, for the v1 locations list, to gcloud. Then `tsko deploy
// --target cloudrun` runs against it: a missing service is created (private, or public with
// --allow-unauthenticated, on the configured port), the image is set to the pushed digest and the
// revision waited for, --no-traffic --tag gives a tag URL, a failed revision is a `rollout.failed`
// event and leaves the previous one serving, the preflight stops a doomed deploy before the build
// with one line, each token source is named, and every bad input prints its one line.
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import runClient from '@google-cloud/run';
import { OAuth2Client } from 'google-auth-library';
import { request } from 'undici';
import { METADATA_EMAIL, startFakeCloudRun, type FakeCloudRun } from '../support/fake-cloudrun.js';
import { DIGEST_REF, errorLine, helloCopy, type HelloCopy } from '../support/deploy-fixture.js';
import { startDev } from '../support/dev-process.js';
import { makeTempDir } from '../support/tmp.js';

const PROJECT = 'fake-project';
const REGION = 'us-central1';
const DIGEST = `sha256:${'b'.repeat(64)}`;

interface JsonEvent {
  type: string;
  [key: string]: unknown;
  ok?: boolean;
  reason?: string;
  message?: string;
  level?: string;
  stage?: string;
  result?: string;
  url?: string;
  revision?: string;
  target?: string;
  error?: { message: string; hint?: string };
}

/** `--json`'s stdout: one event per line. */
function jsonEvents(stdout: string): JsonEvent[] {
  return stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as JsonEvent);
}

describe('the Cloud Run Admin API fake, held to @google-cloud/run (and to gcloud for locations)', () => {
  let fake: FakeCloudRun;
  before(async () => {
    fake = await startFakeCloudRun({ stepMs: 100 });
    fake.tokens.set('tok-client', 'client@example.com');
  });
  after(() => fake.stop());

  const client = (token = 'tok-client') => {
    const authClient = new OAuth2Client();
    authClient.setCredentials({ access_token: token });
    const port = Number(fake.host.split(':')[1]);
    return new runClient.v2.ServicesClient({ fallback: true, protocol: 'http', apiEndpoint: '127.0.0.1', port, authClient } as ConstructorParameters<typeof runClient.v2.ServicesClient>[0]);
  };

  it('gets a service, updates its image as a long-running operation, and polls it to a ready revision', async () => {
    fake.addService(PROJECT, REGION, 'svc', 'example.com/svc:old');
    const services = client();
    const name = `projects/${PROJECT}/locations/${REGION}/services/svc`;
    const [service] = await services.getService({ name });
    assert.equal(service.template?.containers?.[0]?.image, 'example.com/svc:old');
    assert.equal(service.latestReadyRevision, `${name}/revisions/svc-00001-abc`);
    (service.template?.containers?.[0] as { image: string }).image = `example.com/svc@${DIGEST}`;
    const [operation] = await services.updateService({ service, updateMask: { paths: ['template'] } });
    const [updated] = await operation.promise();
    assert.equal(updated.template?.containers?.[0]?.image, `example.com/svc@${DIGEST}`);
    assert.equal(updated.latestReadyRevision, updated.latestCreatedRevision);
    assert.match(updated.latestReadyRevision ?? '', /\/revisions\/svc-00002-[0-9a-f]{3}$/);
    assert.equal(String(updated.observedGeneration), String(updated.generation));
    // The LRO's decoded Any carries enums as numbers, a plain GET as names: the same value either way.
    const state = updated.terminalCondition?.state;
    assert.ok(state === 'CONDITION_SUCCEEDED' || state === runClient.protos.google.cloud.run.v2.Condition.State.CONDITION_SUCCEEDED, String(state));
    const patch = fake.calls.find((c) => c.method === 'PATCH');
    assert.equal(patch?.query.updateMask, 'template');
    assert.equal(patch?.user, 'client@example.com');
    assert.ok(fake.calls.some((c) => c.method === 'GET' && c.path.includes('/operations/')), 'the client polled operations.get');
  });

  it('a failing revision fails the operation with its terminal condition; the previous revision stays ready', async () => {
    const services = client();
    const name = `projects/${PROJECT}/locations/${REGION}/services/svc`;
    const [service] = await services.getService({ name });
    const ready = service.latestReadyRevision;
    (service.template?.containers?.[0] as { image: string }).image = 'example.com/svc:broken';
    fake.mode = 'fail';
    try {
      const [operation] = await services.updateService({ service, updateMask: { paths: ['template'] } });
      await assert.rejects(operation.promise(), /is not ready and cannot serve traffic/);
    } finally {
      fake.mode = 'ready';
    }
    const [after] = await services.getService({ name });
    assert.equal(after.latestReadyRevision, ready);
    assert.notEqual(after.latestCreatedRevision, ready);
    assert.equal(String(after.terminalCondition?.state), 'CONDITION_FAILED');

    // A stale etag is refused, and a missing service is NOT_FOUND (gRPC code 5) to the client.
    await assert.rejects(services.updateService({ service: { ...service, etag: '"stale"' }, updateMask: { paths: ['template'] } }), (err: { code?: number }) => err.code === 10);
    await assert.rejects(services.getService({ name: `projects/${PROJECT}/locations/${REGION}/services/none` }), (err: { code?: number }) => err.code === 5);
  });

  it('creates a service as a long-running operation; a second create is ALREADY_EXISTS, a bad id INVALID_ARGUMENT', async () => {
    const services = client();
    const parent = `projects/${PROJECT}/locations/${REGION}`;
    const [operation] = await services.createService({ parent, serviceId: 'fresh', service: { template: { containers: [{ image: `example.com/fresh@${DIGEST}`, ports: [{ containerPort: 9090 }] }] } } });
    const [created] = await operation.promise();
    assert.equal(created.name, `${parent}/services/fresh`);
    assert.equal(created.template?.containers?.[0]?.image, `example.com/fresh@${DIGEST}`);
    assert.deepEqual(created.template?.containers?.[0]?.ports?.map((p) => ({ name: p.name, containerPort: p.containerPort })), [{ name: 'http1', containerPort: 9090 }]);
    assert.match(created.latestReadyRevision ?? '', /\/revisions\/fresh-00001-[0-9a-f]{3}$/);
    assert.equal(created.latestReadyRevision, created.latestCreatedRevision);
    assert.equal(created.uri, 'https://fresh-x7fake-uc.a.run.app');
    const post = fake.calls.find((c) => c.method === 'POST' && c.path === `/v2/${parent}/services`);
    assert.equal(post?.query.serviceId, 'fresh');
    assert.equal(JSON.parse(post?.body ?? '{}').name, undefined, 'the client sends the Service without its name');

    await assert.rejects(services.createService({ parent, serviceId: 'fresh', service: { template: { containers: [{ image: 'example.com/x:1' }] } } }), (err: { code?: number }) => err.code === 6);
    await assert.rejects(services.createService({ parent, serviceId: 'Bad_Name', service: { template: { containers: [{ image: 'example.com/x:1' }] } } }), (err: { code?: number }) => err.code === 3);
    await assert.rejects(services.createService({ parent, serviceId: 'noimage', service: { template: { containers: [{}] } } }), (err: { code?: number }) => err.code === 3);
    // Traffic may name only a revision that exists or the one being created.
    const ghost = { type: runClient.protos.google.cloud.run.v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision: 'ghost-00001-abc', percent: 100 };
    await assert.rejects(services.createService({ parent, serviceId: 'ghost', service: { template: { containers: [{ image: 'example.com/x:1' }] }, traffic: [ghost] } }), (err: { code?: number; message?: string }) => err.code === 3 && /ghost-00001-abc/.test(err.message ?? ''));
    const [tagged] = await services.createService({ parent, serviceId: 'tagged', service: { template: { revision: 'tagged-first', containers: [{ image: 'example.com/x:1' }] }, traffic: [{ ...ghost, revision: 'tagged-first', percent: 0, tag: 'one' }, { type: 1, percent: 100 }] } });
    const [withTag] = await tagged.promise();
    assert.equal(withTag.trafficStatuses?.find((t) => t.tag === 'one')?.uri, 'https://one---tagged-x7fake-uc.a.run.app');
  });

  it("reads and sets the service's IAM policy with its etag, and answers testIamPermissions (also before the service exists)", async () => {
    const services = client();
    const resource = `projects/${PROJECT}/locations/${REGION}/services/fresh`;
    const [policy] = await services.getIamPolicy({ resource });
    assert.deepEqual(policy.bindings, []);
    assert.ok(policy.etag && policy.etag.length > 0, 'an etag');
    const [set] = await services.setIamPolicy({ resource, policy: { bindings: [{ role: 'roles/run.invoker', members: ['allUsers'] }], etag: policy.etag } });
    assert.deepEqual(set.bindings?.map((b) => ({ role: b.role, members: b.members })), [{ role: 'roles/run.invoker', members: ['allUsers'] }]);
    assert.deepEqual(fake.policy(PROJECT, REGION, 'fresh')?.bindings, [{ role: 'roles/run.invoker', members: ['allUsers'] }]);
    // The old etag is stale now: ABORTED (10); a member IAM does not know: INVALID_ARGUMENT (3).
    await assert.rejects(services.setIamPolicy({ resource, policy: { bindings: [], etag: policy.etag } }), (err: { code?: number }) => err.code === 10);
    await assert.rejects(services.setIamPolicy({ resource, policy: { bindings: [{ role: 'roles/run.invoker', members: ['everyone'] }] } }), (err: { code?: number }) => err.code === 3);
    fake.restrictPublicMembers = true;
    try {
      await assert.rejects(services.setIamPolicy({ resource, policy: { bindings: [{ role: 'roles/run.invoker', members: ['allUsers'] }] } }), (err: { code?: number; message?: string }) => err.code === 9 && /permitted customer/.test(err.message ?? ''));
    } finally {
      fake.restrictPublicMembers = false;
    }
    await assert.rejects(services.getIamPolicy({ resource: `projects/${PROJECT}/locations/${REGION}/services/none` }), (err: { code?: number }) => err.code === 5);

    fake.tokens.set('tok-limited', 'limited@example.com');
    fake.grants.set('limited@example.com', new Set(['run.services.get']));
    const limited = client('tok-limited');
    const [answer] = await limited.testIamPermissions({ resource: `projects/${PROJECT}/locations/${REGION}/services/not-yet`, permissions: ['run.services.get', 'run.services.create'] });
    assert.deepEqual(answer.permissions, ['run.services.get']);
    const [none] = await limited.testIamPermissions({ resource, permissions: ['run.services.setIamPolicy'] });
    assert.deepEqual(none.permissions, []);
    await assert.rejects(limited.createService({ parent: `projects/${PROJECT}/locations/${REGION}`, serviceId: 'denied', service: { template: { containers: [{ image: 'example.com/x:1' }] } } }), (err: { code?: number; message?: string }) => err.code === 7 && /run\.services\.create/.test(err.message ?? ''));
  });

  it('lists locations, and refuses a disabled API, a missing project and a bad token the way clients parse them', async () => {
    const services = client();
    const ids: string[] = [];
    for await (const location of services.listLocationsAsync({ name: `projects/${PROJECT}` })) ids.push(location.locationId ?? '');
    assert.ok(ids.includes(REGION) && ids.includes('europe-west1'), ids.join());
    assert.ok(fake.calls.some((c) => c.method === 'GET' && c.path === `/v1/projects/${PROJECT}/locations`), 'the client lists v1 locations');

    fake.disabledProjects.add('off-project');
    fake.missingProjects.add('no-project');
    await assert.rejects(services.getService({ name: 'projects/off-project/locations/us-central1/services/x' }), (err: { code?: number; reason?: string; domain?: string; errorInfoMetadata?: Record<string, string> }) => {
      assert.equal(err.code, 7);
      assert.equal(err.reason, 'SERVICE_DISABLED');
      assert.equal(err.domain, 'googleapis.com');
      assert.equal(err.errorInfoMetadata?.service, 'run.googleapis.com');
      return true;
    });
    await assert.rejects(services.getService({ name: 'projects/no-project/locations/us-central1/services/x' }), (err: { code?: number; reason?: string }) => err.code === 7 && err.reason === 'CONSUMER_INVALID');
    await assert.rejects(client('tok-unknown').getService({ name: `projects/${PROJECT}/locations/${REGION}/services/svc` }), (err: { code?: number }) => err.code === 16);
  });

  it('gcloud run regions list reads the same v1 locations, and shows a disabled API as SERVICE_DISABLED', async () => {
    // gcloud through the fake as an HTTP proxy (an endpoint override on 127.0.0.1 would become a regional host name).
    const port = fake.host.split(':')[1] as string;
    fake.tokens.set('tok-gcloud', 'gcloud@example.com');
    const gcloud = async (project: string) => {
      try {
        const { stdout } = await promisify(execFile)('gcloud', ['run', 'regions', 'list', '--format=value(locationId)'], {
          env: {
            PATH: process.env.PATH ?? '',
            HOME: await makeTempDir('gcloud-home'),
            CLOUDSDK_CONFIG: await makeTempDir('gcloud-config'),
            CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
            CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK: 'true',
            CLOUDSDK_CORE_SHOULD_PROMPT_TO_ENABLE_API: 'false',
            CLOUDSDK_CORE_CHECK_GCE_METADATA: 'false',
            CLOUDSDK_SURVEY_DISABLE_PROMPTS: 'true',
            CLOUDSDK_METRICS_ENVIRONMENT: 'tsko-test',
            GCE_METADATA_ROOT: fake.host,
            CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-gcloud',
            CLOUDSDK_CORE_PROJECT: project,
            CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN: 'http://run.fake.test/',
            CLOUDSDK_PROXY_TYPE: 'http',
            CLOUDSDK_PROXY_ADDRESS: '127.0.0.1',
            CLOUDSDK_PROXY_PORT: port,
          },
          timeout: 60_000,
        });
        return { code: 0, stdout, stderr: '' };
      } catch (err) {
        const failed = err as { code?: number; stdout?: string; stderr?: string };
        return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
      }
    };
    const listed = await gcloud(PROJECT);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(listed.stdout.trim().split('\n'), fake.regions);
    assert.ok(fake.calls.some((c) => c.user === 'gcloud@example.com' && c.path === `/v1/projects/${PROJECT}/locations`));

    fake.disabledProjects.add('gcloud-off');
    const disabled = await gcloud('gcloud-off');
    assert.equal(disabled.code, 1);
    assert.match(disabled.stderr, /Cloud Run Admin API has not been used in project \d+ before or it is disabled/);
    assert.match(disabled.stderr, /reason: SERVICE_DISABLED/);
  });

  it('operations :wait returns once the operation is done', async () => {
    const name = `projects/${PROJECT}/locations/${REGION}/services/svc`;
    const headers = { authorization: 'Bearer tok-client', 'content-type': 'application/json' };
    const current = (await (await request(`${fake.url}/v2/${name}`, { headers })).body.json()) as { etag: string; template: { containers: Array<{ image: string }> } };
    current.template.containers[0] = { ...current.template.containers[0], image: `example.com/svc@${DIGEST}` };
    const op = (await (await request(`${fake.url}/v2/${name}?updateMask=template`, { method: 'PATCH', headers, body: JSON.stringify({ template: current.template, etag: current.etag }) })).body.json()) as { name: string; done?: boolean };
    assert.equal(op.done, false);
    const waited = (await (await request(`${fake.url}/v2/${op.name}:wait`, { method: 'POST', headers, body: '{"timeout":"10s"}' })).body.json()) as { done?: boolean; response?: { latestReadyRevision: string } };
    assert.equal(waited.done, true);
    assert.match(waited.response?.latestReadyRevision ?? '', /svc-00004-/);
  });
});

describe('tsko deploy --target cloudrun', () => {
  let fake: FakeCloudRun;
  let hello: HelloCopy;
  before(async () => {
    fake = await startFakeCloudRun({ stepMs: 150 });
    fake.tokens.set('tok-dev', 'dev@example.com');
    fake.tokens.set('tok-viewer', 'viewer@example.com');
    fake.forbidden.add('viewer@example.com');
    fake.addService(PROJECT, REGION, 'hello', 'example.com/hello:old');
    hello = await helloCopy('cloudrun');
  });
  after(() => fake.stop());

  const base = ['--target', 'cloudrun', '--project', PROJECT, '--region', REGION];
  const deploy = (args: string[], env: Record<string, string | undefined> = {}) =>
    hello.deploy([...base, ...args], { CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN: `${fake.url}/`, CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-dev', ...env });
  const image = (name = 'hello') => fake.service(PROJECT, REGION, name)?.template.containers[0].image as string;

  it('sets the image to the pushed digest, PATCHes with the etag, waits for the operation, and prints the URL', async () => {
    const result = await deploy([]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(image(), DIGEST_REF);
    const svc = fake.service(PROJECT, REGION, 'hello');
    assert.equal(svc?.latestReadyRevision, svc?.latestCreatedRevision);
    assert.equal(result.stdout, 'https://hello-x7fake-uc.a.run.app\n');
    const patch = fake.calls.find((c) => c.method === 'PATCH');
    assert.equal(patch?.query.updateMask, 'template');
    const body = JSON.parse(patch?.body ?? '{}');
    assert.match(body.etag, /^"[0-9a-f]+"$/);
    assert.deepEqual(body.template.containers[0].ports, [{ name: 'http1', containerPort: 8080 }], 'the rest of the template is sent back as read');
    assert.match(result.stderr, /Cloud Run: using an access token from gcloud/);
    assert.match(result.stderr, /revision hello-00002-[0-9a-f]{3} ready in \d+ ms at https:\/\/hello-x7fake-uc\.a\.run\.app/);
    assert.doesNotMatch(result.stderr + result.stdout, /tok-dev/);
  });

  it('--no-traffic --tag rolls a tagged revision, keeps the traffic where it was, and prints the tag URL', async () => {
    const before = fake.service(PROJECT, REGION, 'hello')?.latestReadyRevision as string;
    await hello.setVersion('hello tagged');
    const result = await deploy(['--no-traffic', '--tag', 'preview']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, 'https://preview---hello-x7fake-uc.a.run.app\n');
    const svc = fake.service(PROJECT, REGION, 'hello');
    const tagged = (svc?.traffic as Array<{ revision?: string; tag?: string; percent?: number; type: string }>);
    assert.deepEqual(tagged.map((t) => ({ ...t })), [
      { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: before.split('/').pop(), percent: 100 },
      { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: svc?.latestCreatedRevision.split('/').pop(), percent: 0, tag: 'preview' },
    ]);
    assert.equal(fake.calls.findLast((c) => c.method === 'PATCH')?.query.updateMask, 'template,traffic');
  });

  it('a failing revision prints its terminal condition and leaves the previous revision serving', async () => {
    const serving = fake.service(PROJECT, REGION, 'hello')?.latestReadyRevision as string;
    fake.mode = 'fail';
    await hello.setVersion('hello broken');
    try {
      const result = await deploy([]);
      assert.equal(result.code, 1);
      assert.match(errorLine(result.stderr), /^tsko: revision hello-\d{5}-[0-9a-f]{3} of Cloud Run service "hello" failed: Revision 'hello-\d{5}-[0-9a-f]{3}' is not ready and cannot serve traffic\. The user-provided container failed to start/);
      assert.match(result.stderr, new RegExp(`hint: ${serving.split('/').pop()} keeps serving`));
      assert.equal(fake.service(PROJECT, REGION, 'hello')?.latestReadyRevision, serving);

      // As events: rollout.failed with Cloud Run's own reason and message, before the iteration's end.
      await hello.setVersion('hello broken json');
      const json = await deploy(['--json']);
      assert.equal(json.code, 1);
      const events = jsonEvents(json.stdout);
      const failed = events.filter((e) => e.type === 'rollout.failed');
      assert.equal(failed.length, 1, json.stdout);
      assert.equal(failed[0]?.target, 'cloudrun');
      assert.equal(failed[0]?.reason, 'REVISION_FAILED');
      assert.match(failed[0]?.message ?? '', /^Revision 'hello-\d{5}-[0-9a-f]{3}' is not ready and cannot serve traffic\. The user-provided container failed to start and listen on the port defined provided by the PORT=8080 environment variable/);
      assert.ok(events.indexOf(failed[0] as JsonEvent) < events.findIndex((e) => e.type === 'iteration.end'));
    } finally {
      fake.mode = 'ready';
    }
  });

  it('a failed revision is reported the moment the service says so, not when the Operation ends (or the timeout)', async () => {
    fake.mode = 'fail-pending';
    await hello.setVersion('hello failed early');
    try {
      // The Operation never ends in this mode: only the service's condition can end the wait before the 120 s timeout.
      const result = await deploy(['--json', '--timeout', '120']);
      assert.equal(result.code, 1);
      const failed = jsonEvents(result.stdout).find((e) => e.type === 'rollout.failed');
      assert.equal(failed?.reason, 'REVISION_FAILED');
      assert.match(errorLine(result.stderr), /^tsko: revision hello-\d{5}-[0-9a-f]{3} of Cloud Run service "hello" failed: Revision 'hello-\d{5}-[0-9a-f]{3}' is not ready/);
    } finally {
      fake.mode = 'ready';
    }
  });

  it('a new service whose first revision fails: rollout.failed, and the hint says nothing serves yet', async () => {
    fake.mode = 'fail';
    try {
      const result = await deploy(['--service', 'broken-new', '--port', '7070', '--json']);
      assert.equal(result.code, 1);
      const failed = jsonEvents(result.stdout).find((e) => e.type === 'rollout.failed');
      assert.equal(failed?.reason, 'REVISION_FAILED');
      assert.match(failed?.message ?? '', /PORT=7070 environment variable/);
      const error = jsonEvents(result.stdout).find((e) => e.type === 'iteration.end')?.error;
      assert.equal(error?.hint, 'no revision of broken-new serves yet; the next save rolls a new revision');
    } finally {
      fake.mode = 'ready';
    }
  });

  it('says which token source it used: ADC (from the metadata server), gcloud, or CLOUDSDK_AUTH_ACCESS_TOKEN', async () => {
    await hello.setVersion('hello adc');
    const adc = await deploy([], { CLOUDSDK_AUTH_ACCESS_TOKEN: undefined, METADATA_SERVER_DETECTION: 'assume-present', GCE_METADATA_HOST: fake.host });
    assert.equal(adc.code, 0, adc.stderr);
    assert.match(adc.stderr, /using an access token from application default credentials/);
    assert.equal(fake.calls.findLast((c) => c.method === 'PATCH')?.user, METADATA_EMAIL);

    // Without gcloud on PATH (only go), the environment's token is used.
    const bin = await makeTempDir('cloudrun-path');
    await mkdir(join(bin, 'bin'));
    await symlink((await import('node:child_process')).execFileSync('go', ['env', 'GOROOT'], { encoding: 'utf8' }).trim() + '/bin/go', join(bin, 'bin', 'go'));
    await hello.setVersion('hello env token');
    const env = await deploy([], { PATH: join(bin, 'bin') });
    assert.equal(env.code, 0, env.stderr);
    assert.match(env.stderr, /using an access token from CLOUDSDK_AUTH_ACCESS_TOKEN/);
  });

  describe('a service that does not exist is created, as gcloud run deploy does', () => {
    it('private by default: the preflight says it will be created, the output says how to open it', async () => {
      const result = await deploy(['--service', 'fresh', '--json']);
      assert.equal(result.code, 0, result.stderr);
      const events = jsonEvents(result.stdout);
      const preflight = events.find((e) => e.type === 'preflight');
      assert.equal(preflight?.ok, true);
      assert.equal(preflight?.target, 'cloudrun');
      assert.equal(preflight?.message, `service fresh does not exist in project ${PROJECT}, region ${REGION}: the first deploy creates it (private; --allow-unauthenticated makes it public)`);
      // The preflight comes before the first build.
      assert.ok(events.indexOf(preflight as JsonEvent) < events.findIndex((e) => e.type === 'stage.start' && e.stage === 'build'));

      const post = fake.calls.find((c) => c.method === 'POST' && c.path === `/v2/projects/${PROJECT}/locations/${REGION}/services` && c.query.serviceId === 'fresh');
      assert.ok(post, 'services.create with ?serviceId=fresh');
      const body = JSON.parse(post?.body ?? '{}');
      assert.match(body.template.containers[0].image, DIGEST_REF);
      assert.deepEqual(body.template.containers[0].ports, [{ containerPort: 8080 }]);
      const svc = fake.service(PROJECT, REGION, 'fresh');
      assert.match(svc?.latestReadyRevision ?? '', /\/revisions\/fresh-00001-[0-9a-f]{3}$/);
      const end = events.find((e) => e.type === 'iteration.end');
      assert.equal(end?.result, 'deployed');
      assert.equal(end?.url, 'https://fresh-x7fake-uc.a.run.app');
      assert.match(end?.revision ?? '', /^fresh-00001-[0-9a-f]{3}$/);

      // Private: no IAM call, and the warning names both ways to open it.
      assert.equal(fake.policy(PROJECT, REGION, 'fresh')?.bindings, undefined);
      assert.ok(!fake.calls.some((c) => c.path.endsWith(':setIamPolicy')), 'no setIamPolicy');
      const warning = events.find((e) => e.type === 'log' && e.level === 'warn' && /created private/.test(e.message ?? ''));
      assert.equal(warning?.message, `fresh was created private: only callers with roles/run.invoker reach it; to open it, deploy with --allow-unauthenticated, or run gcloud run services add-iam-policy-binding fresh --region=${REGION} --project=${PROJECT} --member=allUsers --role=roles/run.invoker`);

      // The next deploy updates what was created.
      await hello.setVersion('hello fresh 2');
      const again = await deploy(['--service', 'fresh']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(fake.service(PROJECT, REGION, 'fresh')?.latestReadyRevision ?? '', /\/revisions\/fresh-00002-/);
      assert.equal(fake.calls.filter((c) => c.method === 'POST' && c.query.serviceId === 'fresh').length, 1);
    });

    it('--allow-unauthenticated grants roles/run.invoker to allUsers; the container port comes from --port', async () => {
      const result = await deploy(['--service', 'public', '--allow-unauthenticated', '--port', '9090']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, 'https://public-x7fake-uc.a.run.app\n');
      assert.deepEqual(fake.service(PROJECT, REGION, 'public')?.template.containers[0].ports, [{ name: 'http1', containerPort: 9090 }]);
      assert.deepEqual(fake.policy(PROJECT, REGION, 'public')?.bindings, [{ role: 'roles/run.invoker', members: ['allUsers'] }]);
      const set = fake.calls.find((c) => c.path === `/v2/projects/${PROJECT}/locations/${REGION}/services/public:setIamPolicy`);
      assert.equal(JSON.parse(set?.body ?? '{}').policy.etag, 'ACAB', 'read-modify-write with the etag it read');
      assert.match(result.stderr, /public: granted roles\/run\.invoker to allUsers \(--allow-unauthenticated\)/);
      assert.doesNotMatch(result.stderr, /created private/);

      // Again on the existing service: the binding is there, so the policy is left alone.
      const sets = fake.calls.filter((c) => c.path.endsWith('public:setIamPolicy')).length;
      await hello.setVersion('hello public 2');
      const again = await deploy(['--service', 'public', '--allow-unauthenticated']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /public: already grants roles\/run\.invoker to allUsers/);
      assert.equal(fake.calls.filter((c) => c.path.endsWith('public:setIamPolicy')).length, sets);
    });

    it('dev.cloudrun.allowUnauthenticated in the config does the same; an organization policy refusing allUsers is a warning, as in gcloud', async () => {
      await writeFile(join(hello.dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static', dev: { cloudrun: { allowUnauthenticated: true } } };\n");
      try {
        fake.restrictPublicMembers = true;
        // As gcloud: the deploy goes on, private, with a warning that says why and how to retry.
        const refused = await deploy(['--service', 'restricted']);
        assert.equal(refused.code, 0, refused.stderr);
        assert.match(refused.stderr, new RegExp(`restricted: setting the IAM policy failed \\(FAILED_PRECONDITION: One or more users named in the policy do not belong to a permitted customer\\.\\); the service is not public: gcloud run services add-iam-policy-binding restricted --region=${REGION} --project=${PROJECT} --member=allUsers --role=roles/run\\.invoker`));
        assert.equal(fake.policy(PROJECT, REGION, 'restricted')?.bindings, undefined);
        fake.restrictPublicMembers = false;
        await hello.setVersion('hello config public');
        const result = await deploy(['--service', 'configured']);
        assert.equal(result.code, 0, result.stderr);
        assert.deepEqual(fake.policy(PROJECT, REGION, 'configured')?.bindings, [{ role: 'roles/run.invoker', members: ['allUsers'] }]);
        // The flag's negation wins over the config.
        await hello.setVersion('hello config private');
        const flagged = await deploy(['--service', 'unopened', '--no-allow-unauthenticated']);
        assert.equal(flagged.code, 0, flagged.stderr);
        assert.equal(fake.policy(PROJECT, REGION, 'unopened')?.bindings, undefined);
      } finally {
        fake.restrictPublicMembers = false;
        await writeFile(join(hello.dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
      }
    });

    it('--tag on a new service names its first revision and tags it; all traffic goes to the latest', async () => {
      const result = await deploy(['--service', 'tagged-new', '--tag', 'first']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, 'https://first---tagged-new-x7fake-uc.a.run.app\n');
      const body = JSON.parse(fake.calls.find((c) => c.method === 'POST' && c.query.serviceId === 'tagged-new')?.body ?? '{}');
      assert.match(body.template.revision, /^tagged-new-tsko-[0-9a-z]+$/);
      assert.deepEqual(body.traffic, [
        { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 },
        { type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: body.template.revision, percent: 0, tag: 'first' },
      ]);
      assert.equal(fake.service(PROJECT, REGION, 'tagged-new')?.latestReadyRevision.split('/').pop(), body.template.revision);
    });

    it('--no-traffic cannot create a service: the preflight says so before the build', async () => {
      const result = await deploy(['--service', 'notyet', '--no-traffic', '--tag', 'x']);
      assert.equal(result.code, 1);
      assert.equal(errorLine(result.stderr), `tsko: Cloud Run service "notyet" does not exist in project ${PROJECT}, region ${REGION}, and --no-traffic cannot create it (its first revision takes all traffic)`);
      assert.equal(fake.service(PROJECT, REGION, 'notyet'), undefined);
    });
  });

  describe('the preflight stops a deploy that cannot succeed before anything is built, in one line', () => {
    /** Runs a deploy expected to fail its preflight: returns the error line, the hint and the preflight event. */
    const refused = async (args: string[], env: Record<string, string | undefined> = {}) => {
      const writes = () => fake.calls.filter((c) => c.method !== 'GET' && !c.path.endsWith(':testIamPermissions')).length;
      const before = writes();
      const result = await deploy([...args, '--json'], env);
      assert.equal(result.code, 1, result.stderr);
      const events = jsonEvents(result.stdout);
      assert.ok(!events.some((e) => e.type === 'stage.start'), `nothing built: ${result.stdout}`);
      assert.equal(writes(), before, 'nothing changed');
      const preflight = events.find((e) => e.type === 'preflight');
      assert.equal(preflight?.ok, false);
      assert.doesNotMatch(result.stdout + result.stderr, /tok-/);
      const line = errorLine(result.stderr).replace(/^tsko: /, '');
      // The event says the same as the one line.
      assert.equal(preflight?.message, line);
      return { line, hint: /^hint: (.*)$/m.exec(result.stderr)?.[1], reason: preflight?.reason, message: preflight?.message };
    };

    it('the Cloud Run Admin API is not enabled', async () => {
      fake.disabledProjects.add('off-project');
      const got = await refused(['--project', 'off-project']);
      assert.deepEqual(got, {
        line: 'Cloud Run Admin API is not enabled in project off-project',
        hint: 'gcloud services enable run.googleapis.com --project off-project',
        reason: 'SERVICE_DISABLED',
        message: 'Cloud Run Admin API is not enabled in project off-project',
      });
    });

    it('the project does not exist', async () => {
      fake.missingProjects.add('no-such-project');
      const got = await refused(['--project', 'no-such-project']);
      assert.equal(got.line, 'project no-such-project does not exist, or the caller may not use it: Permission denied on resource project no-such-project.');
      assert.equal(got.reason, 'CONSUMER_INVALID');
    });

    it('the region is not one Cloud Run lists', async () => {
      const got = await refused(['--region', 'us-nowhere1']);
      assert.equal(got.line, `"us-nowhere1" is not a Cloud Run region of project ${PROJECT}`);
      assert.equal(got.hint, 'pass --region with one of: us-central1, us-east1, us-west1 (gcloud run regions list)');
      assert.equal(got.reason, 'LOCATION_NOT_FOUND');
    });

    it('the credentials are refused: how to log in', async () => {
      const got = await refused([], { CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-revoked' });
      assert.match(got.line ?? '', /^Cloud Run rejected the access token of the caller \(token from gcloud\) even after a refresh: Request had invalid authentication credentials/);
      assert.equal(got.hint, 'log in again: gcloud auth login (or gcloud auth application-default login)');
      assert.equal(got.reason, 'UNAUTHENTICATED');

      // No credentials anywhere (no ADC, gcloud logged out, no CLOUDSDK_AUTH_ACCESS_TOKEN): how to log in, before the build.
      const none = await refused([], { CLOUDSDK_AUTH_ACCESS_TOKEN: undefined });
      assert.match(none.line ?? '', /^no Google access token \(application default credentials: .+; gcloud: .+; CLOUDSDK_AUTH_ACCESS_TOKEN is not set\)$/);
      assert.equal(none.hint, 'run `gcloud auth application-default login` (or `gcloud auth login`), or set CLOUDSDK_AUTH_ACCESS_TOKEN');
      assert.equal(none.reason, 'NO_CREDENTIALS');
    });

    it('the caller may read but not update the service: names the missing permission', async () => {
      fake.tokens.set('tok-reader', 'reader@example.com');
      fake.grants.set('reader@example.com', new Set(['run.locations.list', 'run.services.get']));
      const got = await refused([], { CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-reader' });
      assert.equal(got.line, `the caller (token from gcloud) lacks run.services.update on Cloud Run service "hello" in project ${PROJECT}, region ${REGION}`);
      assert.equal(got.reason, 'PERMISSION_DENIED');
      assert.match(got.hint ?? '', /roles\/run\.developer/);
    });

    it('tsko dev: the same preflight ends the session before its first build', async () => {
      fake.disabledProjects.add('off-project');
      const dev = startDev([...base, '--project', 'off-project'], { cwd: hello.dir, env: { ...hello.env, CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN: fake.url, CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-dev' } });
      try {
        // Bounded without holding the test process open once the child is gone.
        const code = await Promise.race([once(dev.child, 'exit').then(([exitCode]) => exitCode as number | null), delay(60_000, 'timeout', { ref: false })]);
        assert.equal(code, 1, dev.stderr());
      } finally {
        if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
      }
      assert.equal(errorLine(dev.stderr()), 'tsko: Cloud Run Admin API is not enabled in project off-project');
      const preflight = dev.events.find((e) => e.type === 'preflight');
      assert.equal(preflight?.type === 'preflight' && preflight.reason, 'SERVICE_DISABLED');
      assert.ok(!dev.events.some((e) => e.type === 'stage.start'), 'nothing built');
    });

    it('the caller may update but not create: names run.services.create for a missing service', async () => {
      fake.tokens.set('tok-updater', 'updater@example.com');
      fake.grants.set('updater@example.com', new Set(['run.locations.list', 'run.services.get', 'run.services.update']));
      const got = await refused(['--service', 'brand-new'], { CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-updater' });
      assert.equal(got.line, `the caller (token from gcloud) lacks run.services.create on Cloud Run service "brand-new" in project ${PROJECT}, region ${REGION} (needed to create it)`);
      // --allow-unauthenticated needs the IAM policy permissions too (roles/run.admin).
      const open = await refused(['--allow-unauthenticated'], { CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-updater' });
      assert.equal(open.line, `the caller (token from gcloud) lacks run.services.getIamPolicy, run.services.setIamPolicy on Cloud Run service "hello" in project ${PROJECT}, region ${REGION}`);
      assert.match(open.hint ?? '', /roles\/run\.admin/);
    });
  });

  describe('bad input prints one line', () => {
    it('403 names the identity and the permission', async () => {
      const result = await deploy([], { CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-viewer' });
      assert.equal(result.code, 1);
      assert.match(errorLine(result.stderr), /^tsko: the caller \(token from gcloud\) may not read the service: PERMISSION_DENIED: Permission 'run\.services\.get' denied on resource 'projects\/fake-project\/locations\/us-central1\/services\/hello'/);
      assert.doesNotMatch(result.stderr, /tok-viewer/);
    });

    it('an expired token is refreshed once, then a clear error', async () => {
      // ADC from the metadata server: the first token is revoked before use, the refresh gets a good one.
      await hello.setVersion('hello refresh');
      const issuedBefore = fake.issued.length;
      fake.metadataTokensValid = false;
      const revoke = setInterval(() => {
        if (fake.issued.length > issuedBefore) fake.metadataTokensValid = true;
      }, 1);
      try {
        const result = await deploy([], { CLOUDSDK_AUTH_ACCESS_TOKEN: undefined, METADATA_SERVER_DETECTION: 'assume-present', GCE_METADATA_HOST: fake.host });
        assert.equal(result.code, 0, result.stderr);
      } finally {
        clearInterval(revoke);
      }
      assert.equal(fake.issued.length - issuedBefore, 2, 'one refresh');
      assert.ok(fake.calls.some((c) => c.user === undefined), 'the first token was refused');

      fake.metadataTokensValid = false;
      await hello.setVersion('hello expired');
      const expired = await deploy([], { CLOUDSDK_AUTH_ACCESS_TOKEN: undefined, METADATA_SERVER_DETECTION: 'assume-present', GCE_METADATA_HOST: fake.host });
      fake.metadataTokensValid = true;
      assert.equal(expired.code, 1);
      assert.equal(errorLine(expired.stderr), `tsko: Cloud Run rejected the access token of ${METADATA_EMAIL} (token from application default credentials) even after a refresh: Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.`);
    });

    it('a revision that never gets ready times out; an Operation that fails says why', async () => {
      fake.mode = 'hang';
      await hello.setVersion('hello hang');
      try {
        const result = await deploy(['--timeout', '2']);
        assert.equal(result.code, 1);
        assert.match(errorLine(result.stderr), /^tsko: the new revision of Cloud Run service "hello" was not ready within 2 s \(operation [0-9a-f]+ still running\)$/);
      } finally {
        fake.mode = 'ready';
      }
    });

    it('dev.cloudrun.allowUnauthenticated must be true or false', async () => {
      await writeFile(join(hello.dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static', dev: { cloudrun: { allowUnauthenticated: 'yes' } } };\n");
      try {
        const result = await deploy([]);
        assert.equal(result.code, 1);
        assert.match(errorLine(result.stderr), /^tsko: .*tsko\.config\.ts: dev\.cloudrun\.allowUnauthenticated must be true or false$/);
      } finally {
        await writeFile(join(hello.dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
      }
    });

    it('missing project or region are usage errors', async () => {
      const result = await hello.deploy(['--target', 'cloudrun', '--region', REGION], { CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-dev' });
      assert.equal(errorLine(result.stderr), 'tsko: --target cloudrun needs a project: pass --project (or set dev.cloudrun.project, or CLOUDSDK_CORE_PROJECT)');
    });
  });
});
