// `tsko resolve -f FILE|DIR|- [-R] [-l SELECTOR]`: build and publish every ko:// import path in
// the YAML and print the YAML with digest references on stdout — all of it, or nothing when any
// reference fails. `apply` and `create` reuse this before handing the YAML to kubectl.
import type { Command } from 'commander';
import { buildAndPublish, type PublishResult } from '../publish/build-and-publish.js';
import type { ResolvedTarget } from '../publish/builder.js';
import { readInputs } from '../resolve/inputs.js';
import { loadDocuments, resolveDocuments } from '../resolve/resolver.js';
import { findReferences } from '../resolve/references.js';
import { stringifyDocuments } from '../resolve/documents.js';
import { parseSelector } from '../resolve/selector.js';
import { addBuildFlags, normaliseBuildFlags, type BuildFlags } from './common.js';
import { openPublishSession, printedLine, writeImageRefs } from './publish-session.js';

export interface ResolveFlags extends BuildFlags {
  filename: string[];
  recursive?: boolean;
  selector?: string;
}

export interface ResolveOutcome {
  yaml: string;
  /** A selector was given and kept no document. */
  nothingSelected: boolean;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** The -f/-R/-l flags and ko's build flags, for resolve, apply and create. */
export function addResolveFlags(command: Command): Command {
  return addBuildFlags(
    command
      .option('-f, --filename <path>', 'YAML file, directory of .yaml/.yml/.json files, or - for stdin (repeatable)', collect)
      .option('-R, --recursive', 'also read the directories inside -f directories')
      .option('-l, --selector <selector>', 'only documents whose metadata.labels match (key=value, key!=value, key, !key; comma = and)'),
  );
}

export function normaliseResolveFlags(raw: Partial<ResolveFlags>): ResolveFlags {
  return { ...normaliseBuildFlags(raw), filename: raw.filename ?? [] };
}

export function registerResolveCommand(program: Command): void {
  const command = program
    .command('resolve')
    .description('build the ko:// import paths in YAML, publish them, and print the YAML with digest references (as `ko resolve`)');
  addResolveFlags(command).action(async (raw: Partial<ResolveFlags>) => {
    const outcome = await resolveYaml(normaliseResolveFlags(raw), Boolean(program.opts().verbose));
    process.stdout.write(outcome.yaml);
  });
}

export async function resolveYaml(flags: ResolveFlags, verbose: boolean): Promise<ResolveOutcome> {
  const selector = flags.selector !== undefined ? parseSelector(flags.selector) : undefined;
  const sources = await readInputs(flags.filename, { cwd: process.cwd(), recursive: Boolean(flags.recursive), readStdin });
  const documents = loadDocuments(sources, selector);
  if (selector && documents.length === 0) {
    process.stderr.write(`tsko: no documents match the selector "${flags.selector}"\n`);
    if (flags.imageRefs) await writeImageRefs(flags.imageRefs, []);
    return { yaml: '', nothingSelected: true };
  }
  // No ko:// at all: the YAML passes through without a registry or a build.
  if (findReferences(documents).length === 0) {
    if (flags.imageRefs) await writeImageRefs(flags.imageRefs, []);
    return { yaml: stringifyDocuments(documents), nothingSelected: false };
  }

  const session = await openPublishSession(flags, verbose);
  try {
    const targets = new Map<string, ResolvedTarget>();
    const results = new Map<string, PublishResult>();
    const resolved = await resolveDocuments(
      documents,
      {
        async check(spec, signal) {
          const target = await session.pipeline.builder.resolveTarget(spec, signal);
          targets.set(target.pkg.importPath, target);
          return target.pkg.importPath;
        },
        async publish(importPath, signal) {
          const result = await buildAndPublish(session.pipeline, targets.get(importPath) as ResolvedTarget, session.request, session.events, signal);
          results.set(importPath, result);
          return printedLine(result, flags);
        },
      },
      { signal: session.signal },
    );
    if (flags.imageRefs) {
      await writeImageRefs(
        flags.imageRefs,
        [...resolved.images.keys()].map((importPath) => {
          const result = results.get(importPath) as PublishResult;
          return { line: printedLine(result, flags), result };
        }),
      );
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
