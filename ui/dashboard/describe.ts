// The words the dashboard shows for a service, derived from the model: the result line, the
// compiler's file:line diagnostics, the "still serving" line. Pure, so tests check the sentences
// without rendering anything.
import type { Diagnostic, ErrorInfo } from '../../src/events.js';
import { ago, bytes, displayPath, seconds } from './format.js';
import { currentIteration, type Iteration, type ServiceState } from './state.js';

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

/** The line under the timing table: what the last finished iteration did. */
export function resultLine(service: ServiceState): ResultLine | undefined {
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
  const end = service.lastEnded?.end;
  if (!end || !end.error || (end.result !== 'build-failed' && end.result !== 'push-failed' && end.result !== 'deploy-failed')) return [];
  // Once a newer iteration has deployed, the failure is history, not news.
  if (service.serving && service.serving.iteration > (service.lastEnded?.iteration ?? 0)) return [];
  const lines: ErrorLine[] = [];
  if (end.result === 'build-failed') {
    const found = diagnostics(end.error);
    if (found.length === 0) lines.push({ text: end.error.message, tone: 'fail' });
    for (const d of found) lines.push({ lead: where(d), text: d.message, tone: 'fail' });
  } else {
    lines.push({ text: end.error.message, tone: 'fail' });
    if (end.error.hint) lines.push({ lead: 'hint:', text: end.error.hint, tone: 'dim' });
    for (const line of (end.error.detail ?? '').split('\n').filter(Boolean).slice(-3)) lines.push({ lead: '│', text: line, tone: 'dim' });
  }
  lines.push(stillServing(service, now));
  return lines;
}

export function stillServing(service: ServiceState, now: number): ErrorLine {
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
  const result = service.lastEnded?.end?.result;
  if (!result) return 'dim';
  if (result === 'deployed' || result === 'unchanged') return 'ok';
  if (result === 'cancelled') return 'warn';
  return 'fail';
}

export { currentIteration };
