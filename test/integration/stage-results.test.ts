// Every stage's `ok` is its real outcome, on every target, end to end: the real `tsko dev --json`
// on a copy of examples/hello, one save at a time, with iterations that fail at build (a compile
// error), push (a registry that refuses the manifest), deploy (the target's own call fails) and
// ready (the new revision never serves), each followed by a recovery. For each failing iteration
// the event stream has exactly one failed stage.end, every stage before it ok and none after it;
// the dashboard's reducer draws that stage ✗ ('failed') and the earlier ones ok; and its warm
// statistics count only the iterations that deployed.
//
// Pushes go through a fault proxy (test/support/fault-proxy.ts) in front of Debian's
// docker-registry, so the push failure is a real registry answer (403 on the manifest PUT). Both
// are on 127.0.0.1, as are the Kubernetes and Cloud Run fakes, so the loopback-registry guard of
// the remote targets lets them through.
import assert from 'node:assert/strict';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { TargetKind } from '../../src/deploy/target.js';
import type { EventOf, Stage, TskoEvent } from '../../src/events.js';
import { reduceAll, STAGES, type HistoryEntry, type StageStatus } from '../../ui/dashboard/state.js';
import { helloCopy, type HelloCopy } from '../support/deploy-fixture.js';
import { startDev, type DevProcess } from '../support/dev-process.js';
import { freePort, startDockerRegistry, type DockerRegistry } from '../support/docker-registry.js';
import { startFakeCloudRun } from '../support/fake-cloudrun.js';
import { startFakeKube } from '../support/fake-kube.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

type End = EventOf<'iteration.end'>;
type Expected = Array<[Stage, boolean]>;

/** One iteration as the --json stream told it: its end, its own events, and where its end is in the stream. */
interface Settled {
  end: End;
  events: TskoEvent[];
  endIndex: number;
}

/** Bounds every wait on one iteration: a cold go build plus a rollout on a loaded 2-core machine. */
const ITERATION_TIMEOUT_MS = 90_000;

const ORIGINAL_MAIN = await readFile(join(repoRoot, 'examples/hello/main.go'), 'utf8');
const LISTEN_LINE = '\tlog.Printf("hello: listening on :%s", port)\n';
assert.ok(ORIGINAL_MAIN.includes('hello v1') && ORIGINAL_MAIN.includes(LISTEN_LINE), 'examples/hello/main.go is what these edits expect');

const sources = {
  version: (text: string) => ORIGINAL_MAIN.replace('hello v1', text),
  /** A compile error on its own line, tab-indented: go reports it at column 2 of that line. */
  compileError(text: string): { source: string; line: number } {
    const source = sources.version(text).replace('func main() {\n', 'func main() {\n\tundefinedCall()\n');
    const line = source.split('\n').indexOf('\tundefinedCall()') + 1;
    return { source, line };
  },
  /** Builds fine, then exits before it listens on PORT. */
  exitsBeforeListening: (text: string) => sources.version(text).replace(LISTEN_LINE, '\tlog.Fatalf("hello: %s refuses to start", version)\n'),
};

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Saves as careful editors do (a temp file renamed over the old one), so the loop sees one change. */
async function save(hello: HelloCopy, source: string): Promise<void> {
  const path = join(hello.dir, 'main.go');
  const temp = `${path}.stage-test.tmp`; // `.tmp`: ignored by the watcher
  await writeFile(temp, source);
  await rename(temp, path);
}

/**
 * The first iteration that ended after event `from` without being cancelled (a superseded one
 * ends `cancelled` and is not what a save led to), with that iteration's own events.
 */
async function settle(dev: DevProcess, from: number): Promise<Settled> {
  const end = (await dev.waitFor((e) => e.type === 'iteration.end' && e.result !== 'cancelled', { from, timeoutMs: ITERATION_TIMEOUT_MS })) as End;
  const endIndex = dev.events.indexOf(end);
  const events = dev.events.slice(0, endIndex + 1).filter((e) => e.iteration === end.iteration && e.service === 'hello');
  return { end, events, endIndex };
}

/** Saves `source` and waits for the iteration it leads to. */
async function saveAndSettle(dev: DevProcess, hello: HelloCopy, source: string): Promise<Settled> {
  const mark = dev.events.length;
  await save(hello, source);
  return settle(dev, mark);
}

