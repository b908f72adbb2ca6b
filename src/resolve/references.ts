// `ko://` references in YAML documents: every string scalar (values, list items, keys, in any
// kind of document) whose trimmed text starts with ko://, with the file and line it sits on.
import { CST, visit, type Document, type LineCounter, type Node, type Scalar } from 'yaml';
import type { ParsedDocument } from './documents.js';

export const KO_PREFIX = 'ko://';

export interface KoReference {
  /** The import path or ./dir after ko://, trimmed. */
  spec: string;
  file: string;
  line: number;
  node: Scalar;
}

export function findReferences(documents: readonly ParsedDocument[]): KoReference[] {
  return documents.flatMap(({ document, file, lines }) => referencesIn(document, file, lines));
}

/** The references in one document or one node of it (a List item, which is applied on its own). */
export function referencesIn(node: Document | Node, file: string, lines: LineCounter): KoReference[] {
  const found: KoReference[] = [];
  visit(node, {
    Scalar(_key, scalar) {
      if (typeof scalar.value !== 'string') return;
      const text = scalar.value.trim();
      if (!text.startsWith(KO_PREFIX)) return;
      const line = scalar.range ? lines.linePos(scalar.range[0]).line : 0;
      found.push({ spec: text.slice(KO_PREFIX.length).trim(), file, line, node: scalar });
    },
  });
  return found;
}

/**
 * Puts the published reference in place of the scalar, in the Document and in the source text,
 * keeping its quoting; a block scalar (`|`) becomes a plain one, as a reference is one line.
 */
export function replaceReference(reference: KoReference, published: string): void {
  const { node } = reference;
  const block = node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED';
  node.value = published;
  if (block) node.type = 'PLAIN';
  if (node.srcToken) CST.setScalarValue(node.srcToken, published, block ? { type: 'PLAIN' } : {});
}
