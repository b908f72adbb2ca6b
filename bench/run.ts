// `npm run bench`: measures tsko's dev loop against `go build` alone and `ko build` on this machine,
// in one bounded run — cold, warm (interleaved rounds), a comment-only save, the daemon's RSS over
// many saves — and writes bench/results.json and bench/results.md (issue 4, item 9 and "Targets").
// Only 127.0.0.1 is used; every child is stopped on exit, on error and on Ctrl-C.
import { randomBytes } from 'node:crypto';
import { cp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Stage } from '../src/events.js';
import type { Platform } from '../src/image/types.js';
import { Children, freePort, processesUnder, sleep, tail } from './children.js';
import { DevDaemon, served, type IterationRecord, type SettledSave } from './daemon.js';
import { copyExample, editComment, editVersion, type ServiceCopy } from './edit.js';
import { ensureKo, koBuild, startKoRegistry, stringEnv, type KoBinary, type KoRegistry } from './ko.js';
import { helpText, parseOptions, type BenchOptions } from './options.js';
import { heapGrowth, takeSnapshot } from './heap.js';
import { summarizeProfile } from './profile.js';
import { renderMarkdown, explainMisses } from './report.js';
import {
  STAGES,
  evaluateTargets,
  kbToMb,
  summaries,
  type ColdRun,
  type CommentRun,
  type HeapRun,
  type Machine,
  type ProfileRun,
  type Results,
  type RssRun,
  type Shutdown,
  type WarmTsko,
} from './results.js';
import { percentile } from './stats.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const EXAMPLE = join(REPO, 'examples', 'hello');
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
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function hostPlatform(): Platform {
  return { os: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch };
}

