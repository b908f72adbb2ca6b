// `npm run bench`: measures tsko against `go build` alone, air and `ko build` on this machine, on
// examples/hello and on a large service (bench/fixtures/large), in one bounded run — cold (hello),
// warm rounds interleaved per service (local save→serving, the remote gzip path, tsko build, air),
// a comment-only save, the daemon's RSS serving and over many saves, one-shot `tsko version` — and
// writes bench/results.json and bench/results.md (issue 12's targets; issue 4's cold and
// comment-only ones as information). Only 127.0.0.1 is used; every child is stopped on exit, on
// error and on Ctrl-C.
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { cpus, homedir, loadavg, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Stage } from '../src/events.js';
import type { Platform } from '../src/image/types.js';
import { AIR_POLL_MS, AirRunner, ensureAir } from './air.js';
import { Children, freePort, memoryKb, processesUnder, sleep, tail } from './children.js';
import { DevDaemon, served, type IterationRecord, type SettledSave } from './daemon.js';
import { copyExample, editComment, editVersion, type ServiceCopy } from './edit.js';
import { ensureKo, koBuild, startKoRegistry, stringEnv, type KoBinary, type KoRegistry } from './ko.js';
import { OneShotRunner } from './oneshot.js';
import { helpText, parseOptions, type BenchOptions, type ServiceName } from './options.js';
import { heapGrowth, heapTop, takeSnapshot } from './heap.js';
import { summarizeProfile } from './profile.js';
import { renderMarkdown, explainMisses } from './report.js';
import {
  LIMITS,
  STAGES,
  evaluateTargets,
  kbToMb,
  servingRss,
  summaries,
  type ColdRun,
  type CommentRun,
  type DaemonMemory,
  type HeapRun,
  type HeapSummary,
  type Machine,
  type MemorySample,
  type OneShotRuns,
  type ProfileRun,
  type Results,
  type RssRun,
  type ServiceRun,
  type Shutdown,
  type WarmRound,
  type WarmTsko,
} from './results.js';
import { percentile } from './stats.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The services measured: where their source is (copied into the temp dir before each use). */
const SERVICE_DIRS: Record<ServiceName, string> = {
  hello: join(REPO, 'examples', 'hello'),
  large: join(REPO, 'bench', 'fixtures', 'large'),
};
const EXAMPLE = SERVICE_DIRS.hello;
const COLD_TIMEOUT_MS = 10 * 60_000;
const WARM_TIMEOUT_MS = 2 * 60_000;
// Env that would point tsko or ko somewhere other than the bench's own temp dirs and registries.
const SCRUBBED_ENV = ['KO_DOCKER_REPO', 'KO_DEFAULTBASEIMAGE', 'KO_CONFIG_PATH', 'KO_DEFAULTPLATFORMS', 'KOCACHE', 'NODE_OPTIONS', 'TSKO_REGISTRY_ADDR', 'GOCACHE'];

// Env recorded with the machine because it changes what is measured.
const RECORDED_ENV = ['GOFLAGS', 'GOMAXPROCS', 'GOAMD64', 'MALLOC_ARENA_MAX', 'UV_THREADPOOL_SIZE', 'XDG_CACHE_HOME'];

