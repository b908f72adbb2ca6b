// Loaded with `node --import` in front of bin/tsko.js: records the URL of every module the process
// loads (ESM and require alike, through Node's synchronous module hooks) and, at exit, writes them
// one a line to the file named by TSKO_TEST_MODULES_OUT. startup.test.ts reads that list to pin
// which packages each command loads.
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const out = process.env.TSKO_TEST_MODULES_OUT;
if (!out) throw new Error('record-modules: set TSKO_TEST_MODULES_OUT to the file to write');
const loaded = new Set<string>();
registerHooks({
  load(url, context, nextLoad) {
    loaded.add(url);
    return nextLoad(url, context);
  },
});
process.on('exit', () => writeFileSync(out, [...loaded].join('\n') + '\n'));
