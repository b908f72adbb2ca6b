// The shape of bench/results.json and the targets of issue 12 evaluated against it (issue 4's
// comment-only and cold ones kept as information). Raw samples are
// kept next to their summaries so a later reader can recompute anything.
import type { Stage } from '../src/events.js';
import type { HeapGrowth } from './heap.js';
import type { ServiceName } from './options.js';
import type { ProfileSummary } from './profile.js';
import { percentile, ratio, summarize, type Summary } from './stats.js';

export interface Machine {
  /** The tsko commit measured (-dirty: src, ui or bin had uncommitted changes). */
  tsko: string;
  cores: number;
  cpuModel: string;
  memoryGb: number;
  kernel: string;
  node: string;
  go: string;
  ko: string | null;
  air: string | null;
  /** 1-minute load average at the start and end: other work on this machine skews timings. */
  loadavgStart: number[];
  loadavgEnd: number[];
  /** Environment that changes what is measured (GOFLAGS, GOMAXPROCS, MALLOC_ARENA_MAX, …), when set. */
  env: Record<string, string>;
}

export interface ColdRun {
  /** Process spawn → push stage ended / first revision serving (ms). */
  spawnToPushed: number;
  spawnToServing: number;
  /** Process spawn → the first iteration started (config, registry, go list, watcher). */
  startup: number;
  /** tsko's own iteration time (from the start trigger). */
  iterationMs: number;
  stages: Partial<Record<Stage, number>>;
  bytesPushed: number;
  blobsPushed: number;
}

export interface WarmTsko {
  saveToPushed: number[];
  saveToServing: number[];
  /** tsko's own iteration.end ms (from the first file event it saw). */
  tskoMs: number[];
  /** Save (write) → the file event tsko acted on. */
  watchLatency: number[];
  stages: Partial<Record<Stage, number[]>>;
  bytesPushed: number[];
  blobsPushed: number[];
  blobsSkipped: number[];
  iterationsPerSave: number[];
  /** Saves after which the front port did not serve the new text. */
  servedWrong: string[];
  results: string[];
  /** Saves that started more than one iteration: each iteration's result and start after the save. */
  splitSaves: Array<{ version: string; iterations: Array<{ result: string; startedAfterSaveMs: number }> }>;
  /** 1-minute load average after each timed round. */
  loadavg: number[];
}

export interface CommentRun {
  result: string;
  bytesPushed: number;
  blobsPushed: number;
  saveToEnd: number;
  stages: Partial<Record<Stage, number>>;
}

export interface RssRun {
  /** VmRSS, and its anonymous part (heap, malloc, buffers) and file-backed part (mapped code). */
  samples: Array<{ save: number; kb: number; anonKb?: number; fileKb?: number }>;
  baselineSave: number;
  baselineKb: number | null;
  finalSave: number;
  finalKb: number | null;
  growthMb: number | null;
  /** The time bound stopped the phase before its count. */
  bounded: boolean;
  elapsedS: number;
  saveToServing: number[];
  results: Record<string, number>;
  /** Saves that started more than one iteration. */
  split: number;
  /** When RSS grew past the target: the live JS heap over more saves after the phase. */
  heap: HeapRun | null;
}

export interface HeapRun extends HeapGrowth {
  saves: number;
  rssBeforeKb: number | null;
  rssAfterKb: number | null;
}

export interface Shutdown {
  ms: number;
  exitedByItself: boolean;
  leftoverPids: number[];
}

export interface Target {
  name: string;
  limit: string;
  measured: string;
  met: boolean | null;
  /** Informational (kept from issue 4, cheap to measure): shown, not a goal of issue 12. */
  info?: boolean;
}

export interface ProfileRun extends ProfileSummary {
  /** What was profiled: a daemon's saves (`hello local`, `large remote`) or a one-shot command. */
  subject: string;
  saves: number;
  stageMedians: Partial<Record<Stage, number>>;
  file: string;
}

/** VmRSS and its parts, kB, of one process at one moment. */
export interface MemorySample {
  /** After this many timed warm rounds. */
  round: number;
  rssKb: number;
  anonKb?: number;
  fileKb?: number;
  /** VmHWM: the peak RSS so far (during saves too). */
  hwmKb?: number;
  /** The re-exec wrapper's VmRSS, when bin/tsko.js runs the daemon as its child. */
  wrapperRssKb?: number;
}

export interface DaemonMemory {
  /** The local daemon serving the service, after each timed warm round. */
  samples: MemorySample[];
  /** The remote-path daemon, after the last round (when there is one). */
  remote: MemorySample | null;
  /** Whether the spawned process was a wrapper that re-executed the daemon as its child. */
  wrapper: boolean;
  /** One heap snapshot of the local daemon after the rounds (when its RSS missed the target, or --profile). */
  heap: HeapSummary | null;
}

