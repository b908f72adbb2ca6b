// One-shot commands timed from spawn to exit, with the child's peak RSS: `tsko version` beside
// `node -e 0` (what any Node CLI costs to start here), and `tsko build` beside `ko build`.
// The peak RSS comes from the child itself: a tiny preload (`--require`) writes
// `process.resourceUsage().maxRSS` to a file as the process exits, so no /usr/bin/time is needed.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tail, type Children } from './children.js';

const PROBE = `// Written by the tsko bench: the peak RSS of this process, in kB, into $TSKO_BENCH_RSS_FILE at exit.
const { writeFileSync } = require('node:fs');
process.on('exit', () => {
  try { writeFileSync(process.env.TSKO_BENCH_RSS_FILE, String(process.resourceUsage().maxRSS)); } catch {}
});
`;

export interface CommandRun {
  ms: number;
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
  /** ru_maxrss of the process, kB (only when run with the probe). */
  maxRssKb?: number;
}

export class OneShotRunner {
  private constructor(
    private readonly children: Children,
    private readonly probe: string,
    private readonly dir: string,
  ) {}

  static async create(children: Children, dir: string): Promise<OneShotRunner> {
    const probe = join(dir, 'rss-probe.cjs');
    await writeFile(probe, PROBE);
    return new OneShotRunner(children, probe, dir);
  }

  /**
   * `node ...args` from spawn to exit. With `rss`, the probe is preloaded (through NODE_OPTIONS, so
   * the command line stays the one a user types) and the child's peak RSS read back.
   */
  async node(args: readonly string[], options: { cwd: string; env: Record<string, string>; timeoutMs: number; rss?: boolean; extraNodeOptions?: string }): Promise<CommandRun> {
    const rssFile = join(this.dir, `rss-${process.hrtime.bigint()}`);
    const nodeOptions = [options.rss ? `--require=${this.probe}` : '', options.extraNodeOptions ?? ''].filter(Boolean).join(' ');
    const env = { ...options.env, ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}), ...(options.rss ? { TSKO_BENCH_RSS_FILE: rssFile } : {}) };
    const started = performance.now();
    const result = await this.children.spawn(process.execPath, args, { cwd: options.cwd, env, extendEnv: false, timeout: options.timeoutMs, stdin: 'ignore' });
    const ms = performance.now() - started;
    let maxRssKb: number | undefined;
    if (options.rss) {
      const text = await readFile(rssFile, 'utf8').catch(() => '');
      maxRssKb = text ? Number(text) : undefined;
      await rm(rssFile, { force: true });
    }
    return {
      ms,
      exitCode: result.exitCode,
      stdout: String(result.stdout ?? ''),
      stderr: tail(String(result.stderr ?? ''), 5),
      ...(maxRssKb !== undefined && Number.isFinite(maxRssKb) ? { maxRssKb } : {}),
    };
  }
}
