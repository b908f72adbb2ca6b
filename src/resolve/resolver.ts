// `tsko resolve` as a library: input files → selected documents → every ko:// reference checked
// (a main package, before anything is built) → each unique import path built and published once,
// all in parallel → references replaced → one YAML stream. The first failure cancels the rest,
// and nothing is returned, so a failed resolve prints no YAML for kubectl or gcloud to apply.
import { TskoError, isAbortError, toTskoError } from '../errors.js';
import { parseDocuments, stringifyDocuments, type ParsedDocument } from './documents.js';
import type { SourceFile } from './inputs.js';
import { findReferences, replaceReference, type KoReference } from './references.js';
import { selectDocuments, type Selector } from './selector.js';

export interface ReferencePublisher {
  /** Checks what a ko:// reference names (throws if it is not a main package); returns its import path. */
  check(spec: string, signal: AbortSignal): Promise<string>;
  /** Builds and publishes an import path; returns the digest reference to put in the YAML. */
  publish(importPath: string, signal: AbortSignal): Promise<string>;
}

export interface ResolveOptions {
  selector?: Selector;
  signal?: AbortSignal;
}

export interface Resolved {
  /** The YAML stream; empty when the selector kept no document. */
  yaml: string;
  documents: number;
  /** ko:// spec → published reference, in order of first appearance. */
  references: Map<string, string>;
  /** import path → published reference, each built once. */
  images: Map<string, string>;
}

/** Parses and selects; the documents a resolve would output, before any build. */
export function loadDocuments(sources: readonly SourceFile[], selector?: Selector): ParsedDocument[] {
  const all = sources.flatMap((source) => parseDocuments(source));
  return selector ? selectDocuments(all, selector) : all;
}

export async function resolveDocuments(documents: readonly ParsedDocument[], publisher: ReferencePublisher, options: ResolveOptions = {}): Promise<Resolved> {
  const references = findReferences(documents);
  const firstBySpec = new Map<string, KoReference>();
  for (const reference of references) {
    if (reference.spec === '') throw new TskoError('RESOLVE', `${where(reference)}: "ko://" names no import path`);
    if (!firstBySpec.has(reference.spec)) firstBySpec.set(reference.spec, reference);
  }

  const controller = new AbortController();
  const onAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const failFast = <T>(promise: Promise<T>, reference: KoReference): Promise<T> =>
    promise.catch((err: unknown) => {
      const located = locate(err, reference);
      controller.abort(located);
      throw located;
    });

  try {
    // Every reference is checked before any build starts: a typo fails in a second, pushes nothing.
    const specs = [...firstBySpec.values()];
    const importPaths = await settleFirstError(specs.map((ref) => failFast(publisher.check(ref.spec, controller.signal), ref)));
    const importPathOf = new Map(specs.map((ref, i) => [ref.spec, importPaths[i] as string]));

    // Two specs naming one package (ko://./cmd/x and ko://example.com/cmd/x) build once.
    const firstByImportPath = new Map<string, KoReference>();
    for (const ref of specs) {
      const importPath = importPathOf.get(ref.spec) as string;
      if (!firstByImportPath.has(importPath)) firstByImportPath.set(importPath, ref);
    }
    const unique = [...firstByImportPath.entries()];
    const published = await settleFirstError(unique.map(([importPath, ref]) => failFast(publisher.publish(importPath, controller.signal), ref)));
    const images = new Map(unique.map(([importPath], i) => [importPath, published[i] as string]));

    const bySpec = new Map<string, string>();
    for (const ref of specs) bySpec.set(ref.spec, images.get(importPathOf.get(ref.spec) as string) as string);
    for (const reference of references) replaceReference(reference, bySpec.get(reference.spec) as string);
    return { yaml: stringifyDocuments(documents), documents: documents.length, references: bySpec, images };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Like Promise.all, but waits for every promise to settle so no build is still writing when the
 * caller reports; the error is the first real one, not an abort it caused in the others.
 */
async function settleFirstError<T>(promises: Promise<T>[]): Promise<T[]> {
  let firstError: unknown;
  let firstNonAbort: unknown;
  await Promise.all(
    promises.map((p) =>
      p.catch((err: unknown) => {
        firstError ??= err;
        if (!isAbortError(err)) firstNonAbort ??= err;
      }),
    ),
  );
  if (firstError !== undefined) throw firstNonAbort ?? firstError;
  return Promise.all(promises);
}

function where(reference: KoReference): string {
  return `${reference.file}:${reference.line}`;
}

/** The error, prefixed with where the reference is, so a typo is found in the YAML at once. */
function locate(err: unknown, reference: KoReference): unknown {
  if (isAbortError(err)) return err;
  const error = toTskoError(err);
  return new TskoError(error.code, `${where(reference)}: ko://${reference.spec}: ${error.message}`, {
    cause: err,
    ...(error.hint ? { hint: error.hint } : {}),
    ...(error.detail ? { detail: error.detail } : {}),
    ...(error.diagnostics ? { diagnostics: error.diagnostics } : {}),
  });
}
