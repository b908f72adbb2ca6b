// The service the benchmark edits: a temp copy of examples/hello with an explicit offline base, and
// the two kinds of save it makes — a one-line change to the `version` string (a new binary) and a
// change to a comment on its own line (same line numbers, so the program is the same).
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const VERSION_LINE = /^const version = ".*"$/m;
const COMMENT_LINE = /^\/\/ bench: .*$/m;

export interface ServiceCopy {
  dir: string;
  mainGo: string;
  /** What main.go holds now, so a save is one write with nothing read before it. */
  source: string;
}

/** Copy the example into `dir`, with a config that pins the offline base and a comment to edit. */
export async function copyExample(exampleDir: string, dir: string, version: string): Promise<ServiceCopy> {
  await cp(exampleDir, dir, { recursive: true });
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  const mainGo = join(dir, 'main.go');
  const original = await readFile(mainGo, 'utf8');
  if (!VERSION_LINE.test(original)) throw new Error(`${mainGo} has no line \`const version = "…"\` to edit`);
  // Appended last so editing it never moves a line of code.
  const source = original.replace(VERSION_LINE, versionLine(version)) + '\n// bench: 0\n';
  await writeFile(mainGo, source);
  return { dir, mainGo, source };
}

function versionLine(version: string): string {
  return `const version = ${JSON.stringify(version)}`;
}

/** Save a new version string in place (as most editors save); returns when the save began. */
export function editVersion(copy: ServiceCopy, version: string): Promise<number> {
  return save(copy, copy.source.replace(VERSION_LINE, versionLine(version)));
}

/** Change only the trailing comment: the binary's code and line table stay the same. */
export function editComment(copy: ServiceCopy, text: string): Promise<number> {
  return save(copy, copy.source.replace(COMMENT_LINE, `// bench: ${text}`));
}

async function save(copy: ServiceCopy, source: string): Promise<number> {
  copy.source = source;
  const savedAt = Date.now();
  await writeFile(copy.mainGo, source);
  return savedAt;
}
