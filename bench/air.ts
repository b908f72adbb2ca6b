// air (github.com/air-verse/air), the plain-restart peer: `go build` on every save, then kill the
// old process and start the new binary. Installed once like ko; run on its own copy of a service
// with a generated .air.toml (no delay, the same `go build -trimpath` as tsko, the service on its
// own PORT); a save is timed from the write until that port answers the new version string.
// air v1.67 reads `delay = 0` from a file as "unset" (its 1 s default stays), so the flag sets it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep, tail, type Children } from './children.js';
import { ensureGoTool, type KoBinary } from './ko.js';
import type { ServiceCopy } from './edit.js';

export const AIR_MODULE = 'github.com/air-verse/air';

/** How often the port is asked while waiting for the new version: the resolution of air's times. */
export const AIR_POLL_MS = 10;

export function ensureAir(children: Children, version: string, env: NodeJS.ProcessEnv): Promise<KoBinary> {
  return ensureGoTool(children, { module: AIR_MODULE, name: 'air', version, versionArgs: ['-v'] }, env);
}

/** The config: air's defaults where they do not slow a save; `delay = 0` as the issue asks. */
function airToml(binary: string): string {
  return [
    'root = "."',
    'tmp_dir = "tmp"',
    '',
    '[build]',
    `cmd = "go build -trimpath -o ${binary} ."`,
    `entrypoint = [${JSON.stringify(binary)}]`,
    'include_ext = ["go"]',
    'exclude_dir = ["tmp"]',
    // Ignored from the file (air merges it over its 1000 ms default, which wins over a zero): the
    // command line's --build.delay 0 sets it.
    'delay = 0',
    'stop_on_error = true',
    // A save (truncate, then write) is two file events; with no delay air would build twice, the
    // second build running on into the next measurement. Its checksum check builds once.
    'exclude_unchanged = true',
    // SIGKILL the old process at once (air's default), as tsko replaces a revision.
    'send_interrupt = false',
    'kill_delay = "0s"',
    '',
    '[log]',
    'time = false',
    '',
    '[screen]',
    'clear_on_rebuild = false',
    '',
    '[misc]',
    'clean_on_exit = true',
    '',
    '[proxy]',
    'enabled = false',
    '',
  ].join('\n');
}

export class AirRunner {
  private output = '';
  private partial = '';
  /** How many builds air has started (its "building..." lines). */
  private builds = 0;

  private constructor(
    private readonly children: Children,
    readonly child: ReturnType<Children['spawn']>,
    readonly port: number,
  ) {}

  /** Start air in the copy's dir and wait (bounded) until its first build serves `version`. */
  static async start(
    children: Children,
    options: { air: string; copy: ServiceCopy; port: number; env: Record<string, string>; version: string; timeoutMs: number },
  ): Promise<AirRunner> {
    // An absolute binary path: the bench's cleanup finds leftover processes by their temp dir.
    const binary = join(options.copy.dir, 'tmp', 'main');
    const config = join(options.copy.dir, '.air.toml');
    await writeFile(config, airToml(binary));
    const child = children.spawn(options.air, ['-c', config, '--build.delay', '0'], {
      cwd: options.copy.dir,
      env: { ...options.env, PORT: String(options.port), CGO_ENABLED: '0' },
      extendEnv: false,
      stdin: 'ignore',
      buffer: false,
    });
    const runner = new AirRunner(children, child, options.port);
    const keep = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      runner.output = (runner.output + text).slice(-20000);
      const lines = (runner.partial + text).split('\n');
      runner.partial = (lines.pop() ?? '').slice(-1000);
      runner.builds += lines.filter((line) => line.includes('building...')).length;
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    await runner.waitServing(options.version, Date.now(), options.timeoutMs);
    return runner;
  }

  /**
   * Poll the port until it answers with `version`; ms from `savedAt` (Date.now() before the write).
   * Bounded by `timeoutMs`; throws with air's output when it does not get there.
   */
  async waitServing(version: string, savedAt: number, timeoutMs: number): Promise<number> {
    const deadline = savedAt + timeoutMs;
    let exited = false;
    void this.child.finally(() => {
      exited = true;
    });
    for (;;) {
      try {
        const response = await fetch(`http://127.0.0.1:${this.port}/`, { signal: AbortSignal.timeout(2000) });
        const body = await response.text();
        if (body.includes(version)) return Date.now() - savedAt;
      } catch {
        // the old process is gone and the new one not listening yet
      }
      if (exited) throw new Error(`air exited while waiting for "${version}":\n${this.outputTail()}`);
      if (Date.now() > deadline) throw new Error(`air: port ${this.port} did not serve "${version}" within ${timeoutMs} ms:\n${this.outputTail()}`);
      await sleep(AIR_POLL_MS);
    }
  }

  /** Builds air started so far: a save that starts two (one per file event) shows here. */
  get buildsStarted(): number {
    return this.builds;
  }

  outputTail(): string {
    return tail(this.output);
  }

  stop(): Promise<void> {
    return this.children.stop(this.child);
  }
}
