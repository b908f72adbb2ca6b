// The words the dashboard shows for a service, derived from the model: the result line, the
// compiler's file:line diagnostics, the "still serving" line. Pure, so tests check the sentences
// without rendering anything.
import type { Diagnostic, ErrorInfo } from '../../src/events.js';
import { ago, bytes, displayPath, seconds, untab } from './format.js';
import { currentIteration, type Crash, type DashboardState, type Iteration, type ServiceState } from './state.js';

export type Tone = 'ok' | 'fail' | 'run' | 'warn' | 'dim' | 'plain';

/** A failed build's diagnostics, as the build parsed them (the error event carries them). */
export function diagnostics(error: ErrorInfo | undefined): Diagnostic[] {
  return error?.diagnostics ?? [];
}

export function where(d: Diagnostic): string {
  return `${d.file}:${d.line}${d.column !== undefined ? `:${d.column}` : ''}`;
}

export interface ResultLine {
  symbol: string;
  tone: Tone;
  /** The headline ("Updated in 0.62 s") and the facts after it, joined with " · " by the view. */
  parts: string[];
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The serving revision's crash, while it is the newest news (no iteration ended after it). */
export function currentCrash(service: ServiceState): Crash | undefined {
  const crash = service.crashed;
  if (!crash) return undefined;
  const ended = service.lastEnded?.end?.endedAt ?? 0;
  return crash.time >= ended ? crash : undefined;
}

/** "exit code 2" / "signal SIGKILL". */
export function exitText(crash: Pick<Crash, 'code' | 'signal'>): string {
  return crash.signal ? `signal ${crash.signal}` : `exit code ${crash.code ?? '?'}`;
}

/** The line under the timing table: what the last finished iteration did. */
export function resultLine(service: ServiceState): ResultLine | undefined {
  const crash = currentCrash(service);
  if (crash) return { symbol: '✗', tone: 'fail', parts: ['crashed', crash.revision, exitText(crash)] };
  const it = service.lastEnded;
  const end = it?.end;
  if (!it || !end) return undefined;
  const took = seconds(end.ms);
  switch (end.result) {
    case 'deployed':
      return {
        symbol: '✓',
        tone: 'ok',
        parts: [
          `Updated in ${took}`,
          end.blobsPushed === 0 ? 'nothing pushed' : `${bytes(end.bytesPushed)} pushed`,
          `${plural(end.blobsSkipped, 'blob')} skipped`,
          ...(end.revision ? [`rev ${end.revision}`] : []),
          ...(end.url ? [end.url] : []),
        ],
      };
    case 'unchanged':
      return {
        symbol: '=',
        tone: 'dim',
        parts: [`No change in ${took}`, service.serving ? `same program as ${service.serving.revision}` : 'same program', 'nothing pushed or deployed'],
      };
    case 'cancelled':
      return { symbol: '↻', tone: 'warn', parts: [`Cancelled after ${took}`, 'superseded by a newer save'] };
    case 'build-failed': {
      // The diagnostics themselves are listed under it (errorLines); here only how many.
      const count = diagnostics(end.error).length;
      return { symbol: '✗', tone: 'fail', parts: [`Build failed after ${took}`, ...(count > 0 ? [plural(count, 'compiler error')] : [])] };
    }
    case 'push-failed':
      return { symbol: '✗', tone: 'fail', parts: [`Push failed after ${took}`] };
    case 'deploy-failed':
      return { symbol: '✗', tone: 'fail', parts: [`Deploy failed after ${took}`] };
  }
}

/** The files the current iteration was started by, as short paths; `start`/`r` as words. */
export function triggerText(it: Iteration | undefined, cwd: string | undefined): string {
  if (!it) return '';
  const words: Record<string, string> = { start: '(first build)', r: '(rebuild key)' };
  return it.trigger.map((file) => words[file] ?? displayPath(file, cwd)).join(', ');
}

/** The error block under a failed iteration: one line each, with a tone for the leading part. */
export interface ErrorLine {
  lead?: string;
  text: string;
  tone: Tone;
}

export function errorLines(service: ServiceState, now: number): ErrorLine[] {
  const crash = currentCrash(service);
  if (crash) {
    const lines: ErrorLine[] = crash.lastLines.map((line) => ({ lead: '│', text: untab(line), tone: 'dim' as const }));
    if (lines.length === 0) lines.push({ text: 'it wrote nothing before it ended', tone: 'dim' });
    lines.push(stillServing(service, now));
    return lines;
  }
  const end = service.lastEnded?.end;
  if (!end || !end.error || (end.result !== 'build-failed' && end.result !== 'push-failed' && end.result !== 'deploy-failed')) return [];
  // Once a newer iteration has deployed, the failure is history, not news.
  if (service.serving && service.serving.iteration > (service.lastEnded?.iteration ?? 0)) return [];
  const lines: ErrorLine[] = [];
  const found = end.result === 'build-failed' ? diagnostics(end.error) : [];
  if (end.result === 'build-failed' && found.length === 0) {
    // No file:line (a broken go.mod, a missing go.sum entry): go's own lines, first ones first.
    const message = end.error.message;
    lines.push({ text: message, tone: 'fail' });
    if (end.error.hint) lines.push({ lead: 'hint:', text: end.error.hint, tone: 'dim' });
    for (const line of detailLines(end.error)) lines.push({ lead: '│', text: line, tone: 'dim' });
  } else if (end.result === 'build-failed') {
    for (const d of found) {
      lines.push({ lead: where(d), text: d.message, tone: 'fail' });
      // Notes (have/want, a `go get …` fix) are part of the error, never dropped.
      for (const note of d.notes ?? []) lines.push({ lead: ' ', text: note, tone: 'dim' });
    }
  } else {
    lines.push({ text: end.error.message, tone: 'fail' });
    if (end.error.hint) lines.push({ lead: 'hint:', text: end.error.hint, tone: 'dim' });
    // A revision's last words are at the end of the detail; earlier lines are counted (e shows them).
    const detail = detailLines(end.error);
    if (detail.length > 3) lines.push({ lead: '│', text: `(${detail.length - 3} earlier line${detail.length === 4 ? '' : 's'}: e shows them)`, tone: 'dim' });
    for (const line of detail.slice(-3)) lines.push({ lead: '│', text: line, tone: 'dim' });
  }
  lines.push(stillServing(service, now));
  return lines;
}

/** An error's detail (a tool's output, a revision's last lines) without blank lines or its own message again. */
function detailLines(error: ErrorInfo): string[] {
  // A tab has no fixed width in a terminal cell grid: four spaces keep the lines measurable.
  return (error.detail ?? '').split('\n').filter((line) => line.trim() && !error.message.includes(line.trim())).map(untab);
}

/**
 * The error block cut to `limit` lines: what fits, then `+N more (e shows all)`, and always the
 * last line (what serves), so a long list never hides that. `tail` keeps the newest lines instead
 * (a crashed revision's last words) and counts the earlier ones first.
 */
export function fitErrorLines(lines: ErrorLine[], limit: number, keep: 'head' | 'tail' = 'head'): ErrorLine[] {
  if (lines.length <= limit) return lines;
  if (limit <= 1) return lines.slice(0, Math.max(0, limit));
  const last = lines.at(-1) as ErrorLine;
  const body = lines.slice(0, -1);
  const room = Math.max(0, limit - 2);
  const hidden = body.length - room;
  if (keep === 'tail') {
    const earlier: ErrorLine = { text: `+${hidden} earlier line${hidden === 1 ? '' : 's'} (e shows them all)`, tone: 'warn' };
    return [earlier, ...body.slice(body.length - room), last];
  }
  const more: ErrorLine = { text: `+${hidden} more line${hidden === 1 ? '' : 's'} (e shows every error in full)`, tone: 'warn' };
  return [...body.slice(0, room), more, last];
}

/** One error as the `e` view shows it: its headline and every line under it, uncut. */
export interface ErrorDetail {
  service: string;
  headline: string;
  lines: string[];
}

/** Every current error of every service, in full, for the `e` view. */
export function errorDetails(state: DashboardState): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  for (const service of state.services) {
    const crash = currentCrash(service);
    if (crash) {
      out.push({ service: service.name, headline: `${crash.revision} crashed (${exitText(crash)})`, lines: crash.lastLines });
      continue;
    }
    const end = service.lastEnded?.end;
    if (!end?.error || (end.result !== 'build-failed' && end.result !== 'push-failed' && end.result !== 'deploy-failed')) continue;
    if (service.serving && service.serving.iteration > (service.lastEnded?.iteration ?? 0)) continue;
    const found = diagnostics(end.error);
    if (found.length > 0) {
      for (const d of found) out.push({ service: service.name, headline: `${where(d)}: ${d.message}`, lines: d.notes ?? [] });
      continue;
    }
    const lines = [...(end.error.hint ? [`hint: ${end.error.hint}`] : []), ...detailLines(end.error)];
    out.push({ service: service.name, headline: end.error.message, lines });
  }
  return out;
}

export function stillServing(service: ServiceState, now: number): ErrorLine {
  const crash = currentCrash(service) ?? service.crashed;
  if (crash && (!service.serving || service.serving.revision === crash.revision)) return { text: `nothing is serving: ${crash.revision} crashed (${exitText(crash)})`, tone: 'fail' };
  const serving = service.serving;
  if (!serving) return { text: 'nothing is serving yet', tone: 'warn' };
  return {
    text: `still serving ${serving.revision} (deployed ${ago(now - serving.since)})${serving.url ? ` · ${serving.url}` : ''}`,
    tone: 'ok',
  };
}

/** The title's state: a spinner while something runs, else the last result's mark. */
export function serviceTone(service: ServiceState): Tone {
  if (service.running.length > 0) return 'run';
  if (service.crashed) return 'fail';
  const result = service.lastEnded?.end?.result;
  if (!result) return 'dim';
  if (result === 'deployed' || result === 'unchanged') return 'ok';
  if (result === 'cancelled') return 'warn';
  return 'fail';
}

export { currentIteration };
