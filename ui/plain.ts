// The plain reporter: one timed line per interesting event, on stderr (or any stream), for
// one-shot commands and for `tsko dev` when stdout is not a terminal. Reads only event types.
import type { ErrorInfo, TskoEvent } from '../src/events.js';
import { describeGoWork, goWorkOf } from './first-iteration.js';

export interface PlainReporterOptions {
  write: (line: string) => void;
  verbose?: boolean;
}

function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function ms(value: number): string {
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`;
}

export function formatPlainEvent(event: TskoEvent, verbose = false): string | undefined {
  const prefix = event.service && event.iteration !== undefined ? `[${event.service} #${event.iteration}] ` : '';
  switch (event.type) {
    case 'log':
      return event.level === 'debug' && !verbose ? undefined : `${prefix}${event.message}`;
    case 'registry.embedded':
      return `${event.started ? 'Started' : 'Using'} the embedded registry at ${event.address} (storage ${event.root})`;
    case 'base.resolved':
      return `${prefix}Using base ${event.base}@${event.digest} for ${event.importPath}`;
    case 'stage.start':
      if (event.stage === 'build' && event.importPath) return `${prefix}Building ${event.importPath} for ${event.platform ?? ''}`.trimEnd();
      return undefined;
    case 'stage.end':
      // A stage that failed is named with its ✗ (a cancelled one is the next save's business).
      return event.ok || event.cancelled ? undefined : `${prefix}✗ ${event.stage} failed after ${ms(event.ms)}`;
    case 'go.build': {
      // A binary's first build says what go did, so a "first" iteration is not mistaken for cold.
      const work = goWorkOf(event);
      if (work) return `${prefix}go build ${event.importPath} (${event.platform}) took ${ms(event.ms)}: ${describeGoWork(work)}`;
      return verbose ? `${prefix}go build ${event.importPath} (${event.platform}) took ${ms(event.ms)}` : undefined;
    }
    case 'layer.built':
      return verbose ? `${prefix}layer ${shortDigest(event.digest)} (${size(event.size)}) in ${ms(event.ms)}` : undefined;
    case 'blob':
      if (event.action === 'known') return verbose ? `${prefix}known blob: ${event.digest}` : undefined;
      return `${prefix}${event.action} blob: ${event.digest} (${size(event.size)})`;
    case 'manifest':
      return event.action === 'existing'
        ? `${prefix}existing manifest: ${event.reference}@${event.digest}`
        : `${prefix}${event.reference}: digest: ${event.digest} size: ${event.size}`;
    case 'retry':
      return `${prefix}retrying ${event.operation} (attempt ${event.attempt}, ${event.cause}) in ${ms(event.delayMs)}`;
    case 'published': {
      const uploaded = event.blobsPushed === 0 ? 'uploaded 0 blobs' : `uploaded ${event.blobsPushed} blob${event.blobsPushed === 1 ? '' : 's'} (${size(event.bytesPushed)})`;
      return `${prefix}Published ${event.reference} (${uploaded}, ${event.blobsSkipped} already there)`;
    }
    case 'iteration.start':
      return `${prefix}change: ${event.trigger.join(', ') || 'start'}`;
    case 'iteration.end': {
      const detail = [event.reference, event.revision, event.url].filter(Boolean).join(' · ');
      const err = event.error ? `: ${event.error.message}` : '';
      const head = `${prefix}${event.result} in ${ms(event.ms)}${detail ? ` · ${detail}` : ''}${err}`;
      return event.error ? [head, ...errorBody(event.error)].join('\n') : head;
    }
    case 'revision.exit': {
      const how = event.signal ? `signal ${event.signal}` : `exit code ${event.code ?? '?'}`;
      const what = event.phase === 'serving' ? 'crashed' : 'exited while starting';
      return [`${prefix}✗ ${event.revision} ${what} (${how})`, ...event.lastLines.map((line) => `  │ ${line}`)].join('\n');
    }
    case 'session.log':
      return `session log: ${event.path}`;
    case 'revision.log':
      return `${prefix}${event.revision} | ${event.line}`;
    case 'rollout':
      return `${prefix}${event.message}`;
    case 'rollout.failed':
      // One line with the target's own reason; a crash's log lines come with the error's detail.
      return `${prefix}rollout failed (${event.target}): ${event.reason}: ${event.message}${event.logs?.length ? ` (${event.logs.length} log lines)` : ''}`;
    case 'preflight':
      return event.ok
        ? `${prefix}${event.target} preflight ok in ${ms(event.ms)}: ${event.message}`
        : `${prefix}${event.target} preflight failed${event.reason ? ` (${event.reason})` : ''}: ${event.message}`;
    case 'error':
      return `${prefix}error: ${event.error.message}${event.error.hint ? ` (hint: ${event.error.hint})` : ''}`;
    default:
      return undefined;
  }
}

/**
 * Everything an error carries under its one line: every compiler diagnostic with all its notes
 * (a `go get …` fix included), else the hint and the tool's own output, indented.
 */
export function errorBody(error: ErrorInfo): string[] {
  const lines: string[] = [];
  if (error.diagnostics && error.diagnostics.length > 0) {
    for (const d of error.diagnostics) {
      lines.push(`  ${d.file}:${d.line}${d.column !== undefined ? `:${d.column}` : ''}: ${d.message}`);
      for (const note of d.notes ?? []) lines.push(`      ${note}`);
    }
    return lines;
  }
  if (error.hint) lines.push(`  hint: ${error.hint}`);
  for (const line of (error.detail ?? '').split('\n')) if (line.trim() && !error.message.includes(line.trim())) lines.push(`  │ ${line}`);
  return lines;
}

export function createPlainReporter(options: PlainReporterOptions): (event: TskoEvent) => void {
  return (event) => {
    const line = formatPlainEvent(event, options.verbose ?? false);
    if (line !== undefined) options.write(line);
  };
}
