// bench/results.md: the timing table (medians and p90s), the targets met or missed, bytes per
// iteration, RSS, and for each missed target the numbers (stages, profile) that say why.
import { percentile, type Summary } from './stats.js';
import { STAGES, kbToMb, medianColdRun, type Results } from './results.js';

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

/** Why each missed target was missed, from the per-stage numbers and the profile. */
export function explainMisses(results: Omit<Results, 'why' | 'notes'>): string[] {
  const why: string[] = [];
  const { tsko, goBuild, ko } = results.warm;
  const build = median(tsko.stages.build);
  const pushed = median(tsko.saveToPushed);
  const floor = median(goBuild);
  const rest = (label: string) => {
    const parts = ['trigger', 'layer', 'push']
      .map((stage) => `${stage} ${cell(median(tsko.stages[stage as keyof typeof tsko.stages]))}`)
      .join(', ');
    return `${label}: build stage median ${cell(build)} ms vs go build alone ${cell(floor)} ms (${build !== undefined && floor ? (build / floor).toFixed(2) : '–'}×); ` +
      `the rest of save→pushed ${cell(pushed !== undefined && build !== undefined ? pushed - build : undefined)} ms (watch latency ${cell(median(tsko.watchLatency))}, ${parts} ms).`;
  };
  for (const target of results.targets) {
    if (target.met !== false) continue;
    if (target.name.includes('go build alone')) {
      const limit = floor !== undefined ? floor * 1.3 : undefined;
      why.push(
        `${rest('save→pushed vs go build')}` +
          (limit !== undefined && pushed !== undefined ? ` Meeting it needs save→pushed ≤ ${cell(limit)} ms, ${cell(pushed - limit)} ms less than now.` : ''),
      );
    }
    else if (target.name.includes("ko's warm")) {
      const koWarm = median(ko);
      const limit = koWarm !== undefined ? koWarm / 2 : undefined;
      const room = limit !== undefined && floor !== undefined ? limit - floor : undefined;
      const reach =
        room === undefined
          ? ''
          : room <= 0
            ? ` Out of reach for anything that runs go build: 0.5 × ko (${cell(limit)} ms) is below go build alone (${cell(floor)} ms).`
            : ` Meeting it needs save→pushed ≤ ${cell(limit)} ms: at most ${cell(room)} ms above go build alone (${cell(floor)} ms), for watching, layering and pushing together; ko's own overhead over go build is ${cell(koWarm !== undefined && floor !== undefined ? koWarm - floor : undefined)} ms.`;
      why.push(`${rest('save→pushed vs ko')} ko warm median ${cell(koWarm)} ms.${reach}`);
    } else if (target.name.includes('cold')) {
      const c = medianColdRun(results.cold.tsko);
      why.push(
        `cold (median run): spawn→pushed ${cell(c?.spawnToPushed)} ms = startup ${cell(c?.startup)} (config, registry, go list, watcher) + build ${cell(c?.stages.build)} + layer ${cell(c?.stages.layer)} + push ${cell(c?.stages.push)} ms; ko cold median ${cell(median(results.cold.ko))} ms. Both compile the standard library into an empty GOCACHE.`,
      );
    } else if (target.name.includes('comment-only')) {
      why.push(`comment-only: ${target.measured}.`);
    } else if (target.name.includes('RSS') && results.rss) {
      const heap = results.rss.heap;
      const samples = results.rss.samples;
      const first = samples.find((x) => x.save === results.rss?.baselineSave);
      const last = samples[samples.length - 1];
      const part = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined ? `${kbToMb(b - a)}` : '–');
      why.push(
        `RSS: of the growth from save ${first?.save ?? '–'} to ${last?.save ?? '–'}, anonymous memory (JS heap, malloc, buffers) is ${part(first?.anonKb, last?.anonKb)} MB and file-backed ${part(first?.fileKb, last?.fileKb)} MB.` +
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

export function renderMarkdown(results: Results): string {
  const s = results.summary;
  const m = results.machine;
  const c = medianColdRun(results.cold.tsko);
  const lines: string[] = [];
  lines.push('# tsko benchmark results', '');
  lines.push(
    `Run ${results.startedAt} (${Math.round(results.durationS)} s${results.quick ? ', --quick' : ''}) on ${m.cores} cores (${m.cpuModel}), ${m.memoryGb} GB, Linux ${m.kernel}; ` +
      `Node ${m.node}, ${m.go}, ko ${m.ko ?? 'not available'}; tsko ${m.tsko}. Load average (1 min) ${m.loadavgStart[0]} at the start, ${m.loadavgEnd[0]} at the end.` +
      (Object.keys(m.env ?? {}).length > 0 ? ` Env: ${Object.entries(m.env).map(([k, v]) => `${k}=${v}`).join(' ')}.` : ''),
    '',
  );
  lines.push(
    'Saves are in-place writes of `examples/hello/main.go` (a temp copy) changing the `version` string; times are from the write. ' +
      'Each warm round is one tsko save, one `go build`, one `ko build`, interleaved so load from other work hits all three alike. Raw samples: `results.json`.',
    '',
  );
  lines.push('## Timings (ms)', '', '| measure | n | median | p90 | min | max |', '|---|---:|---:|---:|---:|---:|');
  lines.push(row('**tsko cold: spawn → pushed**', s['tsko cold spawn→pushed']));
  lines.push(row('tsko cold: spawn → serving', s['tsko cold spawn→serving']));
  lines.push(
    `| &nbsp;&nbsp;median cold run: startup ${cell(c?.startup)}, build ${cell(c?.stages.build)}, layer ${cell(c?.stages.layer)}, push ${cell(c?.stages.push)}, deploy ${cell(c?.stages.deploy)}, ready ${cell(c?.stages.ready)} | | | | | |`,
  );
  lines.push(row('**ko build cold**', s['ko build cold']));
  lines.push(`| go build alone, cold (empty GOCACHE) | ${results.cold.goBuild === null ? 0 : 1} | ${cell(results.cold.goBuild)} | | | |`);
  lines.push(`| &nbsp;&nbsp;then \`go tool buildid\` (ko runs it after each build; built on first use since Go 1.25) | ${results.cold.goToolBuildid === null ? 0 : 1} | ${cell(results.cold.goToolBuildid)} | | | |`);
  lines.push(row('**tsko warm: save → pushed**', s['tsko warm save→pushed']));
  lines.push(row('**tsko warm: save → serving**', s['tsko warm save→serving']));
  lines.push(row('&nbsp;&nbsp;save → file event (watch latency)', s['tsko warm watch latency']));
  for (const stage of STAGES) lines.push(row(`&nbsp;&nbsp;stage ${stage}`, s[`tsko warm stage ${stage}`]));
  lines.push(row('**go build alone** (floor)', s['go build alone (floor)']));
  lines.push(row('**ko build warm**', s['ko build warm']));
  lines.push(row(`tsko save → serving over the RSS phase`, s['tsko RSS-phase save→serving']));
  lines.push('');
  lines.push('## Targets', '', '| target | limit | measured | |', '|---|---|---|---|');
  for (const t of results.targets) lines.push(`| ${t.name} | ${t.limit} | ${t.measured} | ${t.met === null ? 'n/a' : t.met ? 'met' : '**missed**'} |`);
  lines.push('');
  const bytes = s['tsko warm bytes pushed'];
  lines.push('## Bytes per iteration', '');
  lines.push(
    `Warm save: median ${cell(bytes?.median)} bytes pushed (${cell(median(results.warm.tsko.blobsPushed))} blobs pushed, ${cell(median(results.warm.tsko.blobsSkipped))} skipped). ` +
      `Cold: ${c?.bytesPushed ?? '–'} bytes in ${c?.blobsPushed ?? '–'} blobs. Comment-only: ${results.comment.map((x) => `${x.bytesPushed} bytes (${x.result}, ${cell(x.saveToEnd)} ms)`).join('; ')}.`,
    '',
  );
  if (results.rss) {
    const r = results.rss;
    lines.push('## Daemon RSS', '');
    lines.push(
      `VmRSS of the \`tsko dev\` process (its embedded registry included, revisions not): ${kbToMb(r.baselineKb)} MB at save ${r.baselineSave}, ${kbToMb(r.finalKb)} MB after save ${r.finalSave} ` +
        `(${r.growthMb} MB growth; ${Math.round(r.elapsedS)} s${r.bounded ? ', stopped by the time bound' : ''}). Samples (save: MB): ${r.samples.map((x) => `${x.save}: ${kbToMb(x.kb)}`).join(', ')}.`,
      '',
    );
    if (r.heap) {
      lines.push(
        `Heap snapshots around ${r.heap.saves} more saves after the phase: live JS heap ${r.heap.beforeMb} → ${r.heap.afterMb} MB, VmRSS ${kbToMb(r.heap.rssBeforeKb)} → ${kbToMb(r.heap.rssAfterKb)} MB.`,
        '',
      );
    }
  }
  if (results.shutdown) {
    const d = results.shutdown;
    lines.push(`Shutdown: SIGTERM → exit in ${cell(d.ms)} ms${d.exitedByItself ? '' : ' (had to be killed)'}; processes left behind: ${d.leftoverPids.length}.`, '');
  }
  if (results.why.length > 0 || results.profile) {
    lines.push('## Why targets were missed', '');
    for (const w of results.why) lines.push(`- ${w}`);
    const p = results.profile;
    if (p) {
      lines.push(
        '',
        `Daemon CPU profile (\`node --cpu-prof\`, ${p.saves} warm saves, stage medians ${STAGES.map((st) => `${st} ${cell(p.stageMedians[st])}`).join(', ')} ms): ` +
          `${p.busyMs} ms on the daemon's main thread of ${p.wallMs} ms wall. Top self time by function:`,
        '',
        '| function | self ms | % of busy |',
        '|---|---:|---:|',
        ...p.topFunctions.map((f) => `| \`${f.name}\` | ${f.selfMs} | ${f.percent} |`),
        '',
        'By file:',
        '',
        '| file | self ms | % of busy |',
        '|---|---:|---:|',
        ...p.topFiles.map((f) => `| \`${f.name}\` | ${f.selfMs} | ${f.percent} |`),
      );
    }
    lines.push('');
  }
  if (results.koUnavailable) lines.push(`ko was not available: ${results.koUnavailable}`, '');
  if (results.notes.length > 0) lines.push('## Notes', '', ...results.notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}
