// The shape of bench/results.json and the targets of issue 4 evaluated against it. Raw samples are
// kept next to their summaries so a later reader can recompute anything.
import type { Stage } from '../src/events.js';
import type { HeapGrowth } from './heap.js';
import type { ProfileSummary } from './profile.js';
import { ratio, summarize, type Summary } from './stats.js';

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
}

export interface ProfileRun extends ProfileSummary {
  saves: number;
  stageMedians: Partial<Record<Stage, number>>;
  file: string;
}

export interface Results {
  schema: 1;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  quick: boolean;
  options: Record<string, unknown>;
  machine: Machine;
  cold: {
    tsko: ColdRun[];
    ko: number[];
    /** `go build -trimpath` alone into an empty GOCACHE, then `go tool buildid` (what ko runs after it) on the result. */
    goBuild: number | null;
    goToolBuildid: number | null;
  };
  warm: { tsko: WarmTsko; goBuild: number[]; ko: number[] };
  comment: CommentRun[];
  rss: RssRun | null;
  shutdown: Shutdown | null;
  koUnavailable: string | null;
  summary: Record<string, Summary | undefined>;
  targets: Target[];
  why: string[];
  profile: ProfileRun | null;
  notes: string[];
}

export const STAGES: Stage[] = ['trigger', 'build', 'layer', 'push', 'deploy', 'ready'];

export function summaries(results: Omit<Results, 'summary' | 'targets' | 'why' | 'notes'>): Record<string, Summary | undefined> {
  const { tsko } = results.warm;
  const out: Record<string, Summary | undefined> = {
    'tsko cold spawn→pushed': summarize(results.cold.tsko.map((c) => c.spawnToPushed)),
    'tsko cold spawn→serving': summarize(results.cold.tsko.map((c) => c.spawnToServing)),
    'ko build cold': summarize(results.cold.ko),
    'tsko warm save→pushed': summarize(tsko.saveToPushed),
    'tsko warm save→serving': summarize(tsko.saveToServing),
    'tsko warm watch latency': summarize(tsko.watchLatency),
  };
  for (const stage of STAGES) out[`tsko warm stage ${stage}`] = summarize(tsko.stages[stage] ?? []);
  out['go build alone (floor)'] = summarize(results.warm.goBuild);
  out['ko build warm'] = summarize(results.warm.ko);
  out['tsko warm bytes pushed'] = summarize(tsko.bytesPushed);
  out['tsko RSS-phase save→serving'] = summarize(results.rss?.saveToServing ?? []);
  return out;
}

export function evaluateTargets(results: Omit<Results, 'targets' | 'why' | 'notes'>): Target[] {
  const s = results.summary;
  const pushed = s['tsko warm save→pushed']?.median;
  const floor = s['go build alone (floor)']?.median;
  const koWarm = s['ko build warm']?.median;
  const vsFloor = ratio(pushed, floor);
  const vsKo = ratio(pushed, koWarm);
  const tskoCold = s['tsko cold spawn→pushed']?.median;
  const koCold = s['ko build cold']?.median;
  const cold = ratio(tskoCold, koCold);
  const comments = results.comment;
  const commentOk = comments.length > 0 && comments.every((c) => c.bytesPushed === 0 && c.result === 'unchanged');
  const rss = results.rss;
  const fmt = (x: number | undefined, unit = '') => (x === undefined ? 'n/a' : `${x}${unit}`);
  return [
    {
      name: 'warm save→pushed ÷ go build alone',
      limit: '≤ 1.3',
      measured: `${fmt(vsFloor)} (${fmt(pushed, ' ms')} ÷ ${fmt(floor, ' ms')})`,
      met: vsFloor === undefined ? null : vsFloor <= 1.3,
    },
    {
      name: "warm save→pushed ÷ ko's warm ko build",
      limit: '≤ 0.5',
      measured: `${fmt(vsKo)} (${fmt(pushed, ' ms')} ÷ ${fmt(koWarm, ' ms')})`,
      met: vsKo === undefined ? null : vsKo <= 0.5,
    },
    {
      name: "cold spawn→pushed ÷ ko's cold ko build (medians)",
      limit: '≤ 1',
      measured: `${fmt(cold)} (${fmt(tskoCold, ' ms')} ÷ ${fmt(koCold, ' ms')})`,
      met: cold === undefined ? null : cold <= 1,
    },
    {
      name: 'comment-only edit: bytes pushed, result',
      limit: '0 bytes, unchanged',
      measured: comments.map((c) => `${c.bytesPushed} B ${c.result}`).join('; ') || 'n/a',
      met: comments.length === 0 ? null : commentOk,
    },
    {
      name: `daemon RSS growth over ${rss ? rss.finalSave - rss.baselineSave : 0} saves (save ${rss?.baselineSave ?? '-'} → ${rss?.finalSave ?? '-'})`,
      limit: '≤ 10 MB over 200',
      measured: rss?.growthMb === null || rss === null ? 'n/a' : `${rss.growthMb} MB (${kbToMb(rss.baselineKb)} → ${kbToMb(rss.finalKb)} MB)${rss.bounded ? ', stopped by the time bound' : ''}`,
      met: rss?.growthMb === null || rss === null ? null : rss.growthMb <= 10,
    },
  ];
}

export function kbToMb(kb: number | null | undefined): number | null {
  return kb === null || kb === undefined ? null : Math.round((kb / 1024) * 10) / 10;
}

/** The cold run whose spawn→pushed is the median one, for its stage breakdown. */
export function medianColdRun(runs: readonly ColdRun[]): ColdRun | undefined {
  const sorted = [...runs].sort((a, b) => a.spawnToPushed - b.spawnToPushed);
  return sorted[Math.ceil(sorted.length / 2) - 1];
}
