// The one loopback rule (src/net/loopback.ts) that the registry client, the deploy targets and
// the embedded registry's bind check all call: every spelling the three copies it replaced used
// to accept, and none that names another machine.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost } from '../../src/net/loopback.js';

const LOOPBACK = [
  // names
  'localhost', 'LOCALHOST', 'localhost:5000', 'registry.localhost', 'a.b.localhost:80',
  // IPv4 127.0.0.0/8
  '127.0.0.1', '127.0.0.1:5000', '127.1.2.3:80', '127.255.255.255',
  // IPv6, bare and bracketed, with and without port
  '::1', '[::1]', '[::1]:5000', '0:0:0:0:0:0:0:1', '[0:0:0:0:0:0:0:1]:443', '::ffff:127.0.0.1', '[::ffff:127.9.8.7]:1',
  // with a path or a scheme
  'localhost:5000/team', '127.0.0.1:5001/hello@sha256:x', 'https://127.0.0.1:6443', 'http://[::1]:80/', 'http://LocalHost/v2/',
  ' 127.0.0.1 ',
];

const ELSEWHERE = [
  '', 'gcr.io', 'gcr.io/p', 'europe-docker.pkg.dev/p/r', 'https://run.googleapis.com', 'https://10.0.0.1', '10.0.0.1:5000',
  '192.168.1.2:5000', '128.0.0.1', '127.0.0.256', '127.0.0', '127.0.0.1.nip.io', 'localhost.example.com', 'mylocalhost:5000',
  'notlocalhost', '[::2]:5000', '::', '::ffff:10.0.0.1', '[::ffff:128.0.0.1]', '0.0.0.0:0', 'http://[not-an-ip/',
];

describe('isLoopbackHost', () => {
  it('knows this machine in every spelling', () => {
    for (const host of LOOPBACK) assert.equal(isLoopbackHost(host), true, host);
  });

  it('refuses every other host', () => {
    for (const host of ELSEWHERE) assert.equal(isLoopbackHost(host), false, host);
  });
});
