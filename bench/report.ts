// bench/results.md: the targets met or missed, the warm-round table (hello and large side by side),
// cold and one-shot timings, bytes per iteration, daemon memory, and for each missed target the
// numbers (stages, paired overheads, RSS parts, profiles) that say why.
import { percentile, type Summary } from './stats.js';
import { LIMITS, STAGES, kbToMb, medianColdRun, paired, servingRss, type ProfileRun, type Results, type ServiceRun, type WarmTsko } from './results.js';
import type { ServiceName } from './options.js';

function cell(x: number | undefined | null): string {
  if (x === undefined || x === null || Number.isNaN(x)) return '–';
  return x >= 100 ? String(Math.round(x)) : String(Math.round(x * 10) / 10);
}

function row(name: string, s: Summary | undefined): string {
  return `| ${name} | ${s?.n ?? 0} | ${cell(s?.median)} | ${cell(s?.p90)} | ${cell(s?.min)} | ${cell(s?.max)} |`;
}

function median(samples: readonly number[] | undefined): number | undefined {
  return samples && samples.length > 0 ? percentile(samples, 0.5) : undefined;
}

function stageMedian(warm: WarmTsko | null | undefined, stage: (typeof STAGES)[number]): number | undefined {
  return median(warm?.stages[stage]);
}

/**
 * The local target's stages a save waits for before it serves: the revision starts from the built
 * binary and serves as soon as it answers, while its layer is packed and pushed.
 */
const SERVING_PATH = ['trigger', 'build', 'deploy', 'ready'] as const;

/** "watch latency 1.5, trigger 5, build 375, layer 20, push 93, deploy 16, ready 4 ms" */
function stageList(warm: WarmTsko | null | undefined, stages: readonly (typeof STAGES)[number][] = STAGES): string {
  if (!warm) return '–';
  return `watch latency ${cell(median(warm.watchLatency))}, ${stages.map((stage) => `${stage} ${cell(stageMedian(warm, stage))}`).join(', ')} ms`;
}

function serviceOf(results: Omit<Results, 'why' | 'notes'>, targetName: string): ServiceRun | undefined {
  const name = targetName.split(':')[0] as ServiceName;
  return results.services[name];
}