export interface HeapSummary {
  liveMb: number;
  top: Array<{ name: string; count: number; bytes: number }>;
  rssKb: number | null;
}

/** One warm round's timings, paired: all measured under the same load. */
export interface WarmRound {
  goBuild: number;
  tskoServing?: number;
  tskoPushed?: number;
  ko?: number;
  tskoBuild?: number;
  air?: number;
  remotePushed?: number;
}

export interface ServiceRun {
  name: ServiceName;
  /** The static binary's size (the floor's output), bytes. */
  binaryBytes: number | null;
  /** The first `go build` into the GOCACHE the warm rounds share (large: empty on a new machine, so the modules compile). */
  prepareGoBuildMs: number | null;
  warm: {
    tsko: WarmTsko;
    /** The remote path: `--layer-compression gzip` pushing to ko's registry. */
    remote: WarmTsko | null;
    goBuild: number[];
    ko: number[];
    tskoBuild: number[];
    air: number[];
    /** Builds air started per timed save (more than 1: it built the save's file events separately). */
    airBuilds: number[];
    /** air saves that did not end serving their text in time. */
    airFailed: string[];
    rounds: WarmRound[];
  };
  memory: DaemonMemory | null;
}

export interface OneShotRuns {
  /** `tsko version`: null when the command is missing (exit ≠ 0); why in `missing`. */
  version: { wallMs: number[]; maxRssKb: number[] } | null;
  missing: string | null;
  /** `node -e 0` the same way: Node's own start-up on this machine. */
  nodeFloor: { wallMs: number[]; maxRssKb: number[] };
  /** `tsko --help` (loads every command), measured when `version` is missing, as a stand-in. */
  help: { wallMs: number[]; maxRssKb: number[] } | null;
}

export interface Results {
  schema: 2;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  quick: boolean;
  options: Record<string, unknown>;
  machine: Machine;
  /** hello only. */
  cold: {
    tsko: ColdRun[];
    ko: number[];
    /** `go build -trimpath` alone into an empty GOCACHE, then `go tool buildid` (what ko runs after it) on the result. */
    goBuild: number | null;
    goToolBuildid: number | null;
  } | null;
  services: Partial<Record<ServiceName, ServiceRun>>;
  /** hello only. */
  comment: CommentRun[];
  /** Growth over many saves, on hello. */
  rss: RssRun | null;
  shutdown: Shutdown | null;
  oneShot: OneShotRuns | null;
  koUnavailable: string | null;
  airUnavailable: string | null;
  summary: Record<string, Summary | undefined>;
  targets: Target[];
  why: string[];
  profiles: ProfileRun[];
  notes: string[];
}

export const STAGES: Stage[] = ['trigger', 'build', 'layer', 'push', 'deploy', 'ready'];

type Summarized = Omit<Results, 'summary' | 'targets' | 'why' | 'notes'>;

export function summaries(results: Summarized): Record<string, Summary | undefined> {
  const out: Record<string, Summary | undefined> = {};
  if (results.cold) {
    out['tsko cold spawn→pushed'] = summarize(results.cold.tsko.map((c) => c.spawnToPushed));
    out['tsko cold spawn→serving'] = summarize(results.cold.tsko.map((c) => c.spawnToServing));
    out['ko build cold'] = summarize(results.cold.ko);
  }
  for (const service of Object.values(results.services)) {
    const name = service.name;
    const { tsko, remote } = service.warm;
    out[`${name}: tsko save→pushed`] = summarize(tsko.saveToPushed);
    out[`${name}: tsko save→serving`] = summarize(tsko.saveToServing);
    out[`${name}: tsko watch latency`] = summarize(tsko.watchLatency);
    for (const stage of STAGES) out[`${name}: tsko stage ${stage}`] = summarize(tsko.stages[stage] ?? []);
    out[`${name}: go build alone`] = summarize(service.warm.goBuild);
    out[`${name}: air save→serving`] = summarize(service.warm.air);
    out[`${name}: ko build warm`] = summarize(service.warm.ko);
    out[`${name}: tsko build warm`] = summarize(service.warm.tskoBuild);
    out[`${name}: tsko bytes pushed`] = summarize(tsko.bytesPushed);
    out[`${name}: ko overhead above go build`] = summarize(paired(service.warm.rounds, 'ko'));
    if (remote) {
      out[`${name}: remote save→pushed`] = summarize(remote.saveToPushed);
      for (const stage of STAGES) out[`${name}: remote stage ${stage}`] = summarize(remote.stages[stage] ?? []);
      out[`${name}: remote overhead above go build`] = summarize(paired(service.warm.rounds, 'remotePushed'));
      out[`${name}: remote bytes pushed`] = summarize(remote.bytesPushed);
    }
  }
  out['tsko RSS-phase save→serving'] = summarize(results.rss?.saveToServing ?? []);
  if (results.oneShot) {
    out['tsko version'] = summarize(results.oneShot.version?.wallMs ?? []);
    out['tsko version max RSS kB'] = summarize(results.oneShot.version?.maxRssKb ?? []);
    out['node -e 0'] = summarize(results.oneShot.nodeFloor.wallMs);
    out['node -e 0 max RSS kB'] = summarize(results.oneShot.nodeFloor.maxRssKb);
    out['tsko --help'] = summarize(results.oneShot.help?.wallMs ?? []);
    out['tsko --help max RSS kB'] = summarize(results.oneShot.help?.maxRssKb ?? []);
  }
  return out;
}

