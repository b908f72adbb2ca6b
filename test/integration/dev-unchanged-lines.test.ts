// When a comment-only edit counts as `unchanged` in `tsko dev` (issue 15), pinned: exactly when
// the linked program is the same. Comment text changed on its own lines, a trailing comment,
// comments appended after the last code: unchanged, nothing pushed. A comment line added or
// removed above code moves the lines after it, and Go records line numbers in the binary (stack
// traces, panics, runtime.Caller, log's Lshortfile), so that is a new program and is deployed:
// the service here answers /line with the line runtime.Caller reports, which moves with it.
import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { EventOf, TskoEvent } from '../../src/events.js';
import { startDev, type DevProcess } from '../support/dev-process.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { httpGet } from '../support/image-check.js';
import { makeTempDir } from '../support/tmp.js';

type End = EventOf<'iteration.end'>;
const isEnd = (event: TskoEvent): event is End => event.type === 'iteration.end';

const MAIN = `package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
)

// greeting is what / answers.
const greeting = "hi"

func main() {
	http.HandleFunc("/line", func(w http.ResponseWriter, r *http.Request) {
		_, _, line, _ := runtime.Caller(0)
		fmt.Fprintln(w, line)
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, greeting) })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`;

function settled(dev: DevProcess, from: number): Promise<End> {
  return dev.waitFor((e) => isEnd(e) && e.result !== 'cancelled', { from }) as Promise<End>;
}

describe('tsko dev: which comment edits are unchanged', () => {
  it('skips comment edits that move no code, and deploys one that moves lines (their numbers are in the binary)', { timeout: 240_000 }, async (t) => {
    const dir = await makeTempDir('dev-lines', t);
    const main = join(dir, 'main.go');
    await writeFile(join(dir, 'go.mod'), 'module example.com/lines\n\ngo 1.22\n');
    await writeFile(main, MAIN);
    await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
    const port = await freePort();
    const dev = startDev(['--port', String(port)], {
      cwd: dir,
      env: { XDG_CACHE_HOME: await makeTempDir('dev-lines-cache', t), GOCACHE: goCacheDir(), TSKO_REGISTRY_ADDR: `127.0.0.1:${await freePort()}`, KO_DOCKER_REPO: undefined },
    });
    t.after(() => {
      if (dev.child.exitCode === null) dev.child.kill('SIGKILL');
    });
    const line = async () => Number((await httpGet(`http://127.0.0.1:${port}/line`)).body.trim());
    /** Saves `text` as main.go (one rename, as editors do) and returns how the loop took it. */
    const saveAs = async (text: string) => {
      const mark = dev.events.length;
      await writeFile(`${main}.tmp`, text);
      await rename(`${main}.tmp`, main);
      return settled(dev, mark);
    };

    const first = await settled(dev, 0);
    assert.equal(first.result, 'deployed', JSON.stringify(first));
    const callerLine = await line();
    assert.equal(callerLine, MAIN.split('\n').findIndex((l) => l.includes('runtime.Caller(0)')) + 1);

    // Edits that leave every line of code where it was: the same program, nothing pushed.
    const moved = MAIN.replace('// greeting is what / answers.', '// greeting is the text that / answers with.');
    const trailing = moved.replace('nil)\n}', 'nil) // blocks until the server fails\n}');
    const appended = `${trailing}\n// Deployed by tsko dev.\n`;
    for (const [what, text] of [['a comment reworded on its line', moved], ['a trailing comment', trailing], ['comments after the last code', appended]] as const) {
      const end = await saveAs(text);
      assert.equal(end.result, 'unchanged', `${what}: ${JSON.stringify(end)}`);
      assert.equal(end.bytesPushed ?? 0, 0, what);
    }
    assert.equal(await line(), callerLine);

    // A comment line above the code moves it one line down: a new program, deployed, and it says so.
    const added = await saveAs(appended.replace('func main() {', '// main serves / and /line.\nfunc main() {'));
    assert.equal(added.result, 'deployed', JSON.stringify(added));
    assert.equal(await line(), callerLine + 1);
    // Removing it moves the code back: deployed again (what serves is the moved one).
    const removed = await saveAs(appended);
    assert.equal(removed.result, 'deployed', JSON.stringify(removed));
    assert.equal(await line(), callerLine);
    assert.equal(await readFile(main, 'utf8'), appended);

    dev.child.kill('SIGTERM');
    assert.notEqual(await dev.exited(5000), 'timeout');
  });
});