async function machineInfo(children: Children, ko: KoBinary): Promise<Machine> {
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
      spawnToServing: record.endedAt - spawnAt,
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

async function recordWarm(warm: WarmTsko, daemon: DevDaemon, version: string, save: Awaited<ReturnType<typeof tskoSave>>): Promise<void> {
  const { record, savedAt } = save;
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
  warm.saveToServing.push(record.endedAt - savedAt);
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

/** Warm rounds: a tsko save, a go build and a ko build of the same kind of edit, interleaved. */
async function warmRounds(ctx: Context, daemon: DevDaemon, tskoCopy: ServiceCopy, gocacheTsko: string, ko: KoSetup | undefined) {
  const warm = emptyWarm();
  const goBuild: number[] = [];
  const koTimes: number[] = [];
  // Distinct strings per tool: with -trimpath the same source in two dirs would share GOCACHE entries.
  const floorCopy = await copyExample(EXAMPLE, join(ctx.root, 'floor-src'), `floor start ${ctx.nonce}`);
  const floorOut = join(ctx.root, 'floor-out', 'hello');
  await goBuildOnce(ctx, floorCopy.dir, floorOut, gocacheTsko);
  const { warm: timed, warmup, gapMs } = ctx.options;
  for (let round = 0; round < warmup + timed; round++) {
    const measured = round >= warmup;
    const tag = `${measured ? 'w' : 'warmup'}${round} ${ctx.nonce}`;
    const version = `tsko ${tag}`;
    const save = await tskoSave(daemon, () => editVersion(tskoCopy, version), gapMs);
    if (measured) await recordWarm(warm, daemon, version, save);

    await editVersion(floorCopy, `floor ${tag}`);
    const floorMs = await goBuildOnce(ctx, floorCopy.dir, floorOut, gocacheTsko);
    if (measured) goBuild.push(floorMs);
    await sleep(gapMs);

    let koMs: number | undefined;
    if (ko) {
      await editVersion(ko.copy, `ko ${tag}`);
      koMs = (await koBuild(ctx.children, ko.ko, ko.copy.dir, ko.env, WARM_TIMEOUT_MS)).ms;
      if (measured) koTimes.push(koMs);
      await sleep(gapMs);
    }
    log(
      `round ${round + 1}/${warmup + timed}${measured ? '' : ' (warm-up)'}: tsko save→pushed ${ms(save.record.pushEndedAt, save.savedAt)} ms, ` +
        `serving ${Math.round(save.record.endedAt - save.savedAt)} ms (${save.record.result}); go build ${Math.round(floorMs)} ms` +
        (koMs !== undefined ? `; ko build ${Math.round(koMs)} ms` : ''),
    );
  }
  return { tsko: warm, goBuild, ko: koTimes };
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
    if (save.record.result === 'deployed') saveToServing.push(save.record.endedAt - save.savedAt);
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

/** A second daemon on the warm caches, under `node --cpu-prof`, for the profile of a missed target. */
async function profileDaemon(ctx: Context, copy: ServiceCopy, xdg: string, gocache: string): Promise<ProfileRun> {
  const dir = join(ctx.root, 'cpu-prof');
  await mkdir(dir);
  const env = { ...daemonEnv(ctx, xdg, gocache, await freePort()), NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` };
  const port = await freePort();
  const spawnAt = Date.now();
  const daemon = DevDaemon.start(ctx.children, { tskoBin: ctx.tskoBin, cwd: copy.dir, port, env });
  await daemon.settle(0, COLD_TIMEOUT_MS, ctx.options.gapMs);
  const stages: Partial<Record<Stage, number[]>> = {};
  const firstSaveAt = Date.now();
  for (let i = 1; i <= ctx.options.profileSaves; i++) {
    const { record } = await tskoSave(daemon, () => editVersion(copy, `profile ${i} ${ctx.nonce}`), ctx.options.gapMs);
    for (const stage of STAGES) if (record.stages[stage] !== undefined) (stages[stage] ??= []).push(record.stages[stage] as number);
  }
  const lastEndAt = Date.now();
  // The profile is written as the process exits; give it time to.
  await ctx.children.stop(daemon.child, 15_000);
  const file = (await readdir(dir)).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`the profiled daemon wrote no .cpuprofile into ${dir}`);
  // Only the saves: the profile starts about when the process does, so spawn is its origin.
  const summary = await summarizeProfile(join(dir, file), ctx.tskoRoot, { fromMs: firstSaveAt - spawnAt, toMs: lastEndAt - spawnAt });
  const stageMedians: Partial<Record<Stage, number>> = {};
  for (const stage of STAGES) {
    const samples = stages[stage];
    if (samples && samples.length > 0) stageMedians[stage] = Math.round(percentile(samples, 0.5));
  }
  return { ...summary, saves: ctx.options.profileSaves, stageMedians, file };
}

function notesFrom(results: Omit<Results, 'notes' | 'why'>, daemonStageEnds: Record<string, number>): string[] {
  const notes: string[] = [];
  const { tsko } = results.warm;
  const split = tsko.iterationsPerSave.filter((n) => n > 1).length;
  if (split > 0) {
    const detail = tsko.splitSaves
      .map((save) => save.iterations.map((it) => `${it.result} at +${Math.round(it.startedAfterSaveMs)} ms`).join(' then '))
      .join('; ');
    notes.push(`${split} of ${tsko.iterationsPerSave.length} warm saves (one in-place write each) started more than one iteration: ${detail}.`);
  }
  if (tsko.servedWrong.length > 0) notes.push(`Saves that did not end serving their text: ${tsko.servedWrong.join('; ')}.`);
  for (const [stage, count] of Object.entries(daemonStageEnds)) {
    if (count > 1) notes.push(`A warm iteration emits ${count} \`stage.end\` events for \`${stage}\` (nested); the table uses the last (outer) one.`);
  }
  const rss = results.rss;
  if (rss && (rss.split > 0 || Object.keys(rss.results).some((r) => r !== 'deployed'))) {
    notes.push(`RSS phase: results ${JSON.stringify(rss.results)}; ${rss.split} of ${rss.finalSave} saves started more than one iteration.`);
  }
  notes.push('ko runs with `--sbom=none` (as Skaffold\'s ko builder does), KOCACHE on, and its base by digest, so it resolves no tag per build.');
  notes.push("tsko's embedded registry runs inside the daemon; ko pushes to the same implementation (`tsko registry serve`) in its own process.");
  return notes;
}

async function runBench(options: BenchOptions, children: Children): Promise<Results> {
  const startedAt = new Date();
  const ko: KoBinary = options.ko ? await ensureKo(children, options.koVersion, process.env) : { available: false, reason: 'disabled (--no-ko)' };
  if (!ko.available) log(`ko not available: ${ko.reason}`);
  const machine = await machineInfo(children, ko);
  const baseEnv = stringEnv(process.env);
  for (const key of SCRUBBED_ENV) delete baseEnv[key];
  const root = await children.tempDir('tsko-bench-');
  const ctx: Context = { options, children, root, nonce: randomBytes(4).toString('hex'), baseEnv, platform: hostPlatform(), ...(await snapshotTsko(root)) };
  machine.tsko = await tskoRevision(children);
  const registry = ko.available ? await startKoRegistry(children, ctx.tskoBin, join(ctx.root, 'ko-registry'), ctx.platform) : undefined;
  const koSetup = ko.available && registry ? await setUpKo(ctx, ko, registry) : undefined;

  log(`cold: ${options.cold} × (tsko dev on an empty cache, registry and GOCACHE${koSetup ? '; ko build on an empty KOCACHE and GOCACHE' : ''})…`);
  const coldRuns = await coldPhase(ctx, koSetup);
  const { daemon, copy: tskoCopy, xdg, gocache: gocacheTsko } = coldRuns.kept;
  log('cold: go build alone into an empty GOCACHE, then go tool buildid…');
  const floorCold = await coldFloor(ctx);
  log(`cold go build ${Math.round(floorCold.goBuild)} ms, then go tool buildid ${Math.round(floorCold.goToolBuildid)} ms`);

  const warm = await warmRounds(ctx, daemon, tskoCopy, gocacheTsko, koSetup);
  const lastWarm = daemon.events.filter((e) => e.type === 'iteration.end' && e.result === 'deployed').pop()?.iteration ?? 0;
  const stageEnds = Object.fromEntries(STAGES.map((stage) => [stage, daemon.stageEnds(lastWarm, stage)]));
  const comment = await commentSaves(ctx, daemon, tskoCopy);
  log(`RSS phase: up to ${options.rss} saves or ${options.rssMinutes} min…`);
  const rss = await rssPhase(ctx, daemon, tskoCopy);
  if (rss && options.heap && (options.profile || (rss.growthMb ?? 0) > 10)) {
    log(`heap: snapshot, ${options.heapSaves} more saves, snapshot…`);
    rss.heap = await heapPhase(ctx, daemon, tskoCopy).catch((err: unknown) => {
      log(`heap snapshots failed: ${(err as Error).message}`);
      return null;
    });
  }
  const down = await shutdown(ctx, daemon, xdg);

  const partial = {
    schema: 1 as const,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    durationS: 0,
    quick: options.quick,
    options: { ...options, out: undefined },
    machine,
    cold: { tsko: coldRuns.tsko, ko: coldRuns.ko, goBuild: floorCold.goBuild, goToolBuildid: floorCold.goToolBuildid },
    warm,
    comment,
    rss,
    shutdown: down,
    koUnavailable: ko.available ? null : ko.reason,
    profile: null as ProfileRun | null,
  };
  const withSummary = { ...partial, summary: summaries(partial) };
  const targets = evaluateTargets(withSummary);
  const timingMissed = targets.slice(0, 3).some((t) => t.met === false);
  let profile: ProfileRun | null = null;
  if (timingMissed || options.profile) {
    log(`profiling a daemon over ${options.profileSaves} saves (node --cpu-prof)…`);
    profile = await profileDaemon(ctx, tskoCopy, xdg, gocacheTsko).catch((err: unknown) => {
      log(`profile failed: ${(err as Error).message}`);
      return null;
    });
  }
  machine.loadavgEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  const finished = new Date();
  const full = { ...withSummary, profile, targets, finishedAt: finished.toISOString(), durationS: (finished.getTime() - startedAt.getTime()) / 1000 };
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