/** Per round, the tool's time minus that round's `go build` alone (rounds where both ran). */
export function paired(rounds: readonly WarmRound[], key: 'ko' | 'remotePushed' | 'tskoServing' | 'air' | 'tskoBuild'): number[] {
  return rounds.flatMap((round) => (round[key] !== undefined ? [(round[key] as number) - round.goBuild] : []));
}

/** The samples the RSS target reads: the local daemon's, between saves, serving the large service. */
export function servingRss(memory: DaemonMemory | null | undefined): MemorySample | undefined {
  if (!memory || memory.samples.length === 0) return undefined;
  return memory.samples.reduce((max, sample) => (sample.rssKb > max.rssKb ? sample : max));
}

export const LIMITS = {
  localVsGoBuild: 1.1,
  remoteVsKoOverhead: 0.5,
  versionMs: 80,
  buildVsKo: 0.9,
  servingRssMb: 120,
  growthMb: 10,
} as const;

/**
 * The median of per-round ratios: rounds interleave the tools so that load from other work hits
 * them alike, which a ratio of medians (the verdict) does not use. Shown beside it, not instead.
 */
function pairedRatio(rounds: readonly WarmRound[], of: keyof WarmRound, to: keyof WarmRound): number | undefined {
  const ratios = rounds.flatMap((round) => {
    const a = round[of];
    const b = round[to];
    return typeof a === 'number' && typeof b === 'number' && b > 0 ? [a / b] : [];
  });
  return ratios.length === 0 ? undefined : Math.round(percentile(ratios, 0.5) * 100) / 100;
}

