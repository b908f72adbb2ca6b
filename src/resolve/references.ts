// `ko://` references in YAML documents: every string scalar (values, list items, keys, in any
// kind of document) whose trimmed text starts with ko://, with the file and line it sits on.
import { CST, visit, type Scalar } from 'yaml';
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
  const found: KoReference[] = [];
  for (const { document, file, lines } of documents) {
    visit(document, {
      Scalar(_key, node) {
        if (typeof node.value !== 'string') return;
        const text = node.value.trim();
        if (!text.startsWith(KO_PREFIX)) return;
        const line = node.range ? lines.linePos(node.range[0]).line : 0;
        found.push({ spec: text.slice(KO_PREFIX.length).trim(), file, line, node });
      },
    });
  }
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