const describeIteration = (s: Settled) => `iteration ${s.end.iteration}:\n${s.events.map((e) => JSON.stringify(e)).join('\n')}`;

/**
 * (a) The --json stream: exactly these stage.ends, in this order, with these `ok`s (so one
 * failed stage, every earlier one ok, none after it), each after its own stage.start, none
 * cancelled; and the iteration's result. With `overlap` (the local target) `deploy` and `ready`
 * run alongside `layer` and `push`: deploy starts once the binary is built, ready after it.
 */
function assertStream(s: Settled, result: End['result'], expected: Expected, overlap: boolean): void {
  assert.equal(s.end.result, result, `${describeIteration(s)}\nexpected ${result}`);
  const stageEvents = s.events.filter((e): e is EventOf<'stage.start'> | EventOf<'stage.end'> => e.type === 'stage.start' || e.type === 'stage.end');
  const at = (type: 'stage.start' | 'stage.end', stage: Stage) => stageEvents.findIndex((e) => e.type === type && e.stage === stage);
  const inOrder = <T extends { stage: Stage }>(list: T[]) => (overlap ? [...list].sort((a, b) => STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage)) : list);
  const starts = inOrder(s.events.filter((e): e is EventOf<'stage.start'> => e.type === 'stage.start')).map((e) => e.stage);
  const ends = inOrder(s.events.filter((e): e is EventOf<'stage.end'> => e.type === 'stage.end'));
  assert.deepEqual(
    ends.map((e) => [e.stage, e.ok]),
    expected,
    `stage.end (stage, ok) of ${describeIteration(s)}`,
  );
  assert.deepEqual(starts, expected.map(([stage]) => stage), `stage.start of ${describeIteration(s)}`);
  if (overlap && at('stage.start', 'deploy') >= 0) {
    // The revision starts from the built binary (while its layer is packed) and serves as soon as
    // it answers: deploy follows build, ready follows deploy, and the push may end after both.
    assert.ok(at('stage.start', 'deploy') > at('stage.end', 'build'), `deploy starts after build: ${describeIteration(s)}`);
    if (at('stage.start', 'ready') >= 0) assert.ok(at('stage.start', 'ready') > at('stage.end', 'deploy'), `ready starts after deploy ended: ${describeIteration(s)}`);
  }
  for (const e of ends) {
    assert.equal(e.cancelled, undefined, `no stage of a settled iteration is cancelled: ${JSON.stringify(e)}`);
    assert.ok(Number.isFinite(e.ms) && e.ms >= 0, `stage ${e.stage} has a duration: ${JSON.stringify(e)}`);
  }
  if (result === 'deployed') assert.equal(s.end.error, undefined);
  else assert.ok(s.end.error, `a failed iteration says why: ${JSON.stringify(s.end)}`);
}

/**
 * (b) The dashboard, fed the stream up to this iteration's end: the stage row shows this
 * iteration, the failed stage ✗ ('failed'), the earlier ones 'ok', the later ones not at all.
 */
function assertDashboard(dev: DevProcess, s: Settled, expected: Expected): void {
  const state = reduceAll(dev.events.slice(0, s.endIndex + 1));
  const service = state.services.find((x) => x.name === 'hello');
  assert.ok(service, 'the dashboard knows the service');
  assert.equal(service.lastEnded?.iteration, s.end.iteration);
  assert.equal(service.lastEnded?.end?.result, s.end.result);
  const shown: Partial<Record<Stage, StageStatus>> = {};
  for (const stage of STAGES) {
    const run = service.lastEnded?.stages[stage];
    if (run) shown[stage] = run.status;
  }
  const wanted: Partial<Record<Stage, StageStatus>> = {};
  for (const [stage, ok] of expected) wanted[stage] = ok ? 'ok' : 'failed';
  assert.deepEqual(shown, wanted, `dashboard stages of iteration ${s.end.iteration}`);
}

const ALL_OK: Expected = STAGES.map((stage) => [stage, true]);
/** The stages up to `failed`: every earlier one ok, `failed` not. */
/**
 * The stage.ends of an iteration failing at `failed`. On the local target (`overlap`) a failed
 * push comes with the deploy and ready that ran alongside it: the revision served from the built
 * binary, and was switched away from when the push failed.
 */
