// YAML documents for resolve: composed with the `yaml` package's Document API (to find scalars,
// labels and positions) while keeping each document's concrete syntax tree, so the output is the
// input's own text — comments, key order, quoting, indentation, flow style — with only the ko://
// scalars edited in place. A parse error names the file, line and column.
import { Composer, CST, isScalar, isSeq, LineCounter, Parser, type Document, type YAMLSeq } from 'yaml';
import { TskoError } from '../errors.js';
import type { SourceFile } from './inputs.js';

export interface ParsedDocument {
  file: string;
  /** 0-based position in its file, counting the empty documents that are not kept. */
  index: number;
  document: Document;
  lines: LineCounter;
  /** The document's syntax tree, and the comment lines before its `---` (a license header). */
  source: { prefix: string; token: CST.Document };
  /** Set when the structure changed (List items dropped): printed from the Document instead. */
  restructured: boolean;
}

/** Where a file stops being YAML, for a caller that words the error its own way. */
export interface YamlSyntaxError {
  file: string;
  /** 0-based, as ParsedDocument.index. */
  document: number;
  line: number;
  col: number;
  /** The parser's first line. */
  message: string;
}

export interface ParseOptions {
  /** The error to throw; by default a RESOLVE error naming file:line:col. */
  invalid?: (error: YamlSyntaxError) => Error;
}

const invalidForResolve = (error: YamlSyntaxError): Error =>
  new TskoError('RESOLVE', `${error.file}:${error.line}:${error.col}: invalid YAML: ${error.message}`);

export function parseDocuments(file: SourceFile, options: ParseOptions = {}): ParsedDocument[] {
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
      const invalid = options.invalid ?? invalidForResolve;
      throw invalid({ file: file.name, document: i, line: pos.line, col: pos.col, message: error.message.split('\n')[0] ?? '' });
    }
    // `---` at the end of a file, or two in a row, make empty documents: nothing to pass on.
    if (document.contents === null || (isScalar(document.contents) && document.contents.value === null)) continue;
    const source = sources[i];
    if (!source) throw new TskoError('INTERNAL', `${file.name}: document ${i + 1} has no source`);
    out.push({ file: file.name, index: i, document, lines, source, restructured: false });
  }
  return out;
}

/** The documents as one YAML stream, `---` between them. */
export function stringifyDocuments(documents: readonly ParsedDocument[]): string {
  return documents.map((parsed, i) => (i > 0 && !startsWithMarker(parsed) ? `---\n${documentText(parsed)}` : documentText(parsed))).join('');
}

/**
 * One document as text: its own source with the edits made through the CST, its leading comments
 * and `---` included; or, once restructured, printed from the Document, with no `---`.
 */
export function documentText(parsed: ParsedDocument): string {
  let text: string;
  if (parsed.restructured) {
    if (parsed.document.directives) parsed.document.directives.docStart = null;
    text = parsed.document.toString({ lineWidth: 0 });
  } else {
    text = parsed.source.prefix + CST.stringify(parsed.source.token);
  }
  return text.endsWith('\n') ? text : `${text}\n`;
}

function startsWithMarker(parsed: ParsedDocument): boolean {
  return !parsed.restructured && parsed.source.token.start.some((t) => t.type === 'doc-start');
}

/** The items of a `kind: List` document, each an object of its own to kubectl and ko. */
export function listItems(document: Document): YAMLSeq | undefined {
  const items = document.get('items', true);
  return document.get('kind') === 'List' && isSeq(items) ? items : undefined;
}