/** What every phase shares: where things are, the children to clean up, the knobs. */
interface Context {
  options: BenchOptions;
  children: Children;
  root: string;
  nonce: string;
  baseEnv: Record<string, string>;
  platform: Platform;
  /** The snapshot of tsko under test and its CLI entry point. */
  tskoRoot: string;
  tskoBin: string;
  /** `tsko registry serve`: ko, `tsko build` and the remote-path daemon push there, the base is in it. */
  registry: KoRegistry;
  ko: (KoBinary & { available: true }) | undefined;
  air: (KoBinary & { available: true }) | undefined;
  oneShot: OneShotRunner;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function hostPlatform(): Platform {
  return { os: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch };
}

async function machineInfo(children: Children, ko: KoBinary, air: KoBinary): Promise<Machine> {
  const go = await children.spawn('go', ['version'], { stdin: 'ignore', timeout: 30_000 });
  const cpu = cpus();
  return {
    cores: cpu.length,
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    memoryGb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    go: String(go.stdout).trim().replace(/^go version /, ''),
    ko: ko.available ? ko.version : null,
    air: air.available ? air.version : null,
    loadavgStart: loadavg().map((x) => Math.round(x * 100) / 100),
    loadavgEnd: [],
    tsko: 'unknown',
    env: Object.fromEntries(RECORDED_ENV.flatMap((key) => (process.env[key] ? [[key, process.env[key] as string]] : []))),
  };
}

/**
 * A private copy of the built CLI: others rebuild or clean dist/ while a long run is going (npm test
 * starts with a clean), and one run should measure one build of tsko.
 */
async function snapshotTsko(root: string): Promise<{ tskoRoot: string; tskoBin: string }> {
  const tskoRoot = join(root, 'tsko');
  await mkdir(join(tskoRoot, 'dist'), { recursive: true });
  await Promise.all([
    cp(join(REPO, 'dist', 'src'), join(tskoRoot, 'dist', 'src'), { recursive: true }),
    cp(join(REPO, 'dist', 'ui'), join(tskoRoot, 'dist', 'ui'), { recursive: true }),
    cp(join(REPO, 'bin'), join(tskoRoot, 'bin'), { recursive: true }),
    cp(join(REPO, 'package.json'), join(tskoRoot, 'package.json')),
    symlink(join(REPO, 'node_modules'), join(tskoRoot, 'node_modules'), 'dir'),
  ]);
  return { tskoRoot, tskoBin: join(tskoRoot, 'bin', 'tsko.js') };
}

/** The commit under test, with "-dirty" when the work tree has changes. */
async function tskoRevision(children: Children): Promise<string> {
  const head = await children.spawn('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, stdin: 'ignore', timeout: 30_000 });
  const dirty = await children.spawn('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'ui', 'bin'], { cwd: REPO, stdin: 'ignore', timeout: 30_000 });
  return `${String(head.stdout).trim() || 'unknown'}${String(dirty.stdout).trim() ? '-dirty' : ''}`;
}

function daemonEnv(ctx: Context, xdg: string, gocache: string, registryPort: number): Record<string, string> {
  const env = { ...ctx.baseEnv, XDG_CACHE_HOME: xdg, GOCACHE: gocache, TSKO_REGISTRY_ADDR: `127.0.0.1:${registryPort}` };
  // Lets the heap phase take snapshots (SIGUSR2); costs nothing until signalled.
  return ctx.options.heap ? { ...env, NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${heapDir(ctx)}` } : env;
}

function heapDir(ctx: Context): string {
  return join(ctx.root, 'heap');
}

/** Cold: a daemon on an empty cache, registry and GOCACHE; its first iteration, from spawn. */
async function coldTsko(ctx: Context, copy: ServiceCopy, env: Record<string, string>): Promise<{ daemon: DevDaemon; cold: ColdRun }> {
  const port = await freePort();
  const spawnAt = Date.now();
  const daemon = DevDaemon.start(ctx.children, { tskoBin: ctx.tskoBin, cwd: copy.dir, port, env });
  const { record } = await daemon.settle(0, COLD_TIMEOUT_MS, ctx.options.gapMs);
  if (record.result !== 'deployed' || record.pushEndedAt === undefined) {
    throw new Error(`the cold iteration ended ${record.result}${record.error ? `: ${record.error}` : ''}\n${daemon.stderrTail()}`);
  }
  return {
    daemon,
    cold: {
      spawnToPushed: record.pushEndedAt - spawnAt,
      spawnToServing: (record.servingAt ?? record.endedAt) - spawnAt,
      startup: record.startedAt - spawnAt,
      iterationMs: record.ms,
      stages: record.stages,
      bytesPushed: record.bytesPushed,
      blobsPushed: record.blobsPushed,
    },
  };
}

/** One save on the daemon, followed to its settled iteration; checks what the front port serves. */
async function tskoSave(daemon: DevDaemon, save: () => Promise<number>, gapMs: number): Promise<SettledSave & { savedAt: number }> {
  const from = daemon.events.length;
  const savedAt = await save();
  return { savedAt, ...(await daemon.settle(from, WARM_TIMEOUT_MS, gapMs)) };
}

/** The time tsko saw the file event: iteration start minus the debounce it waited. */
function fileEventAt(record: IterationRecord): number {
  return record.startedAt - (record.stages.trigger ?? 0);
}

function emptyWarm(): WarmTsko {
  return {
    saveToPushed: [],
    saveToServing: [],
    tskoMs: [],
    watchLatency: [],
    stages: {},
    bytesPushed: [],
    blobsPushed: [],
    blobsSkipped: [],
    iterationsPerSave: [],
    servedWrong: [],
    results: [],
    splitSaves: [],
    loadavg: [],
  };
}

/**
 * One settled save into `warm`. The remote path needs only the push: its time is recorded even
 * when the local revision it then starts from the remote registry fails.
 */
async function recordWarm(warm: WarmTsko, daemon: DevDaemon, version: string, save: Awaited<ReturnType<typeof tskoSave>>, remote = false): Promise<void> {
  const { record, savedAt } = save;
  if (remote && record.result !== 'deployed' && record.pushEndedAt !== undefined) warm.saveToPushed.push(record.pushEndedAt - savedAt);
  warm.results.push(record.result);
  warm.iterationsPerSave.push(save.iterationsStarted);
  warm.loadavg.push(Math.round((loadavg()[0] ?? 0) * 100) / 100);
  if (save.iterations.length > 1) {
    warm.splitSaves.push({
      version,
      iterations: save.iterations.map((n) => {
        const r = daemon.record(n);
        return { result: r.result, startedAfterSaveMs: r.startedAt - savedAt };
      }),
    });
  }
  if (record.result !== 'deployed') {
    warm.servedWrong.push(`${version}: ${record.result}${record.error ? ` (${record.error})` : ''}`);
    return;
  }
  if (record.pushEndedAt !== undefined) warm.saveToPushed.push(record.pushEndedAt - savedAt);
  warm.saveToServing.push((record.servingAt ?? record.endedAt) - savedAt);
  warm.tskoMs.push(record.ms);
  warm.watchLatency.push(fileEventAt(record) - savedAt);
  for (const stage of STAGES) {
    const ms = record.stages[stage];
    if (ms !== undefined) (warm.stages[stage] ??= []).push(ms);
  }
  warm.bytesPushed.push(record.bytesPushed);
  warm.blobsPushed.push(record.blobsPushed);
  warm.blobsSkipped.push(record.blobsSkipped);
  const body = await served(daemon.port);
  if (!body.includes(version)) warm.servedWrong.push(`${version}: front port served "${body.slice(0, 80)}"`);
}

/** `go build -trimpath` of the package in `cwd` to a fixed output, as tsko runs it. */
async function goBuildOnce(ctx: Context, cwd: string, output: string, gocache: string, timeoutMs = WARM_TIMEOUT_MS): Promise<number> {
  const started = performance.now();
  const result = await ctx.children.spawn('go', ['build', '-trimpath', '-o', output, '.'], {
    cwd,
    env: { ...ctx.baseEnv, GOCACHE: gocache, CGO_ENABLED: '0' },
    extendEnv: false,
    timeout: timeoutMs,
    stdin: 'ignore',
  });
  const ms = performance.now() - started;
  if (result.exitCode !== 0) throw new Error(`go build failed:\n${tail(String(result.stderr))}`);
  return ms;
}

interface KoSetup {
  ko: string;
  copy: ServiceCopy;
  /** The env of the latest cold run; warm builds reuse its (then warm) KOCACHE and GOCACHE. */
  env: Record<string, string>;
  registry: KoRegistry;
}

async function setUpKo(ctx: Context, ko: KoBinary & { available: true }, registry: KoRegistry): Promise<KoSetup> {
  const copy = await copyExample(EXAMPLE, join(ctx.root, 'ko-src'), `ko start ${ctx.nonce}`);
  return { ko: ko.path, copy, env: {}, registry };
}

/** ko on a service other than the cold phase's: its own copy, KOCACHE and the service's warm GOCACHE. */
async function setUpWarmKo(ctx: Context, service: ServiceName, gocache: string): Promise<KoSetup | undefined> {
  if (!ctx.ko) return undefined;
  const copy = await copyExample(SERVICE_DIRS[service], join(ctx.root, `ko-src-${service}`), `ko start ${ctx.nonce}`);
  const kocache = join(ctx.root, `kocache-${service}`);
  await mkdir(kocache);
  const env = { ...ctx.baseEnv, KO_DOCKER_REPO: `${ctx.registry.address}/ko-${service}`, KOCACHE: kocache, GOCACHE: gocache, KO_DEFAULTBASEIMAGE: ctx.registry.base };
  return { ko: ctx.ko.path, copy, env, registry: ctx.registry };
}

/** One cold `ko build`: a fresh KOCACHE and GOCACHE, which later warm builds keep using. */
async function coldKo(ctx: Context, ko: KoSetup, run: number): Promise<number> {
  const kocache = join(ctx.root, `kocache-${run}`);
  const gocache = join(ctx.root, `gocache-ko-${run}`);
  await Promise.all([mkdir(kocache), mkdir(gocache)]);
  ko.env = { ...ctx.baseEnv, KO_DOCKER_REPO: `${ko.registry.address}/ko`, KOCACHE: kocache, GOCACHE: gocache, KO_DEFAULTBASEIMAGE: ko.registry.base };
  await editVersion(ko.copy, `ko cold ${run} ${ctx.nonce}`);
  return (await koBuild(ctx.children, ko.ko, ko.copy.dir, ko.env, COLD_TIMEOUT_MS)).ms;
}

interface TskoDaemonSetup {
  daemon: DevDaemon;
  copy: ServiceCopy;
  xdg: string;
  gocache: string;
  cold: ColdRun;
}

/** One cold tsko: its own copy, XDG cache (so an empty registry) and GOCACHE. */
async function coldTskoRun(ctx: Context, run: number): Promise<TskoDaemonSetup> {
  const xdg = join(ctx.root, `xdg-${run}`);
  const gocache = join(ctx.root, `gocache-tsko-${run}`);
  await Promise.all([mkdir(xdg), mkdir(gocache), mkdir(heapDir(ctx), { recursive: true })]);
  const copy = await copyExample(EXAMPLE, join(ctx.root, `tsko-src-${run}`), `tsko cold ${run} ${ctx.nonce}`);
  const { daemon, cold } = await coldTsko(ctx, copy, daemonEnv(ctx, xdg, gocache, await freePort()));
  return { daemon, copy, xdg, gocache, cold };
}

/**
 * The cold floor: `go build` alone into an empty GOCACHE; then `go tool buildid` on its output, which
 * ko runs after every build and which Go (since 1.25) compiles on first use into that GOCACHE.
 */
async function coldFloor(ctx: Context): Promise<{ goBuild: number; goToolBuildid: number }> {
  const gocache = join(ctx.root, 'gocache-floor-cold');
  await mkdir(gocache);
  const copy = await copyExample(EXAMPLE, join(ctx.root, 'floor-cold-src'), `floor cold ${ctx.nonce}`);
  const output = join(ctx.root, 'floor-cold-out', 'hello');
  const goBuild = await goBuildOnce(ctx, copy.dir, output, gocache, COLD_TIMEOUT_MS);
  const started = performance.now();
  const result = await ctx.children.spawn('go', ['tool', 'buildid', output], {
    env: { ...ctx.baseEnv, GOCACHE: gocache },
    extendEnv: false,
    timeout: COLD_TIMEOUT_MS,
    stdin: 'ignore',
  });
  const goToolBuildid = performance.now() - started;
  if (result.exitCode !== 0) throw new Error(`go tool buildid failed:\n${tail(String(result.stderr))}`);
  return { goBuild, goToolBuildid };
}

/**
 * Cold pairs, the order alternating (tsko first, then ko first) so neither always gets the page
 * cache the other warmed. The first tsko daemon is kept for the warm phases; the others stop.
 */
async function coldPhase(ctx: Context, ko: KoSetup | undefined): Promise<{ kept: TskoDaemonSetup; tsko: ColdRun[]; ko: number[] }> {
  let kept: TskoDaemonSetup | undefined;
  const tskoRuns: ColdRun[] = [];
  const koRuns: number[] = [];
  for (let run = 0; run < ctx.options.cold; run++) {
    const tskoOnce = async () => {
      const setup = await coldTskoRun(ctx, run);
      tskoRuns.push(setup.cold);
      log(`cold tsko ${run + 1}/${ctx.options.cold}: spawn→pushed ${Math.round(setup.cold.spawnToPushed)} ms, spawn→serving ${Math.round(setup.cold.spawnToServing)} ms`);
      if (kept) await setup.daemon.stop();
      else kept = setup;
    };
    const koOnce = async () => {
      if (!ko) return;
      const koMs = await coldKo(ctx, ko, run);
      koRuns.push(koMs);
      log(`cold ko ${run + 1}/${ctx.options.cold}: ${Math.round(koMs)} ms`);
    };
    if (run % 2 === 0) {
      await tskoOnce();
      await koOnce();
    } else {
      await koOnce();
      await tskoOnce();
    }
  }
  if (!kept) throw new Error('no cold run');
  return { kept, tsko: tskoRuns, ko: koRuns };
}

/** What a service's warm rounds run against: the local daemon (kept running after them) and ko. */
interface ServiceSetup {
  name: ServiceName;
  floor: Floor;
  daemon: DevDaemon;
  copy: ServiceCopy;
  xdg: string;
  gocache: string;
  ko: KoSetup | undefined;
}

interface ServiceRecipes {
  local: DaemonRecipe;
  remote?: DaemonRecipe;
  /** Where and how the rounds ran `tsko build`. */
  build: { cwd: string; env: Record<string, string> };
}

/** After the rounds: how to start a daemon like one of them again on its warm caches (for a profile). */
interface DaemonRecipe {
  service: ServiceName;
  mode: 'local' | 'remote';
  copy: ServiceCopy;
  xdg: string;
  gocache: string;
}

function remoteEnv(ctx: Context, xdg: string, gocache: string, registryPort: number, service: ServiceName): Record<string, string> {
  return { ...daemonEnv(ctx, xdg, gocache, registryPort), KO_DOCKER_REPO: `${ctx.registry.address}/tsko-remote-${service}`, KO_DEFAULTBASEIMAGE: ctx.registry.base };
}

const REMOTE_ARGS = ['--layer-compression', 'gzip'];

/** VmRSS of the serving daemon (and of a re-exec wrapper, when there is one). */
function sampleMemory(daemon: DevDaemon, round: number): MemorySample | undefined {
  const memory = daemon.memoryKb();
  if (!memory) return undefined;
  const wrapper = daemon.wrapperPid;
  const wrapperRss = wrapper !== undefined ? memoryKb(wrapper)?.rss : undefined;
  return {
    round,
    rssKb: memory.rss,
    ...(memory.anon !== undefined ? { anonKb: memory.anon } : {}),
    ...(memory.file !== undefined ? { fileKb: memory.file } : {}),
    ...(memory.hwm !== undefined ? { hwmKb: memory.hwm } : {}),
    ...(wrapperRss !== undefined ? { wrapperRssKb: wrapperRss } : {}),
  };
}

/** One `tsko build` of the package in `cwd`, as `ko build` runs: same registry, base by digest, gzip, no SBOM. */
async function tskoBuild(ctx: Context, cwd: string, env: Record<string, string>, timeoutMs = WARM_TIMEOUT_MS): Promise<number> {
  const run = await ctx.oneShot.node([ctx.tskoBin, 'build', '--sbom=none', '.'], { cwd, env, timeoutMs });
  if (run.exitCode !== 0) throw new Error(`tsko build failed (exit ${run.exitCode}):\n${run.stderr}`);
  return run.ms;
}

/** `go build` alone's own copy of a service, built once into the GOCACHE the rounds share. */
interface Floor {
  copy: ServiceCopy;
  output: string;
  prepareGoBuildMs: number;
  binaryBytes: number;
}

async function prepareFloor(ctx: Context, name: ServiceName, gocache: string): Promise<Floor> {
  // Distinct strings per tool: with -trimpath the same source in two dirs would share GOCACHE entries.
  const copy = await copyExample(SERVICE_DIRS[name], join(ctx.root, `floor-src-${name}`), `floor start ${ctx.nonce}`);
  const output = join(ctx.root, `floor-out-${name}`, name);
  const prepareGoBuildMs = await goBuildOnce(ctx, copy.dir, output, gocache, COLD_TIMEOUT_MS);
  const binaryBytes = (await stat(output)).size;
  log(`${name}: go build alone ${Math.round(prepareGoBuildMs)} ms before the rounds; binary ${(binaryBytes / 2 ** 20).toFixed(1)} MB`);
  return { copy, output, prepareGoBuildMs, binaryBytes };
}

/**
 * Warm rounds on one service, interleaved so load from other work on the machine hits every tool
 * alike: a tsko save (local target), `go build` alone, `ko build`, `tsko build`, an air save and
 * (large) a save on the remote-path daemon. Each tool has its own copy and version strings.
 */
async function warmService(ctx: Context, setup: ServiceSetup, rounds: number): Promise<{ run: ServiceRun; recipes: ServiceRecipes }> {
  const { name, daemon, copy: tskoCopy, gocache } = setup;
  const source = SERVICE_DIRS[name];
  const { warmup, gapMs } = ctx.options;
  const warm = emptyWarm();
  const goBuild: number[] = [];
  const koTimes: number[] = [];
  const buildTimes: number[] = [];
  const airTimes: number[] = [];
  const airFailed: string[] = [];
  const airBuilds: number[] = [];
  const paired: WarmRound[] = [];
  const samples: MemorySample[] = [];
  const { copy: floorCopy, output: floorOut, prepareGoBuildMs, binaryBytes } = setup.floor;

  let remote: { daemon: DevDaemon; warm: WarmTsko; recipe: DaemonRecipe } | undefined;
  let air: { runner: AirRunner; copy: ServiceCopy } | undefined;
  const buildCopy = await copyExample(source, join(ctx.root, `build-src-${name}`), `build start ${ctx.nonce}`);
  const buildXdg = join(ctx.root, `xdg-build-${name}`);
  await mkdir(buildXdg);
  const buildEnv = { ...ctx.baseEnv, XDG_CACHE_HOME: buildXdg, GOCACHE: gocache, KO_DOCKER_REPO: `${ctx.registry.address}/tsko-build-${name}`, KO_DEFAULTBASEIMAGE: ctx.registry.base };
  try {
    if (ctx.options.remote && name === 'large') {
      const xdg = join(ctx.root, `xdg-remote-${name}`);
      await mkdir(xdg);
      const copy = await copyExample(source, join(ctx.root, `remote-src-${name}`), `remote start ${ctx.nonce}`);
      const env = remoteEnv(ctx, xdg, gocache, await freePort(), name);
      log(`${name}: starting the remote-path daemon (--layer-compression gzip → ${ctx.registry.address})…`);
      const remoteDaemon = DevDaemon.start(ctx.children, { tskoBin: ctx.tskoBin, cwd: copy.dir, port: await freePort(), env, args: REMOTE_ARGS });
      const first = await remoteDaemon.settle(0, COLD_TIMEOUT_MS, gapMs);
      if (first.record.pushEndedAt === undefined) throw new Error(`the remote-path daemon's first iteration pushed nothing: ${first.record.result} ${first.record.error ?? ''}\n${remoteDaemon.stderrTail()}`);
      remote = { daemon: remoteDaemon, warm: emptyWarm(), recipe: { service: name, mode: 'remote', copy, xdg, gocache } };
    }
    if (ctx.air) {
      const copy = await copyExample(source, join(ctx.root, `air-src-${name}`), `air start ${ctx.nonce}`);
      log(`${name}: starting air (first build)…`);
      const runner = await AirRunner.start(ctx.children, {
        air: ctx.air.path,
        copy,
        port: await freePort(),
        env: { ...ctx.baseEnv, GOCACHE: gocache },
        version: `air start ${ctx.nonce}`,
        timeoutMs: COLD_TIMEOUT_MS,
      });
      air = { runner, copy };
    }
    for (let round = 0; round < warmup + rounds; round++) {
      const measured = round >= warmup;
      const tag = `${name} ${measured ? 'w' : 'warmup'}${round} ${ctx.nonce}`;
      const version = `tsko ${tag}`;
      const pair: Partial<WarmRound> = {};
      const save = await tskoSave(daemon, () => editVersion(tskoCopy, version), gapMs);
      if (measured) {
        await recordWarm(warm, daemon, version, save);
        if (save.record.result === 'deployed') {
          pair.tskoServing = (save.record.servingAt ?? save.record.endedAt) - save.savedAt;
          if (save.record.pushEndedAt !== undefined) pair.tskoPushed = save.record.pushEndedAt - save.savedAt;
        }
      }

      await editVersion(floorCopy, `floor ${tag}`);
      const floorMs = await goBuildOnce(ctx, floorCopy.dir, floorOut, gocache);
      if (measured) goBuild.push(floorMs);
      pair.goBuild = floorMs;
      await sleep(gapMs);

      let koMs: number | undefined;
      if (setup.ko) {
        await editVersion(setup.ko.copy, `ko ${tag}`);
        koMs = (await koBuild(ctx.children, setup.ko.ko, setup.ko.copy.dir, setup.ko.env, WARM_TIMEOUT_MS)).ms;
        if (measured) koTimes.push(koMs);
        pair.ko = koMs;
        await sleep(gapMs);
      }

      await editVersion(buildCopy, `build ${tag}`);
      const buildMs = await tskoBuild(ctx, buildCopy.dir, buildEnv);
      if (measured) buildTimes.push(buildMs);
      pair.tskoBuild = buildMs;
      await sleep(gapMs);

      let airMs: number | undefined;
      if (air) {
        const airVersion = `air ${tag}`;
        const buildsBefore = air.runner.buildsStarted;
        const savedAt = await editVersion(air.copy, airVersion);
        try {
          airMs = await air.runner.waitServing(airVersion, savedAt, WARM_TIMEOUT_MS);
          // A second build of the same save may start after the port already serves: count after the gap.
          await sleep(gapMs);
          if (measured) {
            airTimes.push(airMs);
            airBuilds.push(air.runner.buildsStarted - buildsBefore);
          }
          pair.air = airMs;
        } catch (err) {
          if (measured) airFailed.push(`${airVersion}: ${(err as Error).message.split('\n')[0]}`);
          await sleep(gapMs);
        }
      }

      let remoteMs: number | undefined;
      if (remote) {
        const remoteVersion = `remote ${tag}`;
        const remoteCopy = remote.recipe.copy;
        const remoteSave = await tskoSave(remote.daemon, () => editVersion(remoteCopy, remoteVersion), gapMs);
        if (measured) await recordWarm(remote.warm, remote.daemon, remoteVersion, remoteSave, true);
        if (remoteSave.record.pushEndedAt !== undefined) {
          remoteMs = remoteSave.record.pushEndedAt - remoteSave.savedAt;
          pair.remotePushed = remoteMs;
        }
      }
      if (measured) {
        paired.push(pair as WarmRound);
        const sample = sampleMemory(daemon, round - warmup + 1);
        if (sample) samples.push(sample);
      }
      log(
        `${name} round ${round + 1}/${warmup + rounds}${measured ? '' : ' (warm-up)'}: tsko save→pushed ${ms(save.record.pushEndedAt, save.savedAt)} ms, ` +
          `serving ${Math.round((save.record.servingAt ?? save.record.endedAt) - save.savedAt)} ms (${save.record.result}); go build ${Math.round(floorMs)} ms` +
          (koMs !== undefined ? `; ko build ${Math.round(koMs)} ms` : '') +
          `; tsko build ${Math.round(buildMs)} ms` +
          (air ? `; air ${airMs === undefined ? 'failed' : `${Math.round(airMs)} ms`}` : '') +
          (remote ? `; remote save→pushed ${remoteMs === undefined ? '–' : Math.round(remoteMs)} ms` : ''),
      );
    }
    let heap: HeapSummary | null = null;
    const peak = servingRss({ samples, remote: null, wrapper: false, heap: null });
    if (ctx.options.heap && name === 'large' && peak && (ctx.options.profile || (kbToMb(peak.rssKb) ?? 0) > LIMITS.servingRssMb)) {
      log(`${name}: heap snapshot of the serving daemon…`);
      heap = await servingHeap(ctx, daemon).catch((err: unknown) => {
        log(`heap snapshot failed: ${(err as Error).message}`);
        return null;
      });
    }
    const memory: DaemonMemory = {
      samples,
      remote: remote ? (sampleMemory(remote.daemon, rounds) ?? null) : null,
      wrapper: daemon.wrapperPid !== undefined,
      heap,
    };
    const run: ServiceRun = {
      name,
      binaryBytes,
      prepareGoBuildMs,
      warm: { tsko: warm, remote: remote?.warm ?? null, goBuild, ko: koTimes, tskoBuild: buildTimes, air: airTimes, airBuilds, airFailed, rounds: paired },
      memory,
    };
    const local: DaemonRecipe = { service: name, mode: 'local', copy: tskoCopy, xdg: setup.xdg, gocache };
    return { run, recipes: { local, ...(remote ? { remote: remote.recipe } : {}), build: { cwd: buildCopy.dir, env: buildEnv } } };
  } finally {
    await Promise.all([air?.runner.stop(), remote?.daemon.stop()]);
  }
}

/** One heap snapshot of a serving daemon: its live JS heap against its RSS. */
async function servingHeap(ctx: Context, daemon: DevDaemon): Promise<HeapSummary> {
  const rssKb = daemon.rssKb() ?? null;
  const file = await takeSnapshot(daemon.pid, heapDir(ctx));
  try {
    return { ...(await heapTop(file)), rssKb };
  } finally {
    await rm(file, { force: true });
  }
}

function ms(end: number | undefined, start: number): string {
  return end === undefined ? '–' : String(Math.round(end - start));
}

async function commentSaves(ctx: Context, daemon: DevDaemon, copy: ServiceCopy): Promise<CommentRun[]> {
  const runs: CommentRun[] = [];
  for (let i = 1; i <= ctx.options.comment; i++) {
    const save = await tskoSave(daemon, () => editComment(copy, `comment-only ${i} ${ctx.nonce}`), ctx.options.gapMs);
    const { record } = save;
    runs.push({ result: record.result, bytesPushed: record.bytesPushed, blobsPushed: record.blobsPushed, saveToEnd: record.endedAt - save.savedAt, stages: record.stages });
    log(`comment-only save ${i}: ${record.result}, ${record.bytesPushed} bytes pushed, ${Math.round(record.endedAt - save.savedAt)} ms`);
  }
  return runs;
}

/** Many saves on the same daemon; VmRSS at save ~10 and at the end (bounded in count and time). */
async function rssPhase(ctx: Context, daemon: DevDaemon, copy: ServiceCopy): Promise<RssRun | null> {
  const total = ctx.options.rss;
  if (total <= 0) return null;
  const baselineSave = Math.min(10, Math.max(1, Math.floor(total / 2)));
  const started = Date.now();
  const bound = started + ctx.options.rssMinutes * 60_000;
  const samples: Array<{ save: number; kb: number }> = [];
  const saveToServing: number[] = [];
  const results: Record<string, number> = {};
  const sample = (save: number) => {
    const memory = daemon.memoryKb();
    if (memory) samples.push({ save, kb: memory.rss, ...(memory.anon !== undefined ? { anonKb: memory.anon } : {}), ...(memory.file !== undefined ? { fileKb: memory.file } : {}) });
  };
  sample(0);
  let done = 0;
  let split = 0;
  let bounded = false;
  for (let i = 1; i <= total; i++) {
    if (Date.now() > bound) {
      bounded = true;
      break;
    }
    const save = await tskoSave(daemon, () => editVersion(copy, `rss ${i} ${ctx.nonce}`), ctx.options.gapMs);
    results[save.record.result] = (results[save.record.result] ?? 0) + 1;
    if (save.iterationsStarted > 1) split += 1;
    if (save.record.result === 'deployed') saveToServing.push((save.record.servingAt ?? save.record.endedAt) - save.savedAt);
    done = i;
    if (i === baselineSave || i % 10 === 0 || i === total) sample(i);
    if (i % 25 === 0) log(`RSS phase: ${i}/${total} saves, VmRSS ${kbToMb(samples[samples.length - 1]?.kb)} MB`);
  }
  if (samples[samples.length - 1]?.save !== done) sample(done);
  const baselineKb = samples.find((s) => s.save === baselineSave)?.kb ?? null;
  const finalKb = samples[samples.length - 1]?.kb ?? null;
  return {
    samples,
    baselineSave,
    baselineKb,
    finalSave: done,
    finalKb,
    growthMb: baselineKb !== null && finalKb !== null && done > baselineSave ? Math.round(((finalKb - baselineKb) / 1024) * 10) / 10 : null,
    bounded,
    elapsedS: (Date.now() - started) / 1000,
    saveToServing,
    results,
    split,
    heap: null,
  };
}

/**
 * Why RSS grew: after the RSS phase (a snapshot's own allocations would skew its samples), a heap
 * snapshot, more saves, another snapshot; the live JS heap's growth against RSS's over the same saves.
 */
async function heapPhase(ctx: Context, daemon: DevDaemon, copy: ServiceCopy): Promise<HeapRun> {
  const saves = ctx.options.heapSaves;
  const first = await takeSnapshot(daemon.pid, heapDir(ctx));
  const rssBeforeKb = daemon.rssKb() ?? null;
  for (let i = 1; i <= saves; i++) await tskoSave(daemon, () => editVersion(copy, `heap ${i} ${ctx.nonce}`), ctx.options.gapMs);
  const rssAfterKb = daemon.rssKb() ?? null;
  const last = await takeSnapshot(daemon.pid, heapDir(ctx));
  const growth = await heapGrowth(first, last);
  await Promise.all([rm(first, { force: true }), rm(last, { force: true })]);
  return { ...growth, saves, rssBeforeKb, rssAfterKb };
}

/** SIGTERM the daemon as Ctrl-C would; how long it takes, and whether a revision was left. */
async function shutdown(ctx: Context, daemon: DevDaemon, xdg: string): Promise<Shutdown> {
  const started = performance.now();
  const exited = daemon.child.then((result) => ({ at: performance.now(), killed: result.signal !== undefined }));
  await daemon.stop();
  const outcome = await exited;
  // Revisions stop asynchronously; look for leftovers a moment later.
  await sleep(500);
  return { ms: outcome.at - started, exitedByItself: !outcome.killed, leftoverPids: processesUnder([xdg]) };
}

/** A daemon like one of the rounds' on its warm caches, under `node --cpu-prof`, for a missed target. */
async function profileDaemon(ctx: Context, recipe: DaemonRecipe): Promise<ProfileRun> {
  const subject = `${recipe.service} ${recipe.mode}`;
  const dir = join(ctx.root, `cpu-prof-${recipe.service}-${recipe.mode}`);
  await mkdir(dir);
  const registryPort = await freePort();
  const base = recipe.mode === 'remote' ? remoteEnv(ctx, recipe.xdg, recipe.gocache, registryPort, recipe.service) : daemonEnv(ctx, recipe.xdg, recipe.gocache, registryPort);
  const env = { ...base, NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` };
  const port = await freePort();
  const spawnAt = Date.now();
  const daemon = DevDaemon.start(ctx.children, { tskoBin: ctx.tskoBin, cwd: recipe.copy.dir, port, env, args: recipe.mode === 'remote' ? REMOTE_ARGS : [] });
  await daemon.settle(0, COLD_TIMEOUT_MS, ctx.options.gapMs);
  const stages: Partial<Record<Stage, number[]>> = {};
  const firstSaveAt = Date.now();
  for (let i = 1; i <= ctx.options.profileSaves; i++) {
    const { record } = await tskoSave(daemon, () => editVersion(recipe.copy, `profile ${i} ${ctx.nonce}`), ctx.options.gapMs);
    for (const stage of STAGES) if (record.stages[stage] !== undefined) (stages[stage] ??= []).push(record.stages[stage] as number);
  }
  const lastEndAt = Date.now();
  // The profile is written as the process exits; give it time to.
  await ctx.children.stop(daemon.child, 15_000);
  const file = await newestProfile(dir);
  // Only the saves: the profile starts about when the process does, so spawn is its origin.
  const summary = await summarizeProfile(file, ctx.tskoRoot, { fromMs: firstSaveAt - spawnAt, toMs: lastEndAt - spawnAt });
  const stageMedians: Partial<Record<Stage, number>> = {};
  for (const stage of STAGES) {
    const samples = stages[stage];
    if (samples && samples.length > 0) stageMedians[stage] = Math.round(percentile(samples, 0.5));
  }
  return { ...summary, subject, saves: ctx.options.profileSaves, stageMedians, file };
}

/** The daemon's .cpuprofile (a re-exec wrapper writes one too, nearly empty: the largest is the daemon's). */
async function newestProfile(dir: string): Promise<string> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  const sized = await Promise.all(files.map(async (name) => ({ path: join(dir, name), size: (await stat(join(dir, name))).size })));
  return sized.sort((a, b) => b.size - a.size)[0]!.path;
}

/** One one-shot command (warm) under `node --cpu-prof`: where its whole run goes. */
async function profileCommand(ctx: Context, subject: string, args: string[], cwd: string, env: Record<string, string>): Promise<ProfileRun> {
  const dir = join(ctx.root, `cpu-prof-${subject.replace(/[^a-z0-9]+/gi, '-')}`);
  await mkdir(dir);
  const run = await ctx.oneShot.node([ctx.tskoBin, ...args], { cwd, env, timeoutMs: WARM_TIMEOUT_MS, extraNodeOptions: `--cpu-prof --cpu-prof-dir=${dir}` });
  if (run.exitCode !== 0) throw new Error(`${subject} failed under --cpu-prof: ${run.stderr}`);
  const file = await newestProfile(dir);
  return { ...(await summarizeProfile(file, ctx.tskoRoot)), subject, saves: 0, stageMedians: {}, file };
}

/** `tsko version` (or, when it is missing, `tsko --help`) beside `node -e 0`, interleaved; then peak RSS. */
async function oneShotPhase(ctx: Context): Promise<OneShotRuns> {
  const cwd = ctx.root;
  const xdg = join(ctx.root, 'xdg-oneshot');
  await mkdir(xdg);
  const env = { ...ctx.baseEnv, XDG_CACHE_HOME: xdg };
  const node = (args: string[], rss = false) => ctx.oneShot.node(args, { cwd, env, timeoutMs: 30_000, rss });
  const probe = await node([ctx.tskoBin, 'version']);
  const missing = probe.exitCode === 0 ? null : `\`tsko version\` exits ${probe.exitCode}: ${probe.stderr.trim().split('\n')[0] ?? ''}`;
  if (missing) log(`one-shot: ${missing}; timing \`tsko --help\` instead, as a stand-in`);
  const args = [ctx.tskoBin, missing ? '--help' : 'version'];
  const measured = { wallMs: [] as number[], maxRssKb: [] as number[] };
  const floor = { wallMs: [] as number[], maxRssKb: [] as number[] };
  for (let i = 0; i < ctx.options.oneShot; i++) {
    floor.wallMs.push((await node(['-e', '0'])).ms);
    const run = await node(args);
    if (run.exitCode !== 0) throw new Error(`${args.slice(1).join(' ')} exited ${run.exitCode}: ${run.stderr}`);
    measured.wallMs.push(run.ms);
  }
  // Peak RSS in runs of their own: the probe's preload is not in the timed runs.
  for (let i = 0; i < Math.min(3, ctx.options.oneShot); i++) {
    const f = await node(['-e', '0'], true);
    if (f.maxRssKb !== undefined) floor.maxRssKb.push(f.maxRssKb);
    const run = await node(args, true);
    if (run.maxRssKb !== undefined) measured.maxRssKb.push(run.maxRssKb);
  }
  const median = (xs: number[]) => Math.round(percentile(xs, 0.5));
  log(`one-shot: ${args.slice(1).join(' ')} ${median(measured.wallMs)} ms, ${kbToMb(median(measured.maxRssKb))} MB; node -e 0 ${median(floor.wallMs)} ms, ${kbToMb(median(floor.maxRssKb))} MB`);
  return { version: missing ? null : measured, missing, nodeFloor: floor, help: missing ? measured : null };
}

function notesFrom(results: Omit<Results, 'notes' | 'why'>, daemonStageEnds: Record<string, number>): string[] {
  const notes: string[] = [];
  for (const service of Object.values(results.services)) {
    for (const [label, warm] of [['local', service.warm.tsko], ['remote-path', service.warm.remote]] as const) {
      if (!warm) continue;
      const split = warm.iterationsPerSave.filter((n) => n > 1).length;
      if (split > 0) {
        const detail = warm.splitSaves
          .map((save) => save.iterations.map((it) => `${it.result} at +${Math.round(it.startedAfterSaveMs)} ms`).join(' then '))
          .join('; ');
        notes.push(`${service.name}, ${label} daemon: ${split} of ${warm.iterationsPerSave.length} warm saves (one in-place write each) started more than one iteration: ${detail}.`);
      }
      if (warm.servedWrong.length > 0) notes.push(`${service.name}, ${label} daemon: saves that did not end serving their text: ${warm.servedWrong.join('; ')}.`);
    }
    const airBuilds = service.warm.airBuilds ?? [];
    if (airBuilds.length > 0) {
      const twice = airBuilds.filter((n) => n > 1).length;
      notes.push(`${service.name}: air started ${airBuilds.join(', ')} builds for its timed saves (one in-place write each)${twice > 0 ? `: ${twice} of ${airBuilds.length} saves built more than once (a file event each)` : ''}.`);
    }
    if (service.warm.airFailed.length > 0) notes.push(`${service.name}: air saves that did not end serving their text: ${service.warm.airFailed.join('; ')}.`);
  }
  for (const [stage, count] of Object.entries(daemonStageEnds)) {
    if (count > 1) notes.push(`A warm iteration emits ${count} \`stage.end\` events for \`${stage}\` (nested); the table uses the last (outer) one.`);
  }
  const rss = results.rss;
  if (rss && (rss.split > 0 || Object.keys(rss.results).some((r) => r !== 'deployed'))) {
    notes.push(`RSS phase: results ${JSON.stringify(rss.results)}; ${rss.split} of ${rss.finalSave} saves started more than one iteration.`);
  }
  notes.push("ko runs with `--sbom=none` (as Skaffold's ko builder does), KOCACHE on, and its base by digest, so it resolves no tag per build; `tsko build` runs the same way (`--sbom=none`, KO_DEFAULTBASEIMAGE by digest, gzip layers) into the same registry.");
  notes.push("tsko's embedded registry runs inside the daemon; ko, `tsko build` and the remote-path daemon push to the same implementation (`tsko registry serve`) in its own process.");
  notes.push(`air saves are timed by polling the service's port every ${AIR_POLL_MS} ms for the new text (up to that much later than it happened); tsko's by its own event that the front port switched to the revision after seeing it answer (\`stage.end\` of \`ready\` in an iteration that ends \`deployed\`).`);
  notes.push('The large service shares one GOCACHE among every tool (kept at `~/.cache/tsko-dev/gocache-large` so its modules compile once per machine); each tool builds its own version strings, so no tool reuses another\'s main package.');
  return notes;
}

/** The large fixture's GOCACHE: kept across runs so its modules (grpc, client-go, …) compile once per machine. */
async function largeGocache(): Promise<string> {
  const dir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tsko-dev', 'gocache-large');
  await mkdir(dir, { recursive: true });
  return dir;
}

async function runBench(options: BenchOptions, children: Children): Promise<Results> {
  const startedAt = new Date();
  const ko: KoBinary = options.ko ? await ensureKo(children, options.koVersion, process.env) : { available: false, reason: 'disabled (--no-ko)' };
  if (!ko.available) log(`ko not available: ${ko.reason}`);
  const air: KoBinary = options.air ? await ensureAir(children, options.airVersion, process.env) : { available: false, reason: 'disabled (--no-air)' };
  if (!air.available) log(`air not available: ${air.reason}`);
  const machine = await machineInfo(children, ko, air);
  const baseEnv = stringEnv(process.env);
  for (const key of SCRUBBED_ENV) delete baseEnv[key];
  const root = await children.tempDir('tsko-bench-');
  const snapshot = await snapshotTsko(root);
  const platform = hostPlatform();
  const registry = await startKoRegistry(children, snapshot.tskoBin, join(root, 'ko-registry'), platform);
  const ctx: Context = {
    options,
    children,
    root,
    nonce: randomBytes(4).toString('hex'),
    baseEnv,
    platform,
    ...snapshot,
    registry,
    ko: ko.available ? ko : undefined,
    air: air.available ? air : undefined,
    oneShot: await OneShotRunner.create(children, root),
  };
  machine.tsko = await tskoRevision(children);
  await mkdir(heapDir(ctx), { recursive: true });

  const services: Partial<Record<ServiceName, ServiceRun>> = {};
  const recipes: Partial<Record<ServiceName, ServiceRecipes>> = {};
  let cold: Results['cold'] = null;
  let comment: CommentRun[] = [];
  let rss: RssRun | null = null;
  let down: Shutdown | null = null;
  let stageEnds: Record<string, number> = {};

  if (options.services.includes('hello')) {
    const koSetup = ctx.ko ? await setUpKo(ctx, ctx.ko, registry) : undefined;
    log(`hello cold: ${options.cold} × (tsko dev on an empty cache, registry and GOCACHE${koSetup ? '; ko build on an empty KOCACHE and GOCACHE' : ''})…`);
    const coldRuns = await coldPhase(ctx, koSetup);
    const { daemon, copy, xdg, gocache } = coldRuns.kept;
    log('hello cold: go build alone into an empty GOCACHE, then go tool buildid…');
    const floorCold = await coldFloor(ctx);
    log(`cold go build ${Math.round(floorCold.goBuild)} ms, then go tool buildid ${Math.round(floorCold.goToolBuildid)} ms`);
    cold = { tsko: coldRuns.tsko, ko: coldRuns.ko, goBuild: floorCold.goBuild, goToolBuildid: floorCold.goToolBuildid };
    const floor = await prepareFloor(ctx, 'hello', gocache);
    const hello = await warmService(ctx, { name: 'hello', floor, daemon, copy, xdg, gocache, ko: koSetup }, options.warm);
    services.hello = hello.run;
    recipes.hello = hello.recipes;
    const lastWarm = daemon.events.filter((e) => e.type === 'iteration.end' && e.result === 'deployed').pop()?.iteration ?? 0;
    stageEnds = Object.fromEntries(STAGES.map((stage) => [stage, daemon.stageEnds(lastWarm, stage)]));
    comment = await commentSaves(ctx, daemon, copy);
    log(`hello RSS phase: up to ${options.rss} saves or ${options.rssMinutes} min…`);
    rss = await rssPhase(ctx, daemon, copy);
    if (rss && options.heap && (options.profile || (rss.growthMb ?? 0) > LIMITS.growthMb)) {
      log(`heap: snapshot, ${options.heapSaves} more saves, snapshot…`);
      rss.heap = await heapPhase(ctx, daemon, copy).catch((err: unknown) => {
        log(`heap snapshots failed: ${(err as Error).message}`);
        return null;
      });
    }
    down = await shutdown(ctx, daemon, xdg);
  }

  if (options.services.includes('large')) {
    const gocache = await largeGocache();
    const floor = await prepareFloor(ctx, 'large', gocache);
    const xdg = join(ctx.root, 'xdg-large');
    await mkdir(xdg);
    const copy = await copyExample(SERVICE_DIRS.large, join(ctx.root, 'tsko-src-large'), `tsko start ${ctx.nonce}`);
    log('large: starting tsko dev (local target; its first iteration pushes the whole image)…');
    const daemon = DevDaemon.start(ctx.children, { tskoBin: ctx.tskoBin, cwd: copy.dir, port: await freePort(), env: daemonEnv(ctx, xdg, gocache, await freePort()) });
    try {
      const first = await daemon.settle(0, COLD_TIMEOUT_MS, options.gapMs);
      if (first.record.result !== 'deployed') throw new Error(`large: the first iteration ended ${first.record.result}${first.record.error ? `: ${first.record.error}` : ''}\n${daemon.stderrTail()}`);
      const koSetup = await setUpWarmKo(ctx, 'large', gocache);
      const large = await warmService(ctx, { name: 'large', floor, daemon, copy, xdg, gocache, ko: koSetup }, options.warmLarge);
      services.large = large.run;
      recipes.large = large.recipes;
    } finally {
      await daemon.stop();
    }
  }

  log(`one-shot: ${options.oneShot} × tsko version beside node -e 0…`);
  const oneShot = await oneShotPhase(ctx);

  const partial = {
    schema: 2 as const,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    durationS: 0,
    quick: options.quick,
    options: { ...options, out: undefined },
    machine,
    cold,
    services,
    comment,
    rss,
    shutdown: down,
    oneShot,
    koUnavailable: ko.available ? null : ko.reason,
    airUnavailable: air.available ? null : air.reason,
    profiles: [] as ProfileRun[],
  };
  const withSummary = { ...partial, summary: summaries(partial) };
  const targets = evaluateTargets(withSummary);
  const missed = (prefix: string, part: string) => options.profile || targets.some((t) => t.met === false && !t.info && t.name.startsWith(prefix) && t.name.includes(part));
  const profiles: ProfileRun[] = [];
  const profile = async (what: string, run: () => Promise<ProfileRun>) => {
    log(`profiling ${what} (node --cpu-prof)…`);
    const result = await run().catch((err: unknown) => {
      log(`profile of ${what} failed: ${(err as Error).message}`);
      return null;
    });
    if (result) profiles.push(result);
  };
  for (const name of options.services) {
    const recipe = recipes[name];
    if (!recipe) continue;
    if (missed(`${name}:`, 'local save→serving')) await profile(`a ${name} local daemon over ${options.profileSaves} saves`, () => profileDaemon(ctx, recipe.local));
    const remoteRecipe = recipe.remote;
    if (remoteRecipe && missed(`${name}:`, 'remote path')) await profile(`a ${name} remote-path daemon over ${options.profileSaves} saves`, () => profileDaemon(ctx, remoteRecipe));
    if (missed(`${name}:`, 'tsko build warm')) await profile(`one ${name} tsko build`, () => profileCommand(ctx, `${name} tsko build`, ['build', '--sbom=none', '.'], recipe.build.cwd, recipe.build.env));
  }
  if (oneShot.version && missed('`tsko version`', '')) {
    await profile('tsko version', () => profileCommand(ctx, 'tsko version', ['version'], ctx.root, { ...ctx.baseEnv, XDG_CACHE_HOME: join(ctx.root, 'xdg-oneshot') }));
  }
  machine.loadavgEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  const finished = new Date();
  const full = { ...withSummary, profiles, targets, finishedAt: finished.toISOString(), durationS: (finished.getTime() - startedAt.getTime()) / 1000 };
  const why = explainMisses(full);
  return { ...full, why, notes: notesFrom(full, stageEnds) };
}

async function writeResults(results: Results, out: string): Promise<{ json: string; md: string; markdown: string }> {
  await mkdir(out, { recursive: true });
  const json = join(out, 'results.json');
  const md = join(out, 'results.md');
  const markdown = renderMarkdown(results);
  await writeFile(json, JSON.stringify(results, null, 2) + '\n');
  await writeFile(md, markdown);
  return { json, md, markdown };
}

/** Targets, why and the markdown again from a results.json's raw numbers (after the report changed). */
async function rerender(path: string): Promise<number> {
  const stored = JSON.parse(await readFile(path, 'utf8')) as Results;
  if (stored.schema !== 2) throw new Error(`${path} has schema ${String(stored.schema)}; this report renders schema 2 (run the bench again)`);
  const withSummary = { ...stored, summary: summaries(stored) };
  const targeted = { ...withSummary, targets: evaluateTargets(withSummary) };
  const results: Results = { ...targeted, why: explainMisses(targeted) };
  const written = await writeResults(results, dirname(resolve(path)));
  process.stdout.write(written.markdown + '\n');
  return 0;
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2), process.env);
  if (options === 'help') {
    process.stdout.write(helpText() + '\n');
    return 0;
  }
  if (options.render) return rerender(options.render);
  const children = new Children();
  // One cleanup, however the run ends; an interrupt's exit code wins over the error it causes.
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= children.closeAll());
  let interrupted: number | undefined;
  const abort = (code: number, why: string) => {
    if (interrupted !== undefined) return;
    interrupted = code;
    log(`${why}; stopping every child…`);
    void close().finally(() => process.exit(code));
  };
  process.once('SIGINT', () => abort(130, 'interrupted'));
  process.once('SIGTERM', () => abort(143, 'terminated'));
  const deadline = setTimeout(() => abort(2, `the run passed its bound of ${options.maxMinutes} min`), options.maxMinutes * 60_000);
  deadline.unref();
  try {
    const results = await runBench(options, children);
    // A quick run must not overwrite the committed results of a full one.
    const out = options.out ?? (options.quick ? join(REPO, 'dist', 'bench-quick') : join(REPO, 'bench'));
    const written = await writeResults(results, resolve(out));
    process.stdout.write(written.markdown + '\n');
    log(`wrote ${written.json} and ${written.md}`);
    // A missed target is a result, not a failure of the benchmark.
    return 0;
  } catch (err) {
    if (interrupted === undefined) log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    return interrupted ?? 1;
  } finally {
    clearTimeout(deadline);
    await close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