function failingAt(failed: Stage, overlap = false): Expected {
  if (overlap && failed === 'push') return [...failingAt('push'), ['deploy', true], ['ready', true]];
  const index = STAGES.indexOf(failed);
  return STAGES.slice(0, index + 1).map((stage, i) => [stage, i < index]);
}

/** A fault the test switches on for one save and off again. */
interface Fault {
  on(): Promise<void> | void;
  off(): Promise<void> | void;
  /** What the iteration.end error says. */
  message: RegExp;
  /** What its detail says, where there is one to check. */
  detail?: RegExp;
}

/** What differs between targets: how tsko dev is pointed at it, and how its own call and its readiness fail. */
interface TargetDriver {
  args: string[];
  env: Record<string, string | undefined>;
  /** The target's deploy() call fails. */
  deployFault: Fault;
  /** deploy() succeeds, the new revision never serves. `source` is the save that goes with it. */
  readyFault: Fault & { source(version: string): string };
  /** After a deployed iteration: what serves is what was saved (where the test can look). */
  checkServing(end: End, version: string): Promise<void>;
  /** After failed iterations: the last good one still serves (where the target can tell). */
  checkKeptServing(good: End, version: string): Promise<void>;
}

async function localDriver(hello: HelloCopy): Promise<TargetDriver> {
  const port = await freePort();
  // The local target's layer-chain cache (src/deploy/local.ts: `<workDir>/layers`, workDir being
  // `<cacheDir>/dev/<service>`). A regular file in its place makes unpackImage's
  // `mkdir(cacheDir, { recursive: true })` fail with EEXIST inside deploy(): the revision cannot
  // be unpacked. (Tests run as root, so a permission trick would not fail.)
  const layers = join(hello.env.XDG_CACHE_HOME as string, 'tsko', 'dev', 'hello', 'layers');
  const aside = `${layers}.aside`;
  return {
    args: ['--port', String(port)],
    env: {},
    deployFault: {
      async on() {
        await rename(layers, aside);
        await writeFile(layers, 'not a directory\n');
      },
      async off() {
        await rm(layers);
        await rename(aside, layers);
      },
      message: new RegExp(`^cannot start revision hello-\\d{5}: EEXIST: file already exists, mkdir '${escapeRegExp(layers)}'$`),
    },
    readyFault: {
      on() {},
      off() {},
      source: sources.exitsBeforeListening,
      message: /^revision hello-\d{5} exited with code 1 before listening on PORT \d+$/,
      detail: /hello: hello v5 refuses to start/,
    },
    async checkServing(end, version) {
      assert.equal(end.url, `http://127.0.0.1:${port}`);
      assert.equal((await httpGet(`http://127.0.0.1:${port}/`)).body, `${version}\n`);
    },
    async checkKeptServing(_good, version) {
      assert.equal((await httpGet(`http://127.0.0.1:${port}/`)).body, `${version}\n`);
    },
  };
}

async function kubernetesDriver(t: TestContext): Promise<TargetDriver> {
  const dir = await makeTempDir('stages-kube', t);
  const fake = await startFakeKube({ dir, stepMs: 100 });
  t.after(() => fake.stop());
  fake.tokens.set('tok-admin', 'admin');
  fake.addDeployment('default', 'hello', [{ name: 'hello', image: 'example.com/hello:old' }]);
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, fake.kubeconfig({ token: 'tok-admin' }, { context: 'dev' }));
  return {
    args: ['--target', 'kubernetes', '--context', 'dev'],
    env: { KUBECONFIG: kubeconfig },
    deployFault: {
      // The kubeconfig's user may read but not write: GET works, the PATCH gets 403.
      on: () => void fake.readOnly.add('admin'),
      off: () => void fake.readOnly.delete('admin'),
      message: /^kubeconfig user "fake-user" \(context "dev"\) may not PATCH \/apis\/apps\/v1\/namespaces\/default\/deployments\/hello: .*forbidden/,
    },
    readyFault: {
      on: () => void (fake.mode = 'crash'),
      off: () => void (fake.mode = 'normal'),
      source: sources.version,
      message: /^rollout of deployment "hello" failed: pod \S+ \(container hello\): CrashLoopBackOff/,
      detail: /panic: cannot open config/,
    },
    async checkServing(end) {
      assert.equal(fake.deployment('default', 'hello')?.spec.template.spec.containers[0].image, end.reference);
    },
    // The spec holds the crash-looping image (that is what a PATCH does); the fake models no
    // traffic, so there is nothing more to look at here.
    async checkKeptServing() {},
  };
}