export function evaluateTargets(results: Omit<Results, 'targets' | 'why' | 'notes'>): Target[] {
  const s = results.summary;
  const fmt = (x: number | undefined, unit = '') => (x === undefined ? 'n/a' : `${x}${unit}`);
  const targets: Target[] = [];
  for (const service of Object.values(results.services)) {
    const name = service.name;
    const serving = s[`${name}: tsko save→serving`]?.median;
    const floor = s[`${name}: go build alone`]?.median;
    const vsFloor = ratio(serving, floor);
    targets.push({
      name: `${name}: local save→serving ÷ go build alone`,
      limit: `≤ ${LIMITS.localVsGoBuild}`,
      measured: `${fmt(vsFloor)} (${fmt(serving, ' ms')} ÷ ${fmt(floor, ' ms')}; per round, paired: ${fmt(pairedRatio(service.warm.rounds, 'tskoServing', 'goBuild'))})`,
      met: vsFloor === undefined ? null : vsFloor <= LIMITS.localVsGoBuild,
    });
    const air = s[`${name}: air save→serving`]?.median;
    const vsAir = ratio(serving, air);
    targets.push({
      name: `${name}: local save→serving ÷ air's save→serving`,
      limit: '< 1',
      measured: `${fmt(vsAir)} (${fmt(serving, ' ms')} ÷ ${fmt(air, ' ms')}; per round, paired: ${fmt(pairedRatio(service.warm.rounds, 'tskoServing', 'air'))})`,
      met: vsAir === undefined ? null : vsAir < 1,
    });
    if (service.warm.remote) {
      const remote = s[`${name}: remote overhead above go build`]?.median;
      const ko = s[`${name}: ko overhead above go build`]?.median;
      const vsKo = remote === undefined || ko === undefined || ko <= 0 ? undefined : Math.round((remote / ko) * 100) / 100;
      targets.push({
        name: `${name}: remote path (gzip) save→pushed overhead above go build ÷ ko's (ko build warm − go build), paired per round`,
        limit: `≤ ${LIMITS.remoteVsKoOverhead}`,
        measured: `${fmt(vsKo)} (${fmt(remote, ' ms')} ÷ ${fmt(ko, ' ms')})`,
        met: vsKo === undefined ? null : vsKo <= LIMITS.remoteVsKoOverhead,
      });
    }
    const build = s[`${name}: tsko build warm`]?.median;
    const koWarm = s[`${name}: ko build warm`]?.median;
    const vsKoBuild = ratio(build, koWarm);
    targets.push({
      name: `${name}: tsko build warm ÷ ko build warm`,
      limit: `≤ ${LIMITS.buildVsKo}`,
      measured: `${fmt(vsKoBuild)} (${fmt(build, ' ms')} ÷ ${fmt(koWarm, ' ms')}; per round, paired: ${fmt(pairedRatio(service.warm.rounds, 'tskoBuild', 'ko'))})`,
      met: vsKoBuild === undefined ? null : vsKoBuild <= LIMITS.buildVsKo,
    });
  }
  if (results.oneShot) {
    const version = s['tsko version']?.median;
    targets.push({
      name: '`tsko version` spawn → exit (median)',
      limit: `≤ ${LIMITS.versionMs} ms`,
      measured: results.oneShot.version
        ? `${fmt(version, ' ms')}, max RSS ${fmt(kbToMb(s['tsko version max RSS kB']?.median) ?? undefined, ' MB')} (node -e 0: ${fmt(s['node -e 0']?.median, ' ms')})`
        : `missing: ${results.oneShot.missing ?? 'not run'}`,
      met: results.oneShot.version ? (version === undefined ? null : version <= LIMITS.versionMs) : false,
    });
  }
  const large = results.services.large;
  if (large) {
    const peak = servingRss(large.memory);
    const mb = kbToMb(peak?.rssKb);
    targets.push({
      name: 'large: daemon VmRSS serving (max of the samples between saves)',
      limit: `≤ ${LIMITS.servingRssMb} MB`,
      measured:
        mb === null
          ? 'n/a'
          : `${mb} MB after round ${peak?.round}` +
            (peak?.wrapperRssKb !== undefined ? ` (+ ${kbToMb(peak.wrapperRssKb)} MB re-exec wrapper)` : '') +
            (peak?.hwmKb !== undefined ? `; peak during saves (VmHWM) ${kbToMb(peak.hwmKb)} MB` : ''),
      met: mb === null ? null : mb <= LIMITS.servingRssMb && peak?.wrapperRssKb === undefined,
    });
  }
  const rss = results.rss;
  if (results.services.hello) targets.push({
    name: `hello: daemon RSS growth over ${rss ? rss.finalSave - rss.baselineSave : 0} saves (save ${rss?.baselineSave ?? '-'} → ${rss?.finalSave ?? '-'})`,
    limit: `≤ ${LIMITS.growthMb} MB over 200`,
    measured: rss?.growthMb === null || !rss ? 'n/a' : `${rss.growthMb} MB (${kbToMb(rss.baselineKb)} → ${kbToMb(rss.finalKb)} MB)${rss.bounded ? ', stopped by the time bound' : ''}`,
    met: rss?.growthMb === null || !rss ? null : rss.growthMb <= LIMITS.growthMb,
  });
  const comments = results.comment;
  if (comments.length > 0) targets.push({
    name: 'hello: comment-only edit: bytes pushed, result',
    limit: '0 bytes, unchanged',
    measured: comments.map((c) => `${c.bytesPushed} B ${c.result}`).join('; ') || 'n/a',
    met: comments.length === 0 ? null : comments.every((c) => c.bytesPushed === 0 && c.result === 'unchanged'),
    info: true,
  });
  if (results.cold) {
    const tskoCold = s['tsko cold spawn→pushed']?.median;
    const koCold = s['ko build cold']?.median;
    const cold = ratio(tskoCold, koCold);
    targets.push({
      name: "hello: cold spawn→pushed ÷ ko's cold ko build (medians)",
      limit: '≤ 1',
      measured: `${fmt(cold)} (${fmt(tskoCold, ' ms')} ÷ ${fmt(koCold, ' ms')})`,
      met: cold === undefined ? null : cold <= 1,
      info: true,
    });
  }
  return targets;
}

export function kbToMb(kb: number | null | undefined): number | null {
  return kb === null || kb === undefined ? null : Math.round((kb / 1024) * 10) / 10;
}

/** The cold run whose spawn→pushed is the median one, for its stage breakdown. */
export function medianColdRun(runs: readonly ColdRun[]): ColdRun | undefined {
  const sorted = [...runs].sort((a, b) => a.spawnToPushed - b.spawnToPushed);
  return sorted[Math.ceil(sorted.length / 2) - 1];
}
