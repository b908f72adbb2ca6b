// One service's block: its name, import path and URL; the timing table; the last result; the
// files that triggered the current iteration; a failure's diagnostics with what still serves;
// and the history bars.
import { Text } from 'ink';
import { currentCrash, currentIteration, errorLines, fitErrorLines, resultLine, serviceTone, triggerText } from '../describe.js';
import { displayPath } from '../format.js';
import type { Plan } from '../layout.js';
import type { ServiceState } from '../state.js';
import { Paint } from '../theme.js';
import { History } from './history.js';
import { SPINNER, StageTable } from './stage-table.js';

export interface ServiceProps {
  service: ServiceState;
  plan: Plan;
  now: number;
  frame: number;
  width: number;
  cwd: string | undefined;
}

export function ServiceBlock({ service, plan, now, frame, width, cwd }: ServiceProps) {
  const tone = serviceTone(service);
  const mark = tone === 'run' ? (SPINNER[frame % SPINNER.length] as string) : tone === 'ok' ? '✓' : tone === 'fail' ? '✗' : tone === 'warn' ? '↻' : '○';
  const current = currentIteration(service);
  const result = resultLine(service);
  const errors = fitErrorLines(errorLines(service, now), plan.errorLines, currentCrash(service) ? 'tail' : 'head');
  const url = service.serving?.url;
  const queued = service.queued.map((f) => displayPath(f, cwd)).join(', ');
  return (
    <>
      <Text wrap="truncate-end">
        <Paint tone={tone}>{mark}</Paint> <Text bold>{service.name}</Text>
        {service.importPath && !plan.compact ? <Paint tone="dim">{`  ${service.importPath}`}</Paint> : null}
        {url ? <Text underline>{`  ${url}`}</Text> : null}
      </Text>
      <StageTable service={service} current={current} plan={plan} now={now} frame={frame} />
      <Text wrap="truncate-end">
        {'  '}
        {result ? (
          <>
            <Paint tone={result.tone}>{result.symbol}</Paint> <Text bold>{result.parts[0]}</Text>
            {result.parts.length > 1 ? ` · ${result.parts.slice(1).join(' · ')}` : ''}
          </>
        ) : (
          <Paint tone="dim">{current ? 'first build…' : 'waiting for the first build'}</Paint>
        )}
      </Text>
      {plan.files ? (
        <Text wrap="truncate-end">
          {'  '}
          {queued ? (
            <>
              <Paint tone="warn">queued</Paint>
              {` ${queued} (paused: p resumes)`}
            </>
          ) : (
            <>
              <Paint tone="dim">{current?.end ? 'changed ' : 'building '}</Paint>
              {triggerText(current, cwd)}
            </>
          )}
        </Text>
      ) : null}
      {errors.map((line, i) => (
        <Text key={i} wrap="truncate-end">
          {'  '}
          {line.lead ? (
            <>
              <Paint tone={line.tone} bold={line.tone === 'fail'}>
                {line.lead}
              </Paint>{' '}
            </>
          ) : null}
          {line.lead ? line.text : <Paint tone={line.tone}>{line.text}</Paint>}
        </Text>
      ))}
      {plan.historyTitle ? <History service={service} rows={plan.historyRows} barWidth={plan.barWidth} width={width} cwd={cwd} /> : null}
      {plan.gaps ? <Text> </Text> : null}
    </>
  );
}