async function cloudRunDriver(t: TestContext): Promise<TargetDriver> {
  const fake = await startFakeCloudRun({ stepMs: 150 });
  t.after(() => fake.stop());
  fake.tokens.set('tok-dev', 'dev@example.com');
  fake.addService('p', 'europe-west1', 'hello', 'example.com/hello:old');
  return {
    args: ['--target', 'cloudrun', '--project', 'p', '--region', 'europe-west1'],
    env: { CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN: fake.url, CLOUDSDK_AUTH_ACCESS_TOKEN: 'tok-dev' },
    deployFault: {
      // The token's identity loses run.services.get and .update: 403 PERMISSION_DENIED (on the
      // GET that comes before the PATCH, both inside deploy()).
      on: () => void fake.forbidden.add('dev@example.com'),
      off: () => void fake.forbidden.delete('dev@example.com'),
      message: /PERMISSION_DENIED: Permission 'run\.services\.get' denied on resource 'projects\/p\/locations\/europe-west1\/services\/hello'/,
    },
    readyFault: {
      on: () => void (fake.mode = 'fail'),
      off: () => void (fake.mode = 'ready'),
      source: sources.version,
      message: /^revision hello-\d{5}-\S+ of Cloud Run service "hello" failed: Revision 'hello-\d{5}-\S+' is not ready/,
    },
    async checkServing(end) {
      assert.equal(fake.service('p', 'europe-west1', 'hello')?.template.containers[0].image, end.reference);
      assert.equal(fake.service('p', 'europe-west1', 'hello')?.latestReadyRevision.split('/').pop(), end.revision);
    },
    async checkKeptServing(good) {
      assert.equal(fake.service('p', 'europe-west1', 'hello')?.latestReadyRevision.split('/').pop(), good.revision);
    },
  };
}

const DRIVERS: Record<TargetKind, (t: TestContext, hello: HelloCopy) => Promise<TargetDriver>> = {
  local: (_t, hello) => localDriver(hello),
  kubernetes: (t) => kubernetesDriver(t),
  cloudrun: (t) => cloudRunDriver(t),
};

