// YAML documents as the `yaml` package's Document nodes (never parse-and-dump), so comments, key
// order, quoting and flow style survive; a parse error names the file, line and column.
import { isScalar, LineCounter, parseAllDocuments, type Document } from 'yaml';
import { TskoError } from '../errors.js';
import type { SourceFile } from './inputs.js';

export interface ParsedDocument {
  file: string;
  document: Document;
  lines: LineCounter;
}

export function parseDocuments(source: SourceFile): ParsedDocument[] {
  const lines = new LineCounter();
  const parsed = parseAllDocuments(source.text, { lineCounter: lines, prettyErrors: true });
  const documents = Array.isArray(parsed) ? parsed : [];
  const out: ParsedDocument[] = [];
  for (const document of documents) {
    const error = document.errors[0];
    if (error) {
      const pos = error.linePos?.[0] ?? lines.linePos(error.pos[0]);
      const message = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw new TskoError('USAGE', `${source.name}:${pos.line}:${pos.col}: invalid YAML: ${message}`);
    }
    // `---` at the end of a file, or two in a row, make empty documents: nothing to pass on.
    if (document.contents === null || (isScalar(document.contents) && document.contents.value === null)) continue;
    out.push({ file: source.name, document, lines });
  }
  return out;
}

/** The documents as one stream: each without its own `---`, separated by `---`. */
export function stringifyDocuments(documents: readonly ParsedDocument[]): string {
  return documents
    .map(({ document }) => {
      if (document.directives) document.directives.docStart = null;
      const text = document.toString({ lineWidth: 0 });
      return text.endsWith('\n') ? text : `${text}\n`;
    })
    .join('---\n');
}
