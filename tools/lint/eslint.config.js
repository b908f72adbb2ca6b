// typescript-eslint for tsko: a few type-aware rules about promises plus unused variables.
//
// This lives in its own package (tools/lint) because the build's TypeScript is 7.x, the
// native port, which has no JS compiler API; typescript-eslint 8.x needs that API for
// type-aware rules and declares typescript ">=4.8.4 <6.1.0" as a peer. So the linter gets
// TypeScript 6.0 from tools/lint/node_modules, and the build keeps its TS 7. The guard
// below fails the run if the parser would ever pick up another TypeScript.
//
// Run it from the repo root with `npm run lint` (tools/lint/run.mjs).

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "eslint/config";
import tseslint from "typescript-eslint";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "..", "..");

// Resolve `typescript` the way the parser does: from @typescript-eslint/typescript-estree,
// reached through typescript-eslint -> @typescript-eslint/parser.
function parserTypeScript() {
  const fromConfig = createRequire(import.meta.url);
  const fromParser = createRequire(fromConfig.resolve("@typescript-eslint/parser"));
  const fromEstree = createRequire(fromParser.resolve("@typescript-eslint/typescript-estree"));
  const file = fromEstree.resolve("typescript");
  return { file, version: fromEstree("typescript").version };
}
const ts = parserTypeScript();
const lintNodeModules = path.join(here, "node_modules") + path.sep;
if (!ts.file.startsWith(lintNodeModules) || !/^6\.0\./.test(ts.version)) {
  throw new Error(
    `tools/lint: the parser resolves typescript ${ts.version} from ${ts.file}; ` +
      `expected TypeScript 6.0.x from ${lintNodeModules} (run npm ci --prefix tools/lint)`,
  );
}
if (process.env.TSKO_LINT_DEBUG) {
  console.error(`tools/lint: node ${process.version}, parser uses typescript ${ts.version} from ${ts.file}`);
}

export default defineConfig(
  {
    name: "tsko/ignores",
    basePath: repoRoot,
    ignores: ["dist/", "**/node_modules/", "tools/lint/node_modules/", "bench/work/"],
  },
  {
    name: "tsko/typescript",
    basePath: repoRoot,
    files: ["{src,ui,test,bench}/**/*.{ts,tsx}"],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        projectService: true,
        tsconfigRootDir: repoRoot,
      },
    },
    linterOptions: {
      // Only a few rules run here, so disable comments for other rules (the code has some
      // for no-explicit-any) are expected and are not reported as unused.
      reportUnusedDisableDirectives: "off",
    },
    plugins: {
      "@typescript-eslint": tseslint.plugin,
    },
    rules: {
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          // node:test's describe/it/test/suite return promises that the runner itself
          // tracks; its docs say the return value of a top-level test or of a test inside
          // a suite can be discarded. Without this, every test file reports each of them.
          // The match is by name and package, so it also lets through the subtest method
          // t.test() (TestContext#test), which must be awaited or the parent ends first
          // and cancels it: the no-restricted-syntax entry below catches that one.
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["describe", "it", "test", "suite"] },
          ],
        },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "ExpressionStatement > CallExpression[callee.type='MemberExpression'][callee.property.name='test']",
          message:
            "Await the subtest (await t.test(...)): an un-awaited subtest is cancelled when its parent ends. (no-floating-promises lets node:test's test() through, t.test included.)",
        },
      ],
      // Defaults (checksVoidReturn fully on): the dashboard passes no async function to
      // useInput or a JSX attribute today, so nothing needs loosening for React/Ink.
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
      // The core rule does not understand types, so it is off in favour of the TS one.
      "no-unused-vars": "off",
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          args: "after-used",
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrorsIgnorePattern: "^_",
          destructuredArrayIgnorePattern: "^_",
        },
      ],
    },
  },
);