/** Why each missed target was missed, from the per-stage numbers, the paired overheads and memory. */
export function explainMisses(results: Omit<Results, 'why' | 'notes'>): string[] {
  const why: string[] = [];
  const s = results.summary;
  for (const target of results.targets) {
    if (target.met !== false) continue;
    const service = serviceOf(results, target.name);
    const name = service?.name;
    if (service && target.name.includes('local save→serving ÷ go build')) {
      const { tsko, goBuild } = service.warm;
      const serving = median(tsko.saveToServing);
      const floor = median(goBuild);
      const build = stageMedian(tsko, 'build');
      const limit = floor !== undefined ? floor * LIMITS.localVsGoBuild : undefined;
      why.push(
        `${name} local: save→serving ${cell(serving)} ms vs go build alone ${cell(floor)} ms; meeting ≤ ${LIMITS.localVsGoBuild}× needs ≤ ${cell(limit)} ms, ${cell(serving !== undefined && limit !== undefined ? serving - limit : undefined)} ms less. ` +
          `Stage medians: ${stageList(tsko)}; it serves after ${SERVING_PATH.join(', ')} (layer and push end after it serves). tsko's build stage is ${build !== undefined && floor ? (build / floor).toFixed(2) : '–'}× go build alone; ` +
          `the rest of save→serving is ${cell(serving !== undefined && build !== undefined ? serving - build : undefined)} ms.`,
      );
    } else if (service && target.name.includes("air's")) {
      const { tsko, air, goBuild } = service.warm;
      const serving = median(tsko.saveToServing);
      const build = stageMedian(tsko, 'build');
      why.push(
        `${name}: tsko save→serving ${cell(serving)} ms vs air ${cell(median(air))} ms (go build alone ${cell(median(goBuild))} ms). ` +
          `Above go build, paired per round: tsko ${cell(median(paired(service.warm.rounds, 'tskoServing')))} ms, air ${cell(median(paired(service.warm.rounds, 'air')))} ms (air: build, kill the old process, start the new one; no image). ` +
          `tsko after its build stage (${cell(build)} ms): ${cell(serving !== undefined && build !== undefined ? serving - build : undefined)} ms (${stageList(tsko, ['trigger', 'deploy', 'ready'])}; layer and push end after it serves). ` +
          `Per round, paired: tsko − air ${cell(median(service.warm.rounds.flatMap((r) => (r.tskoServing !== undefined && r.air !== undefined ? [r.tskoServing - r.air] : []))))} ms.`,
      );
    } else if (service && target.name.includes('remote path')) {
      const remote = service.warm.remote;
      const overhead = s[`${name}: remote overhead above go build`]?.median;
      const koOverhead = s[`${name}: ko overhead above go build`]?.median;
      const limit = koOverhead !== undefined ? koOverhead * LIMITS.remoteVsKoOverhead : undefined;
      why.push(
        `${name} remote path (gzip): save→pushed ${cell(median(remote?.saveToPushed))} ms, ${cell(overhead)} ms above go build alone (paired median); ko build warm is ${cell(koOverhead)} ms above it. ` +
          `Meeting ≤ ${LIMITS.remoteVsKoOverhead}× needs ≤ ${cell(limit)} ms above go build, ${cell(overhead !== undefined && limit !== undefined ? overhead - limit : undefined)} ms less. ` +
          `Stage medians: ${stageList(remote, ['trigger', 'build', 'layer', 'push'])} (build vs go build alone ${cell(median(service.warm.goBuild))} ms); ` +
          `median ${cell(kbToMb(median(remote?.bytesPushed) !== undefined ? (median(remote?.bytesPushed) as number) / 1024 : undefined))} MB pushed per save.`,
      );
    } else if (service && target.name.includes('tsko build warm')) {
      const { tskoBuild, ko, goBuild } = service.warm;
      const floor = median(goBuild);
      const build = median(tskoBuild);
      const koWarm = median(ko);
      why.push(
        `${name}: tsko build warm ${cell(build)} ms vs ko build warm ${cell(koWarm)} ms (limit ${LIMITS.buildVsKo}× = ${cell(koWarm !== undefined ? koWarm * LIMITS.buildVsKo : undefined)} ms); ` +
          `above go build alone (${cell(floor)} ms), paired per round: tsko build ${cell(median(paired(service.warm.rounds, 'tskoBuild')))} ms, ko ${cell(median(paired(service.warm.rounds, 'ko')))} ms. ` +
          `Of that, starting the CLI: \`tsko ${results.oneShot?.version ? 'version' : '--help'}\` takes ${cell(s[results.oneShot?.version ? 'tsko version' : 'tsko --help']?.median)} ms (node -e 0: ${cell(s['node -e 0']?.median)} ms).`,
      );
    } else if (target.name.startsWith('`tsko version`')) {
      const one = results.oneShot;
      if (!one?.version) why.push(`tsko version: ${one?.missing ?? 'not measured'}. \`tsko --help\` (every command loaded) took ${cell(s['tsko --help']?.median)} ms and ${cell(kbToMb(s['tsko --help max RSS kB']?.median))} MB; node -e 0 ${cell(s['node -e 0']?.median)} ms.`);
      else {
        const v = s['tsko version']?.median;
        const n = s['node -e 0']?.median;
        why.push(
          `tsko version: ${cell(v)} ms spawn → exit, of which Node's own start-up (node -e 0) is ${cell(n)} ms: ${cell(v !== undefined && n !== undefined ? v - n : undefined)} ms are tsko's (loading its modules); ` +
            `max RSS ${cell(kbToMb(s['tsko version max RSS kB']?.median))} MB vs ${cell(kbToMb(s['node -e 0 max RSS kB']?.median))} MB.`,
        );
      }
    } else if (target.name.includes('VmRSS serving')) {
      const memory = results.services.large?.memory;
      const peak = servingRss(memory);
      const heap = memory?.heap;
      why.push(
        `large daemon: VmRSS ${cell(kbToMb(peak?.rssKb))} MB = anonymous (JS heap, malloc, buffers) ${cell(kbToMb(peak?.anonKb))} + file-backed (node binary, libraries) ${cell(kbToMb(peak?.fileKb))} MB; peak during saves (VmHWM) ${cell(kbToMb(peak?.hwmKb))} MB` +
          (peak?.wrapperRssKb !== undefined ? `; plus the re-exec wrapper process (bin/tsko.js) ${cell(kbToMb(peak.wrapperRssKb))} MB, which the target allows none of` : '') +
          (memory?.remote ? `; the remote-path daemon ${cell(kbToMb(memory.remote.rssKb))} MB` : '') +
          '.' +
          (heap
            ? ` A heap snapshot: live JS heap ${heap.liveMb} MB of ${cell(kbToMb(heap.rssKb))} MB RSS; largest: ${heap.top
                .slice(0, 6)
                .map((g) => `\`${g.name}\` ${Math.round(g.bytes / 1024)} KB (${g.count})`)
                .join(', ')}.`
            : ''),
      );
    } else if (target.name.includes('RSS growth') && results.rss) {
      const heap = results.rss.heap;
      const samples = results.rss.samples;
      const first = samples.find((x) => x.save === results.rss?.baselineSave);
      const last = samples[samples.length - 1];
      const part = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? `${kbToMb(b - a)}` : '–');
      why.push(
        `hello RSS growth: of the growth from save ${first?.save ?? '–'} to ${last?.save ?? '–'}, anonymous memory (JS heap, malloc, buffers) is ${part(first?.anonKb, last?.anonKb)} MB and file-backed ${part(first?.fileKb, last?.fileKb)} MB.` +
          (heap
            ? ` Over ${heap.saves} more saves after the phase, the live JS heap (heap snapshots) went ${heap.beforeMb} → ${heap.afterMb} MB while RSS went ${kbToMb(heap.rssBeforeKb)} → ${kbToMb(heap.rssAfterKb)} MB; ` +
              `largest heap growth: ${
                heap.top
                  .filter((g) => g.bytesDelta > 0)
                  .slice(0, 6)
                  .map((g) => `\`${g.name}\` +${Math.round(g.bytesDelta / 1024)} KB (${g.countDelta >= 0 ? '+' : ''}${g.countDelta})`)
                  .join(', ') || 'none'
              }.`
            : ''),
      );
    }
  }
  return why;
}

const SERVICE_ROWS: Array<[label: string, key: string]> = [
  ['**go build alone** (floor)', 'go build alone'],
  ['**tsko dev, local: save → serving**', 'tsko save→serving'],
  ['tsko dev, local: save → pushed', 'tsko save→pushed'],
  ['&nbsp;&nbsp;save → file event (watch latency)', 'tsko watch latency'],
  ...STAGES.map((stage): [string, string] => [`&nbsp;&nbsp;stage ${stage}`, `tsko stage ${stage}`]),
  ['**air: save → serving**', 'air save→serving'],
  ['**ko build warm**', 'ko build warm'],
  ['**tsko build warm**', 'tsko build warm'],
  ['**tsko dev, remote path (gzip): save → pushed**', 'remote save→pushed'],
  ...(['build', 'layer', 'push'] as const).map((stage): [string, string] => [`&nbsp;&nbsp;remote stage ${stage}`, `remote stage ${stage}`]),
  ['remote path: save→pushed − go build (paired)', 'remote overhead above go build'],
  ['ko build warm − go build (paired)', 'ko overhead above go build'],
];

function serviceTable(results: Results): string[] {
  const names = Object.keys(results.services) as ServiceName[];
  const s = results.summary;
  const lines = [
    `| measure | ${names.map((n) => `${n} n | ${n} median | ${n} p90`).join(' | ')} |`,
    `|---|${names.map(() => '---:|---:|---:').join('|')}|`,
  ];
  for (const [label, key] of SERVICE_ROWS) {
    const cells = names.map((n) => {
      const x = s[`${n}: ${key}`];
      return `${x?.n ?? 0} | ${cell(x?.median)} | ${cell(x?.p90)}`;
    });
    if (names.every((n) => !s[`${n}: ${key}`])) continue;
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  const once = (label: string, value: (run: ServiceRun | undefined) => number | null | undefined) =>
    lines.push(`| ${label} | ${names.map((n) => ['1', cell(value(results.services[n])), ''].join(' | ')).join(' | ')} |`);
  once('static binary (MB)', (run) => (run?.binaryBytes ? Math.round((run.binaryBytes / 2 ** 20) * 10) / 10 : null));
  once('go build before the rounds (first in this GOCACHE)', (run) => run?.prepareGoBuildMs);
  return lines;
}

function profileLines(p: ProfileRun): string[] {
  const head =
    p.saves > 0
      ? `**${p.subject}** daemon (\`node --cpu-prof\`, ${p.saves} warm saves, stage medians ${STAGES.map((st) => `${st} ${cell(p.stageMedians[st])}`).join(', ')} ms): ${p.busyMs} ms on the daemon's main thread of ${p.wallMs} ms wall.`
      : `**${p.subject}** (\`node --cpu-prof\`, one warm run, spawn to exit): ${p.busyMs} ms on the main thread of ${p.wallMs} ms wall.`;
  return [
    head,
    '',
    '| function | self ms | % of busy |',
    '|---|---:|---:|',
    ...p.topFunctions.map((f) => `| \`${f.name}\` | ${f.selfMs} | ${f.percent} |`),
    '',
    '| file | self ms | % of busy |',
    '|---|---:|---:|',
    ...p.topFiles.map((f) => `| \`${f.name}\` | ${f.selfMs} | ${f.percent} |`),
    '',
  ];
}

export function renderMarkdown(results: Results): string {
  const s = results.summary;
  const m = results.machine;
  const lines: string[] = [];
  lines.push('# tsko benchmark results', '');
  lines.push(
    `Run ${results.startedAt} (${Math.round(results.durationS)} s${results.quick ? ', --quick' : ''}) on ${m.cores} cores (${m.cpuModel}), ${m.memoryGb} GB, Linux ${m.kernel}; ` +
      `Node ${m.node}, ${m.go}, ko ${m.ko ?? 'not available'}, air ${m.air ?? 'not available'}; tsko ${m.tsko}. Load average (1 min) ${m.loadavgStart[0]} at the start, ${m.loadavgEnd[0]} at the end.` +
      (Object.keys(m.env ?? {}).length > 0 ? ` Env: ${Object.entries(m.env).map(([k, v]) => `${k}=${v}`).join(' ')}.` : ''),
    '',
  );
  lines.push(
    'Services: `examples/hello` and `bench/fixtures/large` (grpc, client-go, prometheus). Saves are in-place writes of a temp copy of `main.go` changing the `version` string; times are from the write. ' +
      'Each warm round is, per service, one tsko save (local target), one `go build` alone, one `ko build`, one `tsko build`, one air save and (large) one save on the remote-path daemon (`--layer-compression gzip` into a separate registry), interleaved so load from other work hits all alike. Raw samples: `results.json`.',
    '',
  );
  lines.push('## Targets', '', '| target | limit | measured | |', '|---|---|---|---|');
  for (const t of results.targets) lines.push(`| ${t.name} | ${t.limit} | ${t.measured} | ${t.met === null ? 'n/a' : t.met ? 'met' : t.info ? 'missed (info)' : '**missed**'}${t.info && t.met !== false ? ' (info)' : ''} |`);
  lines.push('');

  lines.push('## Warm rounds (ms)', '', ...serviceTable(results), '');

  const cold = results.cold;
  if (cold) {
    const c = medianColdRun(cold.tsko);
    lines.push('## Cold, hello (ms)', '', '| measure | n | median | p90 | min | max |', '|---|---:|---:|---:|---:|---:|');
    lines.push(row('**tsko cold: spawn → pushed**', s['tsko cold spawn→pushed']));
    lines.push(row('tsko cold: spawn → serving', s['tsko cold spawn→serving']));
    lines.push(
      `| &nbsp;&nbsp;median cold run: startup ${cell(c?.startup)}, build ${cell(c?.stages.build)}, layer ${cell(c?.stages.layer)}, push ${cell(c?.stages.push)}, deploy ${cell(c?.stages.deploy)}, ready ${cell(c?.stages.ready)} | | | | | |`,
    );
    lines.push(row('**ko build cold**', s['ko build cold']));
    lines.push(`| go build alone, cold (empty GOCACHE) | ${cold.goBuild === null ? 0 : 1} | ${cell(cold.goBuild)} | | | |`);
    lines.push(`| &nbsp;&nbsp;then \`go tool buildid\` (ko runs it after each build; built on first use since Go 1.25) | ${cold.goToolBuildid === null ? 0 : 1} | ${cell(cold.goToolBuildid)} | | | |`);
    lines.push(row('hello: tsko save → serving over the RSS phase', s['tsko RSS-phase save→serving']));
    lines.push('');
  }

  const one = results.oneShot;
  if (one) {
    lines.push('## One-shot commands', '', '| command (spawn → exit) | n | median ms | p90 ms | max RSS MB (median) |', '|---|---:|---:|---:|---:|');
    const oneRow = (label: string, key: string) => {
      const x = s[key];
      if (x) lines.push(`| ${label} | ${x.n} | ${cell(x.median)} | ${cell(x.p90)} | ${cell(kbToMb(s[`${key} max RSS kB`]?.median))} |`);
    };
    oneRow('`tsko version`', 'tsko version');
    if (!one.version) lines.push(`| \`tsko version\` | 0 | missing: ${one.missing ?? ''} | | |`);
    oneRow('`tsko --help` (stand-in while `version` is missing)', 'tsko --help');
    oneRow('`node -e 0` (Node start-up)', 'node -e 0');
    for (const name of Object.keys(results.services) as ServiceName[]) {
      lines.push(`| \`tsko build\` warm, ${name} | ${s[`${name}: tsko build warm`]?.n ?? 0} | ${cell(s[`${name}: tsko build warm`]?.median)} | ${cell(s[`${name}: tsko build warm`]?.p90)} | |`);
      lines.push(`| \`ko build\` warm, ${name} | ${s[`${name}: ko build warm`]?.n ?? 0} | ${cell(s[`${name}: ko build warm`]?.median)} | ${cell(s[`${name}: ko build warm`]?.p90)} | |`);
    }
    lines.push('');
  }

  lines.push('## Bytes per iteration', '');
  for (const service of Object.values(results.services)) {
    const { tsko, remote } = service.warm;
    lines.push(
      `- ${service.name}: local save median ${cell(median(tsko.bytesPushed))} bytes pushed (${cell(median(tsko.blobsPushed))} blobs pushed, ${cell(median(tsko.blobsSkipped))} skipped)` +
        (remote ? `; remote path (gzip) ${cell(median(remote.bytesPushed))} bytes (${cell(median(remote.blobsPushed))} pushed, ${cell(median(remote.blobsSkipped))} skipped)` : '') +
        '.',
    );
  }
  if (cold) {
    const c = medianColdRun(cold.tsko);
    lines.push(`- hello cold: ${c?.bytesPushed ?? '–'} bytes in ${c?.blobsPushed ?? '–'} blobs. Comment-only: ${results.comment.map((x) => `${x.bytesPushed} bytes (${x.result}, ${cell(x.saveToEnd)} ms)`).join('; ') || '–'}.`);
  }
  lines.push('');

  lines.push('## Daemon memory', '');
  for (const service of Object.values(results.services)) {
    const memory = service.memory;
    if (!memory || memory.samples.length === 0) continue;
    const peak = servingRss(memory);
    lines.push(
      `- ${service.name}, serving (VmRSS of the process that serves${memory.wrapper ? ', the child of the re-exec wrapper' : ''}; its embedded registry included, revisions not), after each warm round: ` +
        `${memory.samples.map((x) => `${cell(kbToMb(x.rssKb))}`).join(', ')} MB; max ${cell(kbToMb(peak?.rssKb))} MB (anonymous ${cell(kbToMb(peak?.anonKb))}, file-backed ${cell(kbToMb(peak?.fileKb))}); VmHWM ${cell(kbToMb(peak?.hwmKb))} MB` +
        (peak?.wrapperRssKb !== undefined ? `; re-exec wrapper ${cell(kbToMb(peak.wrapperRssKb))} MB` : '; no wrapper process') +
        (memory.remote ? `; remote-path daemon ${cell(kbToMb(memory.remote.rssKb))} MB` : '') +
        '.',
    );
    if (memory.heap) lines.push(`  Heap snapshot: live JS heap ${memory.heap.liveMb} MB of ${cell(kbToMb(memory.heap.rssKb))} MB RSS.`);
  }
  if (results.rss) {
    const r = results.rss;
    lines.push(
      `- hello over ${r.finalSave} saves: ${kbToMb(r.baselineKb)} MB at save ${r.baselineSave}, ${kbToMb(r.finalKb)} MB after save ${r.finalSave} ` +
        `(${r.growthMb} MB growth; ${Math.round(r.elapsedS)} s${r.bounded ? ', stopped by the time bound' : ''}). Samples (save: MB): ${r.samples.map((x) => `${x.save}: ${kbToMb(x.kb)}`).join(', ')}.`,
    );
    if (r.heap) {
      lines.push(`  Heap snapshots around ${r.heap.saves} more saves after the phase: live JS heap ${r.heap.beforeMb} → ${r.heap.afterMb} MB, VmRSS ${kbToMb(r.heap.rssBeforeKb)} → ${kbToMb(r.heap.rssAfterKb)} MB.`);
    }
  }
  lines.push('');
  if (results.shutdown) {
    const d = results.shutdown;
    lines.push(`Shutdown (hello daemon): SIGTERM → exit in ${cell(d.ms)} ms${d.exitedByItself ? '' : ' (had to be killed)'}; processes left behind: ${d.leftoverPids.length}.`, '');
  }
  if (results.why.length > 0 || results.profiles.length > 0) {
    lines.push('## Why targets were missed', '');
    for (const w of results.why) lines.push(`- ${w}`);
    lines.push('');
    for (const p of results.profiles) lines.push(...profileLines(p));
  }
  if (results.koUnavailable) lines.push(`ko was not available: ${results.koUnavailable}`, '');
  if (results.airUnavailable) lines.push(`air was not available: ${results.airUnavailable}`, '');
  if (results.notes.length > 0) lines.push('## Notes', '', ...results.notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}
