#!/usr/bin/env node
// The published entry point: checks the Node version, turns on Node's module compile cache, then
// loads the compiled CLI from dist/ (built by `npm install` via prepare) in this same process.
//
// This file must run on a Node too old for dist/, so that such a Node prints one line naming the
// Node tsko needs instead of a SyntaxError from deep in dist/: keep it to syntax Node 14 parses
// (no `??`, `?.`, top-level await, class fields) and import dist/ only after the check.
import { existsSync, mkdirSync, readFileSync } from 'fs';
import * as nodeModule from 'module';
import { homedir } from 'os';
import { dirname, isAbsolute, join } from 'path';
import { fileURLToPath } from 'url';

/** tsko's package.json, or an empty object when it cannot be read. */
function readManifest() {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  } catch (err) {
    return {};
  }
}

var manifest = readManifest();

/** The lowest Node package.json's `engines.node` (">=22", ">=22.12.0") accepts, as [major, minor, patch]. */
function minimumNode() {
  var range = manifest.engines && typeof manifest.engines.node === 'string' ? manifest.engines.node : '>=22';
  var match = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(range) || ['22', '22'];
  return { text: match[0], parts: [Number(match[1]), Number(match[2] || 0), Number(match[3] || 0)] };
}

function olderThan(version, minimum) {
  var have = version.split('.').map(Number);
  for (var i = 0; i < 3; i++) {
    if ((have[i] || 0) !== minimum[i]) return (have[i] || 0) < minimum[i];
  }
  return false;
}

var minimum = minimumNode();
if (olderThan(process.versions.node, minimum.parts)) {
  process.stderr.write('tsko: needs Node.js \u2265 ' + minimum.text + ', this is ' + process.version + '\n');
  process.exit(1);
}

// `tsko version` alone needs nothing but the manifest read above: answering here spares it the
// CLI's modules (commander, the command table), about a third of its run time.
// dist/src/cli/version.ts registers the same command for --help and for `tsko version -v`.
var args = process.argv.slice(2);
if (args.length === 1 && args[0] === 'version' && typeof manifest.version === 'string') {
  process.stdout.write(manifest.version + '\n');
  process.exit(0);
}

// `tsko dev` is a daemon whose memory is measured (issue 12: ≤ 120 MB serving a 55 MB binary).
// Two of its costs are settings read only when a process starts, so it replaces itself once
// (execve: the same pid, no wrapper process) with them set:
// - V8's young generation: by default its semi-spaces grow to 16+ MB each under the daemon's
//   per-save allocation and never shrink, ~15 MB of heap that holds no live objects; 1 MB keeps
//   the heap within a few MB of what is live (scavenges get more frequent, each stays cheap).
// - glibc's malloc arenas: one per thread that ever mallocs (V8's compiler threads, libuv's
//   pool), each keeping what it freed; two arenas held 0-16 MB less across runs.
// A user's own setting of either wins; Nodes without process.execve (older than 22.15, Windows)
// run as they are.
var SEMI_SPACE_FLAG = '--max-semi-space-size=1';
if (
  args[0] === 'dev' &&
  typeof process.execve === 'function' &&
  process.execArgv.indexOf(SEMI_SPACE_FLAG) === -1 &&
  !/--max-semi-space-size/.test(process.env.NODE_OPTIONS || '')
) {
  var env = Object.assign({}, process.env);
  if (process.platform === 'linux' && env.MALLOC_ARENA_MAX === undefined) env.MALLOC_ARENA_MAX = '2';
  try {
    // argv[1] as it was given (npx runs node_modules/.bin/tsko, a link): the command line others
    // find tsko by stays the same but for the flag.
    process.execve(process.execPath, [process.execPath, SEMI_SPACE_FLAG].concat(process.execArgv, [process.argv[1] || fileURLToPath(import.meta.url)], args), env);
  } catch (err) {
    // Not replaced (the binary cannot be executed again): run as this process is.
  }
}

/**
 * Makes `dir` one level at a time; false when any level cannot be made. Not Node's recursive mkdir
 * (nor enableCompileCache's own), which loops forever where a directory exists but cannot hold
 * children (HOME under /proc): a cache must never hang a command.
 */
function makeDirectory(dir) {
  if (existsSync(dir)) return true;
  var parent = dirname(dir);
  if (parent === dir || !makeDirectory(parent)) return false;
  try {
    mkdirSync(dir);
  } catch (err) {
    if (!err || err.code !== 'EEXIST') return false;
  }
  return true;
}

// Compiled code for every module loaded from here on is cached on disk, so a warm start parses
// less JavaScript (and strips tsko.config.ts's types once). NODE_COMPILE_CACHE (a directory) and
// NODE_DISABLE_COMPILE_CACHE=1 keep Node's own meaning; otherwise the cache goes beside tsko's
// other caches. A cache that cannot be made (a read-only home) only costs the speed.
if (!process.env.NODE_COMPILE_CACHE && typeof nodeModule.enableCompileCache === 'function') {
  try {
    var xdg = process.env.XDG_CACHE_HOME;
    var cacheDir = join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'tsko', 'compile-cache');
    if (makeDirectory(cacheDir)) nodeModule.enableCompileCache(cacheDir);
  } catch (err) {
    // Never fail a command over a cache.
  }
}

var main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('tsko: dist/ is missing; run `npm install` (or `npm run build`) in the tsko checkout first\n');
  process.exit(1);
}
import(main.href).catch(function (err) {
  process.stderr.write('tsko: cannot start: ' + ((err && err.stack) || String(err)) + '\n');
  process.exitCode = 1;
});
