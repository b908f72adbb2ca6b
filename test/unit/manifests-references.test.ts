// ko:// in the Kubernetes target's manifests and in `tsko resolve` is one rule, written one way:
// the cases where the manifests mode used to differ (untrimmed detection, its own quoting, block
// scalars spliced into broken YAML, Lists, empty documents) now give tsko resolve's text.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { parse } from 'yaml';
import { resolveManifests } from '../../src/deploy/kube-manifests.js';
import { isTskoError } from '../../src/errors.js';
import { parseDocuments, stringifyDocuments } from '../../src/resolve/documents.js';
import { findReferences, replaceReference } from '../../src/resolve/references.js';
import { makeTempDir } from '../support/tmp.js';

const REF = '127.0.0.1:5001/x@sha256:1';
const refs = new Map([['example.com/x', REF]]);

async function manifest(t: TestContext, text: string): Promise<string> {
  const file = join(await makeTempDir('manifest-refs', t), 'app.yaml');
  await writeFile(file, text);
  return file;
}

/** What `tsko resolve` prints for the text, every reference published as REF. */
function resolved(text: string): string {
  const documents = parseDocuments({ name: 'app.yaml', text });
  for (const ref of findReferences(documents)) replaceReference(ref, REF);
  return stringifyDocuments(documents);
}

const header = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n';

describe('ko:// in manifests, as tsko resolve reads and writes it', () => {
  it('finds a reference by its trimmed text, as ko does, and replaces the whole scalar', async (t) => {
    const text = `${header}data: {a: " ko://example.com/x ", b: "not ko://example.com/x"}\n`;
    const { objects } = await resolveManifests([await manifest(t, text)], refs);
    assert.deepEqual(objects[0]?.importPaths, ['example.com/x']);
    assert.equal(objects[0]?.yaml, `${header}data: {a: "${REF}", b: "not ko://example.com/x"}\n`);
    assert.equal(objects[0]?.yaml, resolved(text));
  });

  it('keeps single and double quotes, comments and plain style', async (t) => {
    const text = `${header}data:\n  a: 'ko://example.com/x'\n  b: "ko://example.com/x" # pinned\n  c: [ko://example.com/x]\n`;
    const { objects } = await resolveManifests([await manifest(t, text)], refs);
    assert.equal(objects[0]?.yaml, `${header}data:\n  a: '${REF}'\n  b: "${REF}" # pinned\n  c: [${REF}]\n`);
    assert.deepEqual(parse(objects[0]?.yaml ?? '').data, { a: REF, b: REF, c: [REF] });
    assert.equal(objects[0]?.yaml, resolved(text));
  });

  it('replaces a reference that is a map key', async (t) => {
    const text = `${header}data:\n  ko://example.com/x: image\n`;
    const { objects } = await resolveManifests([await manifest(t, text)], refs);
    assert.deepEqual(objects[0]?.importPaths, ['example.com/x']);
    assert.deepEqual(parse(objects[0]?.yaml ?? '').data, { [REF]: 'image' });
    assert.equal(objects[0]?.yaml, resolved(text));
  });

  it('writes a block scalar reference as a plain one, the next key on its own line', async (t) => {
    const text = `${header}data:\n  a: |\n    ko://example.com/x\n  b: kept\n`;
    const { objects } = await resolveManifests([await manifest(t, text)], refs);
    assert.equal(objects[0]?.yaml, `${header}data:\n  a: ${REF}\n  b: kept\n`);
    assert.equal(objects[0]?.yaml, resolved(text));
  });

  it('applies the items of a List one by one, holding back only the item whose image is not pushed', async (t) => {
    const text = [
      'apiVersion: v1',
      'kind: List',
      'items:',
      '- apiVersion: v1',
      '  kind: Pod',
      '  metadata: {name: a, namespace: team}',
      '  spec: {containers: [{image: ko://example.com/x}]} # pushed',
      '- apiVersion: v1',
      '  kind: Pod',
      '  metadata: {name: b}',
      '  spec: {containers: [{image: ko://example.com/y}]}',
      '',
    ].join('\n');
    const file = await manifest(t, text);
    const { objects, skipped } = await resolveManifests([file], refs);
    assert.deepEqual(skipped, [{ object: 'Pod/b', missing: ['example.com/y'], apiVersion: 'v1', kind: 'Pod', name: 'b', namespace: undefined, importPaths: ['example.com/y'] }]);
    assert.deepEqual(objects.map(({ file: f, index, apiVersion, kind, name, namespace, importPaths }) => ({ f, index, apiVersion, kind, name, namespace, importPaths })), [
      { f: file, index: 0, apiVersion: 'v1', kind: 'Pod', name: 'a', namespace: 'team', importPaths: ['example.com/x'] },
    ]);
    const yaml = objects[0]?.yaml ?? '';
    assert.deepEqual(parse(yaml), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a', namespace: 'team' }, spec: { containers: [{ image: REF }] } });
    assert.match(yaml, /# pushed\n$/);
    // What is sent to the API server: the same object as JSON, no comment.
    assert.deepEqual(objects[0]?.body, parse(yaml));

    await writeFile(file, 'apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n  metadata: {name: a}\n');
    await assert.rejects(resolveManifests([file], refs), (err: unknown) => isTskoError(err) && err.code === 'KUBE' && err.message === `${file}: document 1 item 1 has no apiVersion and kind`);
  });

  it('keeps comments before --- with the document after them, skips empty documents and counts them', async (t) => {
    const text = `# license\n${header}...\n# second\n---\n${header.replace('name: c', 'name: d')}---\n---\n${header.replace('name: c', 'name: e')}`;
    const { objects } = await resolveManifests([await manifest(t, text)], refs);
    assert.deepEqual(objects.map((o) => [o.name, o.index]), [['c', 0], ['d', 1], ['e', 3]]);
    assert.equal(objects[0]?.yaml, `# license\n${header}`);
    assert.equal(objects[1]?.yaml, `# second\n---\n${header.replace('name: c', 'name: d')}`);
    assert.equal(objects.map((o) => o.yaml).join(''), resolved(text));
  });

  it('names the file, position and document of malformed YAML, and of a ko:// with no import path', async (t) => {
    const bad = await manifest(t, `${header}---\na: "unterminated\n`);
    await assert.rejects(resolveManifests([bad], refs), (err: unknown) => isTskoError(err) && err.code === 'KUBE' && err.message.startsWith(`${bad}:5:`) && / document 2 is not valid YAML: Missing closing "quote$/.test(err.message));
    const empty = await manifest(t, `${header}data: {a: 'ko://'}\n`);
    await assert.rejects(resolveManifests([empty], refs), (err: unknown) => isTskoError(err) && err.code === 'KUBE' && err.message === `${empty}:4: "ko://" names no import path`);
  });
});
