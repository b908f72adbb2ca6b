#!/usr/bin/env node
// The published entry point: the compiled CLI lives in dist/ (built by `npm install` via prepare).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('tsko: dist/ is missing; run `npm install` (or `npm run build`) in the tsko checkout first\n');
  process.exit(1);
}
await import(main.href);
