// The stand-in kubelet's image reference parsing (test/support/control-plane/image-exists.ts):
// which registry host, repository and tag or digest a pod's image names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseImageReference } from '../support/control-plane/image-exists.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

test('image references split into host, repository and tag or digest', () => {
  assert.deepEqual(parseImageReference(`127.0.0.1:5000/kcp/app@${DIGEST}`), { host: '127.0.0.1:5000', repository: 'kcp/app', reference: DIGEST });
  assert.deepEqual(parseImageReference('127.0.0.1:5000/app:v2'), { host: '127.0.0.1:5000', repository: 'app', reference: 'v2' });
  assert.deepEqual(parseImageReference('localhost/app'), { host: 'localhost', repository: 'app', reference: 'latest' });
  assert.deepEqual(parseImageReference(`localhost:5000/a/b:t@${DIGEST}`), { host: 'localhost:5000', repository: 'a/b', reference: DIGEST });
  // No host part: Docker Hub, which the stand-in kubelet never reaches.
  assert.deepEqual(parseImageReference('nginx'), { host: 'docker.io', repository: 'nginx', reference: 'latest' });
  assert.deepEqual(parseImageReference('library/nginx:1.27'), { host: 'docker.io', repository: 'library/nginx', reference: '1.27' });
});
