// `tsko dev` started the way a user starts it in their own project, `npx tsko dev` (npm exec runs
// it through `sh -c`), and then killed from outside (issue 15): SIGTERM or SIGKILL to the npx
// process, or SIGKILL to tsko itself. Within a bounded wait no tsko and no revision process may
// remain, and the front port and the embedded registry's port must be free for a new listener.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TskoEvent } from '../../src/events.js';
import { descendants, isAlive } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

const MAIN = `package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "up") })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`;

/** A Go module with tsko in node_modules, as `npm install --save-dev tsko` leaves it (linked here). */
async function project(t: TestContext): Promise<string> {
  const dir = await makeTempDir('wrapper-kill', t);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'svc', version: '1.0.0', private: true, devDependencies: { tsko: '*' } }));
  await writeFile(join(dir, 'go.mod'), 'module example.com/svc\n\ngo 1.22\n');
  await writeFile(join(dir, 'main.go'), MAIN);
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  await mkdir(join(dir, 'node_modules', '.bin'), { recursive: true });
  await symlink(repoRoot, join(dir, 'node_modules', 'tsko'));
  await symlink('../tsko/bin/tsko.js', join(dir, 'node_modules', '.bin', 'tsko'));
  return dir;
}

interface Wrapped {
  npx: ChildProcess;
  events: TskoEvent[];
  output(): string;
  frontPort: number;
  registryPort: number;
  /** Every process seen under npx: killed after the test whatever happened, orphans included. */
  seen: Set<number>;
}

async function startThroughNpx(t: TestContext): Promise<Wrapped> {
  const dir = await project(t);
  const frontPort = await freePort();
  const registryPort = await freePort();
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) if (value !== undefined && key !== 'KO_DOCKER_REPO') env[key] = value;
  Object.assign(env, {
    // npx and the tsko bin's `#!/usr/bin/env node` find the pinned Node first.
    PATH: `${join(repoRoot, 'node_modules/.bin')}:${process.env.PATH ?? ''}`,
    XDG_CACHE_HOME: await makeTempDir('wrapper-kill-cache', t),
    GOCACHE: goCacheDir(),
    TSKO_REGISTRY_ADDR: `127.0.0.1:${registryPort}`,
    npm_config_cache: await makeTempDir('wrapper-kill-npm', t),
    npm_config_update_notifier: 'false',
    npm_config_offline: 'true',
  });
  const npx = spawn('npx', ['tsko', 'dev', '--json', '--port', String(frontPort)], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const seen = new Set<number>([npx.pid as number]);
  t.after(() => {
    for (const pid of new Set([...seen, ...[...seen].flatMap(descendants)])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already, as it should be.
      }
    }
  });
  const events: TskoEvent[] = [];
  let text = '';
  let buffer = '';
  npx.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let newline: number;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.startsWith('{')) events.push(JSON.parse(line) as TskoEvent);
      else text += `${line}\n`;
    }
  });
  npx.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return { npx, events, output: () => text, frontPort, registryPort, seen };
}

async function waitUntil(what: string, check: () => boolean, timeoutMs: number, detail: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await sleep(100);
  }
  assert.fail(`${what} within ${timeoutMs} ms\n${detail()}`);
}

/** `pid: argv…`, for messages and for finding tsko among npx's descendants. */
function commandOf(pid: number): string {
  try {
    return `${pid}: ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ')}`;
  } catch {
    return `${pid}: (gone)`;
  }
}

/** Whether a new listener can bind 127.0.0.1:port now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Serving through npx: every process under npx (sh, tsko, the revision) by pid. */
async function serving(wrapped: Wrapped): Promise<number[]> {
  await waitUntil(
    'tsko dev never deployed',
    () => wrapped.events.some((e) => e.type === 'iteration.end' && e.result === 'deployed'),
    120_000,
    () => `${wrapped.output()}\n${wrapped.events.map((e) => JSON.stringify(e)).join('\n')}`,
  );
  const pids = descendants(wrapped.npx.pid as number);
  for (const pid of pids) wrapped.seen.add(pid);
  const names = pids.map(commandOf);
  // npm exec runs tsko through `sh -c` today; what matters is that tsko and its revision are here.
  assert.ok(names.some((name) => /bin\/tsko dev/.test(name)), `tsko runs under npx:\n${names.join('\n')}`);
  assert.ok(names.some((name) => /\/revisions\/\d+\/svc-\d{5}\//.test(name)), `a revision runs under npx:\n${names.join('\n')}`);
  return pids;
}

async function assertAllGone(pids: number[], wrapped: Wrapped): Promise<void> {
  await waitUntil('processes remained', () => pids.every((pid) => !isAlive(pid)), 10_000, () => `alive:\n${pids.filter(isAlive).map(commandOf).join('\n')}\n${wrapped.output()}`);
  // Asked a few times: on a busy machine another process's outgoing connection may hold the
  // port as its ephemeral source port for a moment; a leftover tsko would hold it throughout.
  for (const [name, port] of [['front', wrapped.frontPort], ['registry', wrapped.registryPort]] as const) {
    let free = false;
    for (let attempt = 0; attempt < 20 && !free; attempt++) {
      free = await bindable(port);
      if (!free) await sleep(250);
    }
    assert.equal(free, true, `the ${name} port is free`);
  }
}

describe('tsko dev under npx, killed from outside', () => {
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`${signal} to the npx process leaves no tsko and no revision, and frees both ports`, { timeout: 180_000 }, async (t) => {
      const wrapped = await startThroughNpx(t);
      const pids = await serving(wrapped);
      process.kill(wrapped.npx.pid as number, signal);
      await assertAllGone(pids, wrapped);
    });
  }

  it('SIGKILL to tsko itself takes its revision down too', { timeout: 180_000 }, async (t) => {
    const wrapped = await startThroughNpx(t);
    const pids = await serving(wrapped);
    const tsko = pids.find((pid) => /bin\/tsko/.test(commandOf(pid)));
    assert.ok(tsko, pids.map(commandOf).join('\n'));
    const revisions = descendants(tsko);
    assert.ok(revisions.length >= 1, 'a revision runs under tsko');
    process.kill(tsko, 'SIGKILL');
    await assertAllGone([tsko, ...revisions], wrapped);
  });
});