describe('stage results of tsko dev --json, on every target', () => {
  let registry: DockerRegistry;
  let proxy: FaultProxy;
  before(async () => {
    registry = await startDockerRegistry();
    proxy = await startFaultProxy({ upstream: registry.url });
  });
  after(async () => {
    await proxy?.stop();
    await registry?.stop();
  });

  for (const kind of ['local', 'kubernetes', 'cloudrun'] as const) {
    it(`${kind}: build, push, deploy and ready failures are each that stage's ✗, and a good save deploys again`, { timeout: 240_000 }, async (t) => {
      const hello = await helloCopy(`stages-${kind}`, t);
      const driver = await DRIVERS[kind](t, hello);
      const dockerRepo = `${proxy.host}/${kind}`;
      // A refusal this test scripted and did not get to use must not outlive it.
      t.after(() => void proxy.script.splice(0));
      const dev = startDev(driver.args, { cwd: hello.dir, env: { ...hello.env, ...driver.env, KO_DOCKER_REPO: dockerRepo } });
      t.after(async () => {
        if (dev.child.exitCode === null) {
          dev.child.kill('SIGKILL');
          await dev.exited(5000);
        }
      });
      const settledAll: Settled[] = [];
      const overlap = kind === 'local';
      const check = (s: Settled, result: End['result'], expected: Expected) => {
        settledAll.push(s);
        assertStream(s, result, expected, overlap);
        assertDashboard(dev, s, expected);
        return s;
      };

      // 1. The first iteration deploys (the Deployment / service exist already).
      const first = check(await settle(dev, 0), 'deployed', ALL_OK);
      assert.ok(first.end.reference?.startsWith(`${dockerRepo}/hello-`), `pushed through the proxy: ${first.end.reference}`);
      await driver.checkServing(first.end, 'hello v1');

      // 2. A compile error: build ✗, nothing layered, pushed or deployed; the error carries go's diagnostics.
      const broken = sources.compileError('hello v2');
      const build = check(await saveAndSettle(dev, hello, broken.source), 'build-failed', failingAt('build'));
      assert.deepEqual(
        build.end.error?.diagnostics?.map(({ file, line, column }) => ({ file, line, column })),
        [{ file: 'main.go', line: broken.line, column: 2 }],
        JSON.stringify(build.end.error),
      );
      assert.match(build.end.error?.diagnostics?.[0]?.message ?? '', /undefined: undefinedCall/);

      // 3. The registry refuses the manifest (403, not retryable) for this save only: push ✗.
      const manifestPut = new RegExp(`^PUT /v2/${kind}/hello-[0-9a-f]+/manifests/`);
      proxy.script.push({ match: manifestPut, fault: { kind: 'status', status: 403 } });
      const push = check(await saveAndSettle(dev, hello, sources.version('hello v3')), 'push-failed', failingAt('push', overlap));
      assert.equal(proxy.script.length, 0, 'the scripted refusal was used');
      assert.ok(proxy.log.some((line) => manifestPut.test(line) && line.endsWith('-> 403 (injected)')), proxy.log.join('\n'));
      assert.match(push.end.error?.message ?? '', new RegExp(`^PUT manifest ${escapeRegExp(dockerRepo)}/hello-[0-9a-f]+:\\S+ failed: ${escapeRegExp(proxy.host)} answered 403 `), JSON.stringify(push.end.error));
      // Nothing serves an image the registry does not hold: the local target, which served the new
      // revision before its push ended, has switched back.
      await driver.checkKeptServing(first.end, 'hello v1');

      // 4. The target's own call fails: deploy ✗, no ready stage.
      await driver.deployFault.on();
      const deploy = check(await saveAndSettle(dev, hello, sources.version('hello v4')), 'deploy-failed', failingAt('deploy'));
      await driver.deployFault.off();
      assert.match(deploy.end.error?.message ?? '', driver.deployFault.message, JSON.stringify(deploy.end.error));
      assert.notEqual(deploy.end.error?.code, 'INTERNAL', 'the target failed, not tsko');

      // 5. The call succeeds but the new revision never serves: deploy ok, ready ✗.
      await driver.readyFault.on();
      const ready = check(await saveAndSettle(dev, hello, driver.readyFault.source('hello v5')), 'deploy-failed', failingAt('ready'));
      await driver.readyFault.off();
      assert.match(ready.end.error?.message ?? '', driver.readyFault.message, JSON.stringify(ready.end.error));
      if (driver.readyFault.detail) assert.match(ready.end.error?.detail ?? '', driver.readyFault.detail, JSON.stringify(ready.end.error));
      // The last good revision kept serving through all of it.
      await driver.checkKeptServing(first.end, 'hello v1');

      // 6. A good save deploys again.
      const again = check(await saveAndSettle(dev, hello, sources.version('hello v6')), 'deployed', ALL_OK);
      await driver.checkServing(again.end, 'hello v6');

      // (c) Only deployed iterations are timing samples: the first is cold, the last the one warm one.
      const state = reduceAll(dev.events);
      const service = state.services.find((s) => s.name === 'hello');
      assert.ok(service);
      const deployed = dev.events.filter((e): e is End => e.type === 'iteration.end' && e.result === 'deployed').map((e) => e.iteration);
      assert.deepEqual(deployed, [first.end.iteration, again.end.iteration], 'exactly the two good saves deployed');
      assert.equal(service.cold?.iteration, first.end.iteration);
      assert.equal(service.cold?.result, 'deployed');
      assert.deepEqual(service.warm.map((w) => [w.iteration, w.result]), [[again.end.iteration, 'deployed']]);
      // The history has every iteration, failed ones included, with only its ok stages timed.
      for (const s of settledAll) {
        const entry: HistoryEntry | undefined = service.history.find((h) => h.iteration === s.end.iteration);
        assert.equal(entry?.result, s.end.result);
        const okStages = s.events.filter((e) => e.type === 'stage.end' && e.ok).map((e) => (e as EventOf<'stage.end'>).stage);
        const byStage = (stages: string[]) => [...stages].sort((a, b) => STAGES.indexOf(a as Stage) - STAGES.indexOf(b as Stage));
        assert.deepEqual(byStage(Object.keys(entry?.stages ?? {})), byStage(okStages), `timed stages of iteration ${s.end.iteration}`);
      }

      assert.equal(dev.child.exitCode, null, 'tsko dev is still running');
      dev.child.kill('SIGINT');
      assert.notEqual(await dev.exited(5000), 'timeout');
    });
  }
});
