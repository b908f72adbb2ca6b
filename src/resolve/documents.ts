// YAML documents for resolve: composed with the `yaml` package's Document API (to find scalars,
// labels and positions) while keeping each document's concrete syntax tree, so the output is the
// input's own text — comments, key order, quoting, indentation, flow style — with only the ko://
// scalars edited in place. A parse error names the file, line and column.
import { Composer, CST, isScalar, LineCounter, Parser, type Document } from 'yaml';
import { TskoError } from '../errors.js';
import type { SourceFile } from './inputs.js';

export interface ParsedDocument {
  file: string;
  document: Document;
  lines: LineCounter;
  /** The document's syntax tree, and the comment lines before its `---` (a license header). */
  source: { prefix: string; token: CST.Document };
  /** Set when the structure changed (List items dropped): printed from the Document instead. */
  restructured: boolean;
}

export function parseDocuments(file: SourceFile): ParsedDocument[] {
  const lines = new LineCounter();
  const tokens = [...new Parser(lines.addNewLine).parse(file.text)];
  const documents = [...new Composer({ keepSourceTokens: true }).compose(tokens, true)];

  // The composer makes one Document per document token; comments before one belong to it.
  const sources: Array<{ prefix: string; token: CST.Document }> = [];
  let prefix = '';
  for (const token of tokens) {
    if (token.type === 'document') {
      sources.push({ prefix, token });
      prefix = '';
    } else if (token.type === 'comment' || token.type === 'newline' || token.type === 'space') {
      prefix += CST.stringify(token);
    }
  }

  const out: ParsedDocument[] = [];
  for (const [i, document] of documents.entries()) {
    const error = document.errors[0];
    if (error) {
      // An error found at the end of input (an unclosed quote) points at the last line with text.
      const pos = lines.linePos(Math.min(error.pos[0], Math.max(0, file.text.trimEnd().length - 1)));
      throw new TskoError('RESOLVE', `${file.name}:${pos.line}:${pos.col}: invalid YAML: ${error.message.split('\n')[0] ?? ''}`);
    }
    // `---` at the end of a file, or two in a row, make empty documents: nothing to pass on.
    if (document.contents === null || (isScalar(document.contents) && document.contents.value === null)) continue;
    const source = sources[i];
    if (!source) throw new TskoError('INTERNAL', `${file.name}: document ${i + 1} has no source`);
    out.push({ file: file.name, document, lines, source, restructured: false });
  }
  return out;
}

/** The documents as one YAML stream, `---` between them. */
export function stringifyDocuments(documents: readonly ParsedDocument[]): string {
  return documents
    .map((parsed, i) => {
      let text: string;
      let marked: boolean;
      if (parsed.restructured) {
        if (parsed.document.directives) parsed.document.directives.docStart = null;
        text = parsed.document.toString({ lineWidth: 0 });
        marked = false;
      } else {
        text = parsed.source.prefix + CST.stringify(parsed.source.token);
        marked = parsed.source.token.start.some((t) => t.type === 'doc-start');
      }
      if (!text.endsWith('\n')) text += '\n';
      return i > 0 && !marked ? `---\n${text}` : text;
    })
    .join('');
}
