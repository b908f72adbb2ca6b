// The manifests mode's YAML work: every `ko://<import path>` string in the named files becomes the
// pushed digest reference. What counts as a reference, and how one is written into the YAML, is
// src/resolve/'s, the same as `tsko resolve`: a document reaches the server as its own text with
// only the ko:// scalars edited, so comments, quoting, indentation and key order stay as written
// (what `tsko resolve` prints). What reaches the API server is that text read back as one JSON
// object — as kubectl sends it: a JSON body, no comments, no `---` — read with YAML 1.1's rules,
// as kubectl's and the API server's YAML decoder (sigs.k8s.io/yaml) reads it.
import { readFile } from 'node:fs/promises';
import { Document, isScalar, parse as parseYaml, type Node } from 'yaml';
import { TskoError } from '../errors.js';
import { documentText, listItems, parseDocuments } from '../resolve/documents.js';
import { referencesIn, replaceReference, type KoReference } from '../resolve/references.js';


export interface ManifestObject {
  file: string;
  /** 0-based position of the document in its file. */
  index: number;
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string | undefined;
  /** The document as resolved YAML, comments kept (for people). */
  yaml: string;
  /** The object itself, the server-side apply body (JSON). */
  body: Record<string, unknown>;
  /** The import paths it references (before resolution). */
  importPaths: string[];
}

export interface ResolvedManifests {
  /** Objects whose every ko:// reference resolved. */
  objects: ManifestObject[];
  /** Objects left out because they reference an import path with no pushed image yet. */
  skipped: Array<{ object: string; missing: string[] } & Pick<ManifestObject, 'apiVersion' | 'kind' | 'name' | 'namespace' | 'importPaths'>>;
}

/** Reads and resolves the files; `references` maps import path → pushed digest reference. */
export async function resolveManifests(files: string[], references: ReadonlyMap<string, string>): Promise<ResolvedManifests> {
  const objects: ManifestObject[] = [];
  const skipped: ResolvedManifests['skipped'] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new TskoError('KUBE', `cannot read manifest ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
        hint: 'check dev.kubernetes.manifests in the config',
      });
    }
    const documents = parseDocuments(
      { name: file, text },
      { invalid: (e) => new TskoError('KUBE', `${e.file}:${e.line}:${e.col}: document ${e.document + 1} is not valid YAML: ${e.message}`) },
    );
    for (const parsed of documents) {
      // Server-side apply takes one object, so a List's items are applied one by one, as kubectl does.
      const items = listItems(parsed.document);
      const documentName = `${file}: document ${parsed.index + 1}`;
      const parts = items
        ? items.items.map((item, i) => ({ node: item as Node, where: `${documentName} item ${i + 1}`, print: () => itemText(item as Node) }))
        : [{ node: parsed.document, where: documentName, print: () => documentText(parsed) }];
      for (const { node, where, print } of parts) {
        const object = describe(node, where);
        const found = referencesIn(node, file, parsed.lines);
        const missing = resolveObject(found, references);
        const importPaths = found.map((ref) => ref.spec);
        if (missing.length > 0) {
          skipped.push({ object: `${object.kind}/${object.name}`, missing, ...object, importPaths });
          continue;
        }
        const yaml = print();
        objects.push({ ...object, file, index: parsed.index, yaml, body: jsonBody(yaml, where), importPaths });
      }
    }
  }
  return { objects, skipped };
}

/** Puts every known reference in place, unless one is unknown: then the import paths not pushed yet. */
function resolveObject(found: readonly KoReference[], references: ReadonlyMap<string, string>): string[] {
  const missing = new Set<string>();
  for (const ref of found) {
    if (ref.spec === '') throw new TskoError('KUBE', `${ref.file}:${ref.line}: "ko://" names no import path`);
    if (!references.has(ref.spec)) missing.add(ref.spec);
  }
  if (missing.size > 0) return [...missing];
  for (const ref of found) replaceReference(ref, references.get(ref.spec) as string);
  return [];
}

/** The resolved text as the object kubectl would send: YAML 1.1 scalars (yes/no, 0777) and merge keys (<<). */
function jsonBody(yaml: string, where: string): Record<string, unknown> {
  let value: unknown;
  try {
    // Timestamps stay the strings they are written as (a Date would come back reformatted).
    value = parseYaml(yaml, { version: '1.1', merge: true, maxAliasCount: 1000, customTags: (tags) => tags.filter((tag) => typeof tag === 'string' || tag.tag !== 'tag:yaml.org,2002:timestamp') });
  } catch (err) {
    throw new TskoError('KUBE', `${where} cannot be read as one object: ${(err as Error).message.split('\n')[0] ?? ''}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TskoError('KUBE', `${where} is not an object`);
  return value as Record<string, unknown>;
}

/** A List item has no text of its own that stands alone (it is indented under `items:`); printed from its node. */
function itemText(item: Node): string {
  const document = new Document();
  document.contents = item;
  return document.toString({ lineWidth: 0 });
}

function describe(node: Document | Node, where: string): Pick<ManifestObject, 'apiVersion' | 'kind' | 'name' | 'namespace'> {
  const get = (path: string[]): unknown => {
    // A List item may be a scalar, which has no fields to look up.
    const found: unknown = 'getIn' in node ? node.getIn(path, true) : undefined;
    return isScalar(found) ? found.value : found;
  };
  const apiVersion = get(['apiVersion']);
  const kind = get(['kind']);
  const name = get(['metadata', 'name']);
  const namespace = get(['metadata', 'namespace']);
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new TskoError('KUBE', `${where} has no apiVersion and kind`);
  if (typeof name !== 'string' || name === '') throw new TskoError('KUBE', `${where} (${kind}) has no metadata.name`);
  return { apiVersion, kind, name, namespace: typeof namespace === 'string' ? namespace : undefined };
}
