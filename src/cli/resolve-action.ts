// What `tsko resolve` (and `apply`/`create` before kubectl) does once its flags are parsed: read
// the YAML, publish every ko:// import path in it through one command session, and hand back
// the YAML with digest references — or nothing when any reference fails.
import type { ResolvedTarget } from '../publish/builder.js';
import { readInputs } from '../resolve/inputs.js';
import { loadDocuments, resolveDocuments } from '../resolve/resolver.js';
import { findReferences } from '../resolve/references.js';
import { stringifyDocuments } from '../resolve/documents.js';
import { parseSelector } from '../resolve/selector.js';
import type { ResolveFlags } from './resolve.js';
import { openCommandSession, printedLine, writeImageRefs } from './session.js';

export interface ResolveOutcome {
  yaml: string;
  /** A selector was given and kept no document. */
  nothingSelected: boolean;
}

export async function resolveYaml(flags: ResolveFlags, verbose: boolean): Promise<ResolveOutcome> {
  const { filename = [], recursive, selector: selectorText, config: configFile, ...build } = flags;
  const inline = { command: 'resolve' as const, ...(configFile ? { configFile } : {}), build };
  const selector = selectorText !== undefined ? parseSelector(selectorText) : undefined;
  const sources = await readInputs(filename, { cwd: process.cwd(), recursive: Boolean(recursive), readStdin });
  const documents = loadDocuments(sources, selector);
  const nothingToBuild = async (yaml: string, nothingSelected: boolean): Promise<ResolveOutcome> => {
    // --image-refs is written (empty) even when nothing is built.
    if (build.imageRefs) await writeImageRefs(build.imageRefs, []);
    return { yaml, nothingSelected };
  };
  if (selector && documents.length === 0) {
    process.stderr.write(`tsko: no documents match the selector "${selectorText}"\n`);
    return nothingToBuild('', true);
  }
  // No ko:// at all: the YAML passes through without a registry or a build.
  if (findReferences(documents).length === 0) return nothingToBuild(stringifyDocuments(documents), false);

  const session = await openCommandSession(inline, verbose);
  const { pipeline, config, events } = session;
  try {
    const targets = new Map<string, ResolvedTarget>();
    const resolved = await resolveDocuments(
      documents,
      {
        async check(spec, signal) {
          const target = await pipeline.resolve(spec, signal);
          targets.set(target.pkg.importPath, target);
          return target.pkg.importPath;
        },
        async publish(importPath, signal) {
          return printedLine(await pipeline.publish(targets.get(importPath) as ResolvedTarget, { events, signal }), config);
        },
      },
      { signal: session.signal },
    );
    if (config.build.imageRefs) {
      // Each import path once, in the order the documents name them.
      const byImportPath = new Map(pipeline.published.map((published) => [published.importPath, published]));
      const inOrder = [...resolved.images.keys()].flatMap((importPath) => byImportPath.get(importPath) ?? []);
      await writeImageRefs(config.build.imageRefs, inOrder, config);
    }
    return { yaml: resolved.yaml, nothingSelected: false };
  } finally {
    await session.close();
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
