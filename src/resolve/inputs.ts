// Where `-f` points: files, directories (their .yaml, .yml and .json files in name order, deeper
// with -R) and `-` for stdin, read in the order given, so the output keeps the input's order.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { TskoError } from '../errors.js';

export interface SourceFile {
  /** As the user named it (or `<stdin>`), for messages. */
  name: string;
  text: string;
}

export interface InputOptions {
  cwd: string;
  recursive: boolean;
  readStdin: () => Promise<string>;
}

const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

export async function readInputs(specs: readonly string[], options: InputOptions): Promise<SourceFile[]> {
  if (specs.length === 0) throw new TskoError('RESOLVE', 'no input: pass -f FILE, -f DIR or -f - (stdin)');
  const files: SourceFile[] = [];
  let stdinRead = false;
  for (const spec of specs) {
    if (spec === '-') {
      if (stdinRead) throw new TskoError('RESOLVE', '-f - (stdin) can be given only once');
      stdinRead = true;
      files.push({ name: '<stdin>', text: await options.readStdin() });
      continue;
    }
    if (/^https?:\/\//.test(spec)) throw new TskoError('RESOLVE', `-f ${spec}: URLs are not read; download the file first`);
    const path = resolvePath(options.cwd, spec);
    const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
      throw new TskoError('RESOLVE', `-f ${spec}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
    });
    if (info.isDirectory()) {
      for (const file of await manifestFiles(path, options.recursive)) {
        files.push({ name: join(spec, file.slice(path.length + 1)), text: await readText(file, spec) });
      }
    } else {
      files.push({ name: spec, text: await readText(path, spec) });
    }
  }
  return files;
}

async function manifestFiles(dir: string, recursive: boolean): Promise<string[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (recursive) out.push(...(await manifestFiles(path, true)));
    } else if (MANIFEST_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) {
      out.push(path);
    }
  }
  return out;
}

async function readText(path: string, spec: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new TskoError('RESOLVE', `-f ${spec}: ${(err as Error).message}`);
  }
}
