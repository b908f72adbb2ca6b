// kubectl's label selectors on metadata.labels (`-l app=web,tier!=db,canary,!legacy`), applied to
// each document and, in a `kind: List`, to each item, as ko does before it builds anything.
import { isMap, type Document, type Node } from 'yaml';
import { TskoError } from '../errors.js';
import { listItems, type ParsedDocument } from './documents.js';

export type Requirement =
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'exists' | '!exists' };

export type Selector = Requirement[];

// Label keys: an optional DNS-subdomain prefix and a name; values: the same name rules or empty.
const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export function parseSelector(text: string): Selector {
  const requirements: Selector = [];
  for (const raw of text.split(',')) {
    const part = raw.trim();
    if (part === '') throw new TskoError('RESOLVE', `invalid selector "${text}": empty requirement`);
    if (/\s(in|notin)\s*\(/.test(part) || part.includes('(')) {
      throw new TskoError('RESOLVE', `invalid selector "${text}": set-based requirements (in, notin) are not supported`, { hint: 'use key=value, key!=value, key or !key' });
    }
    const match = /^(!)?\s*([^=!\s]+)\s*(?:(==|=|!=)\s*(.*))?$/.exec(part);
    if (!match) throw new TskoError('RESOLVE', `invalid selector "${text}": cannot parse "${part}"`, { hint: 'use key=value, key!=value, key or !key' });
    const [, not, key = '', op, value = ''] = match;
    if (!KEY.test(key)) throw new TskoError('RESOLVE', `invalid selector "${text}": "${key}" is not a valid label key`);
    if (op === undefined) {
      requirements.push({ key, op: not ? '!exists' : 'exists' });
      continue;
    }
    if (not) throw new TskoError('RESOLVE', `invalid selector "${text}": "!" goes only before a bare key`);
    if (!VALUE.test(value.trim())) throw new TskoError('RESOLVE', `invalid selector "${text}": "${value}" is not a valid label value`);
    requirements.push({ key, op: op === '!=' ? '!=' : '=', value: value.trim() });
  }
  return requirements;
}

export function matchesLabels(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return selector.every((req) => {
    const has = Object.hasOwn(labels, req.key);
    switch (req.op) {
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case '=':
        return has && labels[req.key] === req.value;
      case '!=':
        return !has || labels[req.key] !== req.value;
    }
  });
}

/** The documents (and List items) the selector keeps; a List left with no items is dropped. */
export function selectDocuments(documents: readonly ParsedDocument[], selector: Selector): ParsedDocument[] {
  const kept: ParsedDocument[] = [];
  for (const parsed of documents) {
    const { document } = parsed;
    const items = listItems(document);
    if (items) {
      const before = items.items.length;
      items.items = items.items.filter((item) => matchesLabels(selector, labelsOf(item as Node)));
      if (items.items.length === before) kept.push(parsed);
      else if (items.items.length > 0) kept.push({ ...parsed, restructured: true });
    } else if (matchesLabels(selector, labelsOf(document.contents as Node | null))) {
      kept.push(parsed);
    }
  }
  return kept;
}

function labelsOf(node: Node | null | Document): Record<string, string> {
  if (!isMap(node)) return {};
  const labels = node.getIn(['metadata', 'labels'], true);
  if (!isMap(labels)) return {};
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels.toJSON() as Record<string, unknown>)) {
    if (value !== null && value !== undefined) out[key] = String(value);
  }
  return out;
}
