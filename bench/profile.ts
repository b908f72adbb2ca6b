// Reads a V8 .cpuprofile (what `node --cpu-prof` writes) into the top self-time functions and
// files, so a missed target comes with the place the daemon's own time went.
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  name: string;
  selfMs: number;
  /** Share of the non-idle time. */
  percent: number;
}

export interface ProfileSummary {
  wallMs: number;
  busyMs: number;
  topFunctions: SelfTime[];
  topFiles: SelfTime[];
}

/** Only samples taken between these ms after the profile started (the saves, not the startup). */
export interface ProfileWindow {
  fromMs: number;
  toMs: number;
}

export async function summarizeProfile(path: string, repoRoot: string, window?: ProfileWindow, top = 12): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
  const fromUs = (window?.fromMs ?? 0) * 1000;
  const toUs = window ? window.toMs * 1000 : Number.POSITIVE_INFINITY;
  let atUs = 0;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    atUs += us;
    if (atUs < fromUs || atUs > toUs) return;
    if (!node || node.callFrame.functionName === '(idle)') return;
    busyUs += us;
    const file = shortUrl(node.callFrame.url, repoRoot) || node.callFrame.functionName;
    const name = `${node.callFrame.functionName || '(anonymous)'} ${file}${node.callFrame.url ? `:${node.callFrame.lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    byFile.set(file, (byFile.get(file) ?? 0) + us);
  });
  const rank = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 100) / 10, percent: busyUs > 0 ? Math.round((us / busyUs) * 1000) / 10 : 0 }));
  return {
    wallMs: Math.round((Math.min(toUs, profile.endTime - profile.startTime) - fromUs) / 1000),
    busyMs: Math.round(busyUs / 1000),
    topFunctions: rank(byFunction),
    topFiles: rank(byFile),
  };
}

function shortUrl(url: string, repoRoot: string): string {
  return url.replace(`file://${repoRoot}/`, '').replace(/^file:\/\//, '');
}
