// `npm run lint`: install tools/lint's own packages when needed, then run ESLint from there on
// src/, ui/, test/ and bench/ with tools/lint/eslint.config.js. ESLint's exit code is passed
// through (0 clean, 1 violations, 2 config or crash).
//
// tools/lint is a separate package because the build's TypeScript 7 (native port) has no JS
// compiler API, which typescript-eslint's type-aware rules need; it installs TypeScript 6.0
// for the linter alone. Extra arguments go to ESLint: `npm run lint -- --fix`, or
// `npm run lint -- src/cli.ts` to lint given paths instead of the four directories.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const lintDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(lintDir, "..", "..");
const DEFAULT_TARGETS = ["src", "ui", "test", "bench"];

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

// npm writes node_modules/.package-lock.json at the end of a successful install, so it is
// missing after a failed one and older than the lockfile after a pull that changed it.
function needsInstall() {
  const installed = mtime(path.join(lintDir, "node_modules", ".package-lock.json"));
  if (installed === undefined) return true;
  if (!existsSync(path.join(lintDir, "node_modules", "eslint", "bin", "eslint.js"))) return true;
  const wanted = Math.max(
    mtime(path.join(lintDir, "package-lock.json")) ?? 0,
    mtime(path.join(lintDir, "package.json")) ?? 0,
  );
  return installed < wanted;
}

function run(file, args, options) {
  const result = spawnSync(file, args, { stdio: "inherit", ...options });
  if (result.error) {
    console.error(`tools/lint: could not run ${file}: ${result.error.message}`);
    return 2;
  }
  if (result.signal) {
    process.kill(process.pid, result.signal);
    return 1;
  }
  return result.status ?? 1;
}

if (needsInstall()) {
  console.error("tools/lint: installing the linter's packages (npm ci --prefix tools/lint)");
  // Under `npm run`, npm_execpath is the npm that runs us: use it with this Node so a PATH
  // without npm (or with another Node's npm first) does not matter.
  const npmCli = process.env.npm_execpath;
  const ciArgs = ["ci", "--prefix", lintDir, "--no-audit", "--no-fund"];
  const status =
    npmCli && /\.[cm]?js$/.test(npmCli)
      ? run(process.execPath, [npmCli, ...ciArgs], { cwd: lintDir })
      : run(process.platform === "win32" ? "npm.cmd" : "npm", ciArgs, { cwd: lintDir, shell: process.platform === "win32" });
  if (status !== 0) {
    console.error(`tools/lint: npm ci failed (exit ${status})`);
    process.exit(status || 2);
  }
}

// ESLint options that take the next argument as their value (eslint --help), so that
// `-o report.json` is not read as a path to lint.
const VALUE_OPTIONS = new Set([
  "-c", "--config", "--ext", "--global", "--parser", "--parser-options", "--plugin", "--rule",
  "--fix-type", "--ignore-pattern", "--stdin-filename", "--max-warnings", "-o", "--output-file",
  "-f", "--format", "--report-unused-disable-directives-severity", "--report-unused-inline-configs",
  "--cache-file", "--cache-location", "--cache-strategy", "--suppress-rule",
  "--suppressions-location", "--print-config", "--flag", "--concurrency",
]);
// Options with which ESLint lints no file patterns: add no default targets then.
const NO_TARGET_OPTIONS = new Set([
  "-h", "--help", "-v", "--version", "--env-info", "--init", "--print-config", "--stdin",
  "--inspect-config", "--mcp",
]);

const userArgs = process.argv.slice(2);
const givesPaths = userArgs.some(
  (arg, i) =>
    !arg.startsWith("-") &&
    !(i > 0 && VALUE_OPTIONS.has(userArgs[i - 1])) &&
    existsSync(path.resolve(repoRoot, arg)),
);
const noTargets = userArgs.some((arg) => NO_TARGET_OPTIONS.has(arg.split("=")[0]));
const eslintArgs = [
  path.join(lintDir, "node_modules", "eslint", "bin", "eslint.js"),
  "--config",
  path.join(lintDir, "eslint.config.js"),
  ...userArgs,
  ...(givesPaths || noTargets ? [] : DEFAULT_TARGETS),
];
process.exit(run(process.execPath, eslintArgs, { cwd: repoRoot }));
