#!/usr/bin/env node
// The published entry point: the compiled CLI lives in dist/ (built by `npm install` via prepare).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('tsko: dist/ is missing; run `npm install` (or `npm run build`) in the tsko checkout first\n');
  process.exit(1);
}

// The long-running commands move several MB per save through malloc'd buffers. With glibc's
// defaults (an arena per thread, an mmap threshold that grows after each large free) the daemon's
// RSS crept up ~45 MB over 200 saves while its JS heap stayed flat; two arenas and a fixed 1 MiB
// mmap threshold keep it flat. glibc reads these only at start-up, hence one re-exec.
const LONG_RUNNING = new Set(['dev', 'registry']);
if (process.platform === 'linux' && LONG_RUNNING.has(process.argv[2] ?? '') && process.env.TSKO_MALLOC_TUNED !== '1') {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    // The IPC channel carries nothing; it closes when this process dies (even by SIGKILL), and
    // the child takes that as a SIGTERM, so it is never left running on its own.
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      TSKO_MALLOC_TUNED: '1',
      MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
      MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '1048576',
    },
  });
  // A terminal's Ctrl-C reaches both processes; a signal sent to this one alone is passed on.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? (constants.signals[signal] ?? 1) : 1)));
} else {
  if (process.env.TSKO_MALLOC_TUNED === '1' && process.send) {
    process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
    process.channel?.unref();
  }
  await import(main.href);
}
