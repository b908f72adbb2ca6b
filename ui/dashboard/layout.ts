// Fitting the dashboard to the terminal. Every line is one terminal row (the view truncates, never
// wraps), so the height is known before rendering: start from everything and give up detail in a
// fixed order until it fits the rows. Columns decide which stages the table can show.
import type { Column } from './stats.js';

export type TableRow = 'cold' | 'p50' | 'p90' | 'speedup';

export interface LayoutInput {
  columns: number;
  rows: number;
  services: Array<{ errorLines: number; historyLength: number }>;
  showLogs: boolean;
  logLines: number;
  notice: boolean;
}

export interface Plan {
  compact: boolean;
  /** Blank lines between sections. */
  gaps: boolean;
  tableRows: TableRow[];
  files: boolean;
  /** Per service, at most. */
  errorLines: number;
  historyRows: number;
  /** The history's title line with its sparkline. */
  historyTitle: boolean;
  logRows: number;
  notice: boolean;
  columns: Column[];
  labelWidth: number;
  cellWidth: number;
  barWidth: number;
  height: number;
}

/** Which table columns fit, kept in pipeline order; total first to stay, trigger first to go. */
const KEEP_ORDER: Column[] = ['total', 'build', 'push', 'deploy', 'layer', 'ready', 'trigger'];
const PIPELINE_ORDER: Column[] = ['trigger', 'build', 'layer', 'push', 'deploy', 'ready', 'total'];

export function tableColumns(width: number, labelWidth: number, cellWidth: number): Column[] {
  const indent = 2;
  const fit = Math.max(1, Math.floor((width - indent - labelWidth) / cellWidth));
  const kept = new Set(KEEP_ORDER.slice(0, fit));
  return PIPELINE_ORDER.filter((c) => kept.has(c));
}

export function planLayout(input: LayoutInput): Plan {
  const compact = input.columns < 80;
  const labelWidth = compact ? 9 : 11;
  const cellWidth = compact ? 8 : 9;
  const budget = Math.max(4, input.rows);
  const plan: Plan = {
    compact,
    gaps: true,
    tableRows: ['cold', 'p50', 'p90', 'speedup'],
    files: true,
    errorLines: 8,
    historyRows: input.showLogs ? 3 : 10,
    historyTitle: true,
    logRows: input.showLogs ? Math.min(12, Math.max(1, input.logLines)) : 0,
    notice: input.notice,
    columns: tableColumns(input.columns, labelWidth, cellWidth),
    labelWidth,
    cellWidth,
    barWidth: input.columns >= 100 ? 24 : compact ? Math.max(4, Math.min(12, input.columns - 40)) : 16,
    height: 0,
  };

  const height = (p: Plan): number => {
    let h = 1 + (p.gaps ? 1 : 0) + 1; // header, gap, footer
    for (const s of input.services) {
      h += 1 + 2 + p.tableRows.length + 1 + (p.files ? 1 : 0);
      h += Math.min(s.errorLines, p.errorLines);
      if (p.historyTitle && s.historyLength > 0) h += 1 + Math.min(s.historyLength, p.historyRows);
      if (p.gaps) h += 1;
    }
    if (p.logRows > 0) h += 1 + p.logRows;
    if (p.notice) h += 1;
    return h;
  };

  // What to give up, in order, while the frame is too tall.
  const steps: Array<(p: Plan) => void> = [
    (p) => (p.logRows = Math.min(p.logRows, 8)),
    (p) => (p.historyRows = Math.min(p.historyRows, 5)),
    (p) => (p.errorLines = Math.min(p.errorLines, 5)),
    (p) => (p.historyRows = Math.min(p.historyRows, 3)),
    (p) => (p.gaps = false),
    (p) => (p.tableRows = p.tableRows.filter((r) => r !== 'p90')),
    (p) => (p.logRows = Math.min(p.logRows, 4)),
    (p) => (p.historyRows = Math.min(p.historyRows, 1)),
    (p) => (p.files = false),
    (p) => (p.errorLines = Math.min(p.errorLines, 3)),
    (p) => (p.notice = false),
    (p) => {
      p.historyRows = 0;
      p.historyTitle = false;
    },
    (p) => (p.tableRows = p.tableRows.filter((r) => r !== 'speedup')),
    (p) => (p.logRows = Math.min(p.logRows, 2)),
    (p) => (p.tableRows = []),
    (p) => (p.errorLines = Math.min(p.errorLines, 2)),
    (p) => (p.logRows = 0),
    (p) => (p.errorLines = 1),
  ];
  for (const step of steps) {
    if (height(plan) <= budget) break;
    step(plan);
  }
  plan.height = height(plan);
  return plan;
}
