// The manifests mode's YAML work: every `ko://<import path>` string in the named files becomes the
// pushed digest reference. The yaml package's Document API finds the scalars and their source
// ranges; the reference is spliced into the file's own text there, in the scalar's quoting, so
// comments, indentation and key order reach the server exactly as written.
import { readFile } from 'node:fs/promises';
import { isScalar, parseAllDocuments, visit, type Document } from 'yaml';
import { TskoError } from '../errors.js';

export const KO_PREFIX = 'ko://';

export interface ManifestObject {
  file: string;
  /** 0-based position of the document in its file. */
  index: number;
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string | undefined;
  /** The document as resolved YAML, ready for server-side apply. */
  yaml: string;
  /** The import paths it references (before resolution). */
  importPaths: string[];
}

export interface ResolvedManifests {
  /** Objects whose every ko:// reference resolved. */
  objects: ManifestObject[];
  /** Objects left out because they reference an import path with no pushed image yet. */
  skipped: Array<{ object: string; missing: string[] }>;
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
    let previousEnd = 0;
    for (const [index, doc] of parseAllDocuments(text).entries()) {
      // The text from the previous document's end keeps this one's leading comments and `---`.
      const start = previousEnd;
      previousEnd = doc.range[2];
      if (doc.errors.length > 0) {
        const first = doc.errors[0]?.message.split('\n')[0];
        throw new TskoError('KUBE', `${file}: document ${index + 1} is not valid YAML: ${first}`);
      }
      if (doc.contents === null) continue;
      const object = describe(doc, file, index);
      const { missing, edits } = resolveDocument(doc, references);
      if (missing.length > 0) {
        skipped.push({ object: `${object.kind}/${object.name}`, missing });
        continue;
      }
      let yaml = text.slice(start, doc.range[2]);
      for (const edit of edits.sort((a, b) => b.from - a.from)) {
        yaml = yaml.slice(0, edit.from - start) + edit.text + yaml.slice(edit.to - start);
      }
      objects.push({ ...object, yaml });
    }
  }
  return { objects, skipped };
}

interface Edit {
  from: number;
  to: number;
  text: string;
}

/** The source edits that put a reference in every ko:// scalar it knows, and the import paths it does not know. */
function resolveDocument(doc: Document, references: ReadonlyMap<string, string>): { missing: string[]; edits: Edit[] } {
  const missing = new Set<string>();
  const edits: Edit[] = [];
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value !== 'string' || !node.value.startsWith(KO_PREFIX)) return;
      const importPath = node.value.slice(KO_PREFIX.length).trim();
      const reference = references.get(importPath);
      if (reference === undefined) {
        missing.add(importPath);
        return;
      }
      if (!node.range) throw new TskoError('INTERNAL', `no source position for ko://${importPath}`);
      const text = node.type === 'QUOTE_SINGLE' ? `'${reference}'` : node.type === 'QUOTE_DOUBLE' ? JSON.stringify(reference) : reference;
      edits.push({ from: node.range[0], to: node.range[1], text });
    },
  });
  return { missing: [...missing], edits };
}

function describe(doc: Document, file: string, index: number): Omit<ManifestObject, 'yaml'> {
  const importPaths: string[] = [];
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string' && node.value.startsWith(KO_PREFIX)) importPaths.push(node.value.slice(KO_PREFIX.length).trim());
    },
  });
  const get = (path: string[]): unknown => {
    const node = doc.getIn(path, true);
    return isScalar(node) ? node.value : node;
  };
  const apiVersion = get(['apiVersion']);
  const kind = get(['kind']);
  const name = get(['metadata', 'name']);
  const namespace = get(['metadata', 'namespace']);
  const where = `${file}: document ${index + 1}`;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') throw new TskoError('KUBE', `${where} has no apiVersion and kind`);
  if (typeof name !== 'string' || name === '') throw new TskoError('KUBE', `${where} (${kind}) has no metadata.name`);
  return { file, index, apiVersion, kind, name, namespace: typeof namespace === 'string' ? namespace : undefined, importPaths };
}
