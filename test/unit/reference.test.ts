// Image reference parsing: docker's normalisation rules and the distribution grammar, good and bad inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TskoError } from '../../src/errors.js';
import { isLoopbackHost as isLoopbackRegistry } from '../../src/net/loopback.js';
import { formatReference, parseReference, parseRepository } from '../../src/registry/reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  const good: Array<[string, ReturnType<typeof parseReference>]> = [
    ['alpine', { registry: 'index.docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['alpine:3.20', { registry: 'index.docker.io', repository: 'library/alpine', tag: '3.20' }],
    ['docker.io/alpine', { registry: 'index.docker.io', repository: 'library/alpine', tag: 'latest' }],
    ['docker.io/library/alpine:edge', { registry: 'index.docker.io', repository: 'library/alpine', tag: 'edge' }],
    ['user/app', { registry: 'index.docker.io', repository: 'user/app', tag: 'latest' }],
    ['gcr.io/proj/app:v1', { registry: 'gcr.io', repository: 'proj/app', tag: 'v1' }],
    ['127.0.0.1:5000/x', { registry: '127.0.0.1:5000', repository: 'x', tag: 'latest' }],
    ['localhost/x/y', { registry: 'localhost', repository: 'x/y', tag: 'latest' }],
    ['localhost:5000/a_b/c__d/e-f--g.h:T_1.0-x', { registry: 'localhost:5000', repository: 'a_b/c__d/e-f--g.h', tag: 'T_1.0-x' }],
    [`cgr.dev/chainguard/static@${DIGEST}`, { registry: 'cgr.dev', repository: 'chainguard/static', digest: DIGEST }],
    [`cgr.dev/chainguard/static:latest@${DIGEST}`, { registry: 'cgr.dev', repository: 'chainguard/static', tag: 'latest', digest: DIGEST }],
    ['[::1]:5000/x:1', { registry: '[::1]:5000', repository: 'x', tag: '1' }],
    ['Example.COM/x', { registry: 'Example.COM', repository: 'x', tag: 'latest' }],
  ];
  for (const [input, want] of good) {
    it(`parses ${input}`, () => {
      assert.deepEqual(parseReference(input), want);
    });
  }

  it('uses defaultTag, and none when it is empty', () => {
    assert.equal(parseReference('gcr.io/p/a', { defaultTag: 'dev' }).tag, 'dev');
    assert.equal(parseReference('gcr.io/p/a', { defaultTag: '' }).tag, undefined);
  });

  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['gcr.io/Proj/app', /lowercase/],
    ['UPPER', /lowercase/],
    ['gcr.io/p/app:', /bad tag/],
    ['gcr.io/p/app:-x', /bad tag/],
    [`gcr.io/p/app:${'t'.repeat(129)}`, /bad tag/],
    ['gcr.io/p/app@sha256:abc', /bad digest/],
    [`gcr.io/p/app@sha512:${'a'.repeat(64)}`, /bad digest/],
    [`gcr.io/p/app@sha256:${'A'.repeat(64)}`, /bad digest/],
    ['gcr.io//app', /empty path component/],
    ['gcr.io/p/app/', /empty path component/],
    ['gcr.io/p/-app', /bad path component/],
    ['gcr.io/p/a..b', /bad path component/],
    ['bad_host.io:x/app', /bad registry host|bad tag/],
    ['gcr.io:99999999/app', /bad registry host/],
    ['gcr.io/', /missing repository/],
    [`gcr.io/${'a'.repeat(256)}`, /longer than 255/],
    ['a b', /bad path component/],
  ];
  for (const [input, pattern] of bad) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parseReference(input),
        (err: unknown) => err instanceof TskoError && err.code === 'REFERENCE' && pattern.test(err.message) && !err.message.includes('\n'),
      );
    });
  }
});

describe('parseRepository', () => {
  it('parses KO_DOCKER_REPO shapes', () => {
    assert.deepEqual(parseRepository('127.0.0.1:5000/x'), { registry: '127.0.0.1:5000', repository: 'x' });
    assert.deepEqual(parseRepository('gcr.io/proj'), { registry: 'gcr.io', repository: 'proj' });
    assert.deepEqual(parseRepository('gcr.io/proj/'), { registry: 'gcr.io', repository: 'proj' });
    assert.deepEqual(parseRepository('user'), { registry: 'index.docker.io', repository: 'library/user' });
    assert.deepEqual(parseRepository('docker.io/user'), { registry: 'index.docker.io', repository: 'library/user' });
  });

  for (const input of ['gcr.io/proj:tag', `gcr.io/proj@${DIGEST}`, 'gcr.io', 'localhost:5000', 'gcr.io/Proj', '']) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(() => parseRepository(input), (err: unknown) => err instanceof TskoError && err.code === 'REFERENCE');
    });
  }
});

describe('formatReference', () => {
  it('round-trips and omits missing parts', () => {
    for (const text of ['gcr.io/p/a:v1', `gcr.io/p/a@${DIGEST}`, `gcr.io/p/a:v1@${DIGEST}`, 'index.docker.io/library/alpine:latest']) {
      assert.equal(formatReference(parseReference(text)), text);
    }
    assert.equal(formatReference({ registry: 'h:1', repository: 'r' }), 'h:1/r');
  });
});

describe('isLoopbackRegistry', () => {
  it('knows loopback hosts with and without ports', () => {
    for (const host of ['localhost', 'localhost:5000', '127.0.0.1', '127.0.0.1:5000', '127.1.2.3:80', '[::1]', '[::1]:5000']) {
      assert.equal(isLoopbackRegistry(host), true, host);
    }
    for (const host of ['gcr.io', '10.0.0.1:5000', '128.0.0.1', '127.0.0.1.nip.io', 'mylocalhost:5000', '[::2]:5000', '127.0.0.256']) {
      assert.equal(isLoopbackRegistry(host), false, host);
    }
  });
});
