// Cold against warm: per stage and in total, the first deployed iteration's time beside the warm
// iterations' median and p90 (nearest rank), and the speed-up cold/median — only when that first
// iteration really was cold (go compiled most packages); a warm first run is no baseline. Pure.
import type { Stage } from '../../src/events.js';
import { STAGES, type HistoryEntry, type ServiceState } from './state.js';

export type Column = Stage | 'total';
export const COLUMNS: readonly Column[] = [...STAGES, 'total'];

export interface ColumnStats {
  cold?: number;
  p50?: number;
  p90?: number;
  /** cold / p50, when both exist and the first iteration was cold. */
  speedup?: number;
  samples: number;
}

/** Nearest-rank percentile of `values` (0 < p ≤ 100); undefined for none. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** The median as usually meant: the mean of the two middle values for an even count. */
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function valueOf(entry: HistoryEntry, column: Column): number | undefined {
  return column === 'total' ? entry.ms : entry.stages[column];
}

export type ColdWarmInput = Pick<ServiceState, 'cold' | 'warm' | 'coldness'>;

export function columnStats(service: ColdWarmInput, column: Column): ColumnStats {
  const cold = service.cold ? valueOf(service.cold, column) : undefined;
  const values = service.warm.map((entry) => valueOf(entry, column)).filter((v): v is number => v !== undefined);
  const p50 = median(values);
  const p90 = percentile(values, 90);
  const stats: ColumnStats = { samples: values.length };
  if (cold !== undefined) stats.cold = cold;
  if (p50 !== undefined) stats.p50 = p50;
  if (p90 !== undefined) stats.p90 = p90;
  if (service.coldness === 'cold' && cold !== undefined && p50 !== undefined && p50 > 0) stats.speedup = cold / p50;
  return stats;
}

export function coldWarm(service: ColdWarmInput): Record<Column, ColumnStats> {
  const out = {} as Record<Column, ColumnStats>;
  for (const column of COLUMNS) out[column] = columnStats(service, column);
  return out;
}
