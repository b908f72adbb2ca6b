// The local target with real components: images built by tsko's own builder and the real Go
// toolchain, revisions started as real processes, HTTP through the real front port. Plus the
// unpacker's tar semantics (whiteouts, escapes, modes, links) on hand-made layers.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readdir, readlink, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { resolveConfig } from '../../src/config/resolve.js';
import { FrontProxy } from '../../src/deploy/front-proxy.js';
import { createLocalTarget, type LocalTarget, type LocalTargetOptions } from '../../src/deploy/local.js';
import { applyLayer, archivePath, inRootTarget } from '../../src/deploy/layer-apply.js';
import { unpackImage } from '../../src/deploy/unpack.js';
import { TskoError } from '../../src/errors.js';
import { createEventBus, withFields, type EventBus, type TskoEvent } from '../../src/events.js';
import { runnableOf } from '../../src/image/assemble.js';
import type { Digest } from '../../src/image/digest.js';
import { memoryLayer, readLayer } from '../../src/image/layer.js';
import type { Image, Layer } from '../../src/image/types.js';
import { makePipeline, type Pipeline } from '../../src/publish/pipeline.js';
import { stage } from '../../src/stage.js';
import type { DeployResult } from '../../src/deploy/target.js';
import { freePort } from '../support/docker-registry.js';
import { goCacheDir } from '../support/go-env.js';
import { makeTempDir } from '../support/tmp.js';
import { repoRoot } from '../support/tsko-cli.js';

// ---------------------------------------------------------------------------------------------
// Hand-made layers for the unpacker.

type Entry =
  | { name: string; type: 'file'; content?: string; mode?: number }
  | { name: string; type: 'directory'; mode?: number }
  | { name: string; type: 'symlink' | 'link'; linkname: string };

async function tarOf(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    p.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    p.on('end', () => resolve());
    p.on('error', reject);
  });
  for (const entry of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (entry.type === 'file') p.entry({ name: entry.name, mode: entry.mode ?? 0o644, mtime: new Date(1_000_000_000_000) }, entry.content ?? '', cb);
      else if (entry.type === 'directory') p.entry({ name: entry.name, type: 'directory', mode: entry.mode ?? 0o755 }, cb);
      else p.entry({ name: entry.name, type: entry.type, linkname: entry.linkname }, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function layerOf(entries: Entry[]): Promise<Layer> {
  const tar = await tarOf(entries);
  const data = gzipSync(tar);
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;
  return memoryLayer({ digest: sha(data), diffId: sha(tar), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }, data);
}

describe('unpack', () => {
  it('applies layers in order: whiteouts and opaque dirs hide lower files, modes are kept', async (t) => {
    const dir = await makeTempDir('unpack', t);
    const lower = await layerOf([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/keep', type: 'file', content: 'keep' },
      { name: 'etc/gone', type: 'file', content: 'gone' },
      { name: 'data/', type: 'directory' },
      { name: 'data/old-a', type: 'file', content: 'a' },
      { name: 'data/sub/old-b', type: 'file', content: 'b' },
      { name: 'bin/tool', type: 'file', content: '#!/bin/sh\n', mode: 0o755 },
      { name: 'secret', type: 'file', content: 's', mode: 0o600 },
      { name: 'replaced', type: 'file', content: 'lower' },
    ]);
    const upper = await layerOf([
      { name: 'data/new', type: 'file', content: 'new' },
      { name: 'data/.wh..wh..opq', type: 'file' },
      { name: 'etc/.wh.gone', type: 'file' },
      { name: 'ro/', type: 'directory', mode: 0o555 },
      { name: 'ro/inside', type: 'file', content: 'x', mode: 0o444 },
      { name: 'replaced', type: 'file', content: 'upper' },
      { name: 'sticky/', type: 'directory', mode: 0o1777 },
    ]);
    const root = join(dir, 'rootfs');
    await unpackImage([lower, upper], root, { cacheDir: join(dir, 'cache') });

    assert.equal(await readFile(join(root, 'etc/keep'), 'utf8'), 'keep');
    assert.equal(existsSync(join(root, 'etc/gone')), false, '.wh.gone removes the lower file');
    assert.equal(existsSync(join(root, 'etc/.wh.gone')), false, 'whiteout markers are not files');
    assert.deepEqual((await readdir(join(root, 'data'))).sort(), ['new'], 'the opaque dir keeps only what its own layer put there');
    assert.equal(await readFile(join(root, 'replaced'), 'utf8'), 'upper');
    assert.equal((await stat(join(root, 'bin/tool'))).mode & 0o7777, 0o755);
    assert.equal((await stat(join(root, 'secret'))).mode & 0o7777, 0o600);
    assert.equal((await stat(join(root, 'ro'))).mode & 0o7777, 0o555);
    assert.equal((await stat(join(root, 'ro/inside'))).mode & 0o7777, 0o444);
    assert.equal((await stat(join(root, 'sticky'))).mode & 0o7777, 0o1777);
    assert.equal((await stat(join(root, 'etc/keep'))).mtimeMs, 1_000_000_000_000, 'mtime from the header');

    // The lower layer was cached as a chain, and the top layer's overwrite of `replaced` did not
    // write through a hard link into it.
    const chains = await readdir(join(dir, 'cache'));
    assert.equal(chains.length, 1);
    assert.equal(await readFile(join(dir, 'cache', chains[0] as string, 'replaced'), 'utf8'), 'lower');
    const again = await unpackImage([lower, upper], join(dir, 'rootfs2'), { cacheDir: join(dir, 'cache') });
    assert.equal(again.cachedLayers, 1);
    assert.equal(await readFile(join(dir, 'rootfs2/replaced'), 'utf8'), 'upper');
    assert.equal(existsSync(join(dir, 'rootfs2/etc/gone')), false);
  });

  it('clears a re-declared lower directory under an opaque one, ignores whiteouts of what is not there, drops setuid', async (t) => {
    const dir = await makeTempDir('unpack-opaque', t);
    const lower = await layerOf([
      { name: 'app/', type: 'directory' },
      { name: 'app/sub/', type: 'directory' },
      { name: 'app/sub/old', type: 'file', content: 'old' },
      { name: 'app/other', type: 'file', content: 'other' },
    ]);
    const upper = await layerOf([
      { name: 'app/', type: 'directory', mode: 0o750 },
      { name: 'app/sub/', type: 'directory' },
      { name: 'app/.wh..wh..opq', type: 'file' },
      { name: 'app/sub/new', type: 'file', content: 'new' },
      { name: 'nowhere/.wh.thing', type: 'file' },
      { name: 'nowhere2/.wh..wh..opq', type: 'file' },
      { name: 'suid', type: 'file', content: '#!/bin/sh\n', mode: 0o4755 },
    ]);
    const root = join(dir, 'rootfs');
    await unpackImage([lower, upper], root, { cacheDir: join(dir, 'cache') });
    assert.deepEqual((await readdir(join(root, 'app'))).sort(), ['sub']);
    assert.deepEqual(await readdir(join(root, 'app/sub')), ['new'], 'the lower app/sub/old is hidden by the opaque app/');
    assert.equal((await stat(join(root, 'app'))).mode & 0o7777, 0o750);
    assert.equal(existsSync(join(root, 'nowhere')), false);
    assert.equal(existsSync(join(root, 'nowhere2')), false);
    assert.equal((await stat(join(root, 'suid'))).mode & 0o7777, 0o755);
  });

  it('keeps the chain under a changed middle layer, so a kodata edit extracts only kodata and the binary', async (t) => {
    const dir = await makeTempDir('unpack-chains', t);
    const cacheDir = join(dir, 'cache');
    const base = await layerOf([{ name: 'etc/base', type: 'file', content: 'base' }]);
    const data1 = await layerOf([{ name: 'var/run/ko/index.html', type: 'file', content: 'one' }]);
    const data2 = await layerOf([{ name: 'var/run/ko/index.html', type: 'file', content: 'two' }]);
    const app = await layerOf([{ name: 'ko-app/app', type: 'file', content: 'bin', mode: 0o555 }]);
    const read: string[] = [];
    // The layers record every time their bytes are opened.
    const [cBase, cData1, cData2, cApp] = [base, data1, data2, app].map(
      (layer): Layer => ({
        ...layer,
        open: (signal) => {
          read.push(layer.digest);
          return layer.open(signal);
        },
      }),
    ) as [Layer, Layer, Layer, Layer];
    const cold = await unpackImage([cBase, cData1, cApp], join(dir, 'r1'), { cacheDir });
    assert.equal(cold.cachedLayers, 0);
    assert.equal(cold.chains.length, 2);
    assert.deepEqual((await readdir(cacheDir)).sort(), [...cold.chains].sort());
    read.length = 0;
    const warm = await unpackImage([cBase, cData1, cApp], join(dir, 'r2'), { cacheDir });
    assert.equal(warm.cachedLayers, 2);
    assert.deepEqual(read, [app.digest], 'a warm revision reads only its top layer');
    read.length = 0;
    const edited = await unpackImage([cBase, cData2, cApp], join(dir, 'r3'), { cacheDir });
    assert.equal(edited.cachedLayers, 1);
    assert.deepEqual(read, [data2.digest, app.digest], 'the base is not extracted again');
    assert.equal(await readFile(join(dir, 'r3/var/run/ko/index.html'), 'utf8'), 'two');
    assert.equal(await readFile(join(dir, 'r3/etc/base'), 'utf8'), 'base');
    assert.equal(edited.chains[1], cold.chains[1], 'the same base chain');
  });

  it('refuses entries that climb out of the rootfs, and keeps writes through symlinks inside it', async (t) => {
    const dir = await makeTempDir('unpack-escape', t);
    const outside = join(dir, 'outside');
    await mkdir(outside);
    const root = join(dir, 'rootfs');
    await mkdir(root);

    const climbing = await tarOf([{ name: '../outside/evil', type: 'file', content: 'x' }]);
    await assert.rejects(applyLayer(gzipSync(climbing), root), (err: unknown) => err instanceof TskoError && err.code === 'DEPLOY' && /escapes the rootfs/.test(err.message));
    assert.deepEqual(await readdir(outside), []);

    // A symlink to an absolute path or up past the root, then files "through" it: they land in
    // the rootfs, as they would in a container, never in the host's directories.
    await applyLayer(
      gzipSync(
        await tarOf([
          { name: 'abs', type: 'symlink', linkname: outside },
          { name: 'up', type: 'symlink', linkname: '../../../../outside' },
          { name: 'abs/one', type: 'file', content: '1' },
          { name: 'up/two', type: 'file', content: '2' },
        ]),
      ),
      root,
    );
    assert.deepEqual(await readdir(outside), [], 'nothing was written outside the rootfs');
    assert.equal(await readFile(join(root, outside.slice(1), 'one'), 'utf8'), '1');
    assert.equal(await readFile(join(root, 'outside/two'), 'utf8'), '2');
    // Followed on the host, the links stay inside the rootfs too.
    assert.equal(await readlink(join(root, 'abs')), outside.slice(1));
    assert.equal(await readlink(join(root, 'up')), 'outside');
    assert.equal(await readFile(join(root, 'up/two'), 'utf8'), '2');
  });

  it('makes hard links to files of lower layers and rewrites absolute symlinks to relative ones', async (t) => {
    const dir = await makeTempDir('unpack-links', t);
    const lower = await layerOf([
      { name: 'usr/lib/libx.so.1', type: 'file', content: 'lib' },
      { name: 'etc/ssl/cert.pem', type: 'file', content: 'pem' },
    ]);
    const upper = await layerOf([
      { name: 'usr/lib/libx.so', type: 'link', linkname: 'usr/lib/libx.so.1' },
      { name: 'etc/ssl/certs/ca.crt', type: 'symlink', linkname: '/etc/ssl/cert.pem' },
      { name: 'rel', type: 'symlink', linkname: 'usr/lib' },
    ]);
    const root = join(dir, 'rootfs');
    await unpackImage([lower, upper], root, { cacheDir: join(dir, 'cache') });
    const a = await lstat(join(root, 'usr/lib/libx.so'));
    const b = await lstat(join(root, 'usr/lib/libx.so.1'));
    assert.equal(a.ino, b.ino);
    assert.equal(await readlink(join(root, 'etc/ssl/certs/ca.crt')), '../cert.pem');
    assert.equal(await readFile(join(root, 'etc/ssl/certs/ca.crt'), 'utf8'), 'pem');
    assert.equal(await readlink(join(root, 'rel')), 'usr/lib', 'relative links inside the rootfs are kept as they are');
  });

  it('reports a truncated or corrupt layer as a DEPLOY error naming the layer', async (t) => {
    const dir = await makeTempDir('unpack-corrupt', t);
    const good = await layerOf([{ name: 'big', type: 'file', content: 'x'.repeat(100_000) }]);
    const data = await readLayer(good);
    const truncated: Layer = memoryLayer(good, data.subarray(0, data.length - 20));
    await assert.rejects(unpackImage([truncated], join(dir, 'a'), { cacheDir: join(dir, 'cache') }), (err: unknown) => {
      assert.ok(err instanceof TskoError && err.code === 'DEPLOY');
      assert.match(err.message, /^layer sha256:[a-f0-9]{12} could not be decompressed/);
      return true;
    });
    const notTar: Layer = memoryLayer(good, gzipSync(Buffer.from('not a tar archive '.repeat(40))));
    await assert.rejects(unpackImage([notTar], join(dir, 'b'), { cacheDir: join(dir, 'cache') }), /is not a valid tar archive/);
  });

  it('normalises archive paths and link targets', () => {
    assert.equal(archivePath('./a/b/'), 'a/b');
    assert.equal(archivePath('/a/./c/../b'), 'a/b');
    assert.throws(() => archivePath('a/../../b'), /escapes the rootfs/);
    assert.equal(inRootTarget('a/b/link', '/etc/x'), '../../etc/x');
    assert.equal(inRootTarget('link', '/'), '.');
    assert.equal(inRootTarget('a/link', '../../../etc'), '../etc');
    assert.equal(inRootTarget('a/link', '../b'), '../b');
  });
});

describe('front proxy', () => {
  interface Seen {
    method: string;
    url: string;
    headers: Record<string, string | string[] | undefined>;
    body: string;
  }

  async function upstream(t: { after(fn: () => unknown): void }): Promise<{ port: number; seen: Seen[] }> {
    const seen: Seen[] = [];
    const server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (req.url === '/slow') {
          setTimeout(() => res.end('slow'), 300);
          return;
        }
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.setHeader('x-hop', 'dropped');
        res.setHeader('connection', 'x-hop');
        res.end(`echo:${body}`);
      });
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    return { port: (server.address() as AddressInfo).port, seen };
  }

  async function proxyFor(t: { after(fn: () => unknown): void }): Promise<FrontProxy> {
    const proxy = await FrontProxy.listen({ host: '127.0.0.1', port: 0 });
    t.after(() => proxy.close());
    return proxy;
  }

  /** A raw node:http request, since fetch will not send Connection headers. */
  function send(port: number, options: { method?: string; path?: string; headers?: Record<string, string>; body?: string[] }): Promise<{ status: number; headers: IncomingMessage['headers']; text: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers ?? {}, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      for (const part of options.body ?? []) req.write(part);
      req.end();
    });
  }

  it('forwards method, path, headers and bodies (sized or chunked); drops hop-by-hop headers; adds X-Forwarded-For', async (t) => {
    const up = await upstream(t);
    const proxy = await proxyFor(t);
    proxy.switchTo({ name: 'up-00001', port: up.port });

    const sized = await send(proxy.port, { method: 'POST', path: '/a/b?c=d', headers: { 'content-length': '5', connection: 'keep-alive, x-private', 'x-private': 'secret', 'x-app': 'kept' }, body: ['hello'] });
    assert.equal(sized.status, 200);
    assert.equal(sized.text, 'echo:hello');
    assert.deepEqual(sized.headers['set-cookie'], ['a=1', 'b=2'], 'repeated headers survive');
    assert.equal(sized.headers['x-hop'], undefined, 'a header the upstream named in Connection is not forwarded');
    const first = up.seen[0] as Seen;
    assert.equal(first.method, 'POST');
    assert.equal(first.url, '/a/b?c=d');
    assert.equal(first.headers['x-app'], 'kept');
    assert.equal(first.headers['x-private'], undefined, 'a header the client named in Connection is not forwarded');
    assert.equal(first.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(first.headers['x-forwarded-proto'], 'http');
    assert.equal(first.headers.host, `127.0.0.1:${proxy.port}`, 'Host is the front port, as the client sent it');

    const chunked = await send(proxy.port, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' }, body: ['one,', 'two'] });
    assert.equal(chunked.text, 'echo:one,two');
    assert.equal(up.seen[1]?.body, 'one,two');
  });

  it('answers 503 before any upstream and 502 when the upstream is gone, and keeps serving', async (t) => {
    const proxy = await proxyFor(t);
    const none = await send(proxy.port, {});
    assert.equal(none.status, 503);
    assert.equal(none.headers['retry-after'], '1');
    proxy.switchTo({ name: 'gone-00001', port: await freePort() });
    const gone = await send(proxy.port, {});
    assert.equal(gone.status, 502);
    assert.equal(gone.text, 'tsko: revision gone-00001 did not answer (ECONNREFUSED)\n');
    const up = await upstream(t);
    proxy.switchTo({ name: 'up-00002', port: up.port });
    assert.equal((await send(proxy.port, {})).text, 'echo:');
  });

  it('relays an upgraded connection both ways and counts it in flight until it closes', async (t) => {
    const up = await upstream(t);
    const proxy = await proxyFor(t);
    proxy.switchTo({ name: 'ws-00001', port: up.port });
    const socket = await new Promise<Duplex>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: proxy.port, headers: { connection: 'Upgrade', upgrade: 'echo' }, agent: false });
      req.on('upgrade', (res: IncomingMessage, s: Duplex) => {
        assert.equal(res.statusCode, 101);
        resolve(s);
      });
      req.on('response', () => reject(new Error('no upgrade')));
      req.on('error', reject);
      req.end();
    });
    const echoed = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    socket.write('ping');
    assert.equal(await echoed, 'ping');
    assert.equal(proxy.inFlight('ws-00001'), 1);
    socket.destroy();
    await waitFor('the upgraded connection to be released', () => proxy.inFlight('ws-00001') === 0);
  });

  it('drained() resolves when the requests in flight end, or false at its timeout', async (t) => {
    const up = await upstream(t);
    const proxy = await proxyFor(t);
    proxy.switchTo({ name: 'old-00001', port: up.port });
    assert.equal(await proxy.drained('old-00001', 10), true, 'nothing in flight');
    const slow = send(proxy.port, { path: '/slow' });
    await waitFor('the request to be in flight', () => proxy.inFlight('old-00001') === 1);
    proxy.switchTo({ name: 'new-00002', port: up.port });
    assert.equal(await proxy.drained('old-00001', 20), false, 'still in flight after 20 ms');
    const started = Date.now();
    assert.equal(await proxy.drained('old-00001', 5000), true);
    assert.ok(Date.now() - started < 1000);
    assert.equal((await slow).text, 'slow');
  });
});

// ---------------------------------------------------------------------------------------------
// Real images.

async function buildImage(cwd: string, target: string): Promise<Image> {
  // A tsko cache per build: the builder's output path is per import path, and the variants of one
  // service built side by side here would otherwise overwrite each other's binary.
  const cacheHome = await makeTempDir('local-cache');
  const config = await resolveConfig({ cwd, env: { ...process.env, XDG_CACHE_HOME: cacheHome, GOCACHE: goCacheDir() }, fresh: true });
  const pipeline = makePipeline(config, { events: createEventBus(), dockerRepo: 'tsko.local' });
  // Open until the suite ends: an image's app layers are files of its pipeline, gone when it closes.
  openPipelines.push(pipeline);
  const resolved = await pipeline.resolve(target);
  const built = await pipeline.builder.build(resolved, { os: 'linux', architecture: 'amd64' }, { events: createEventBus() });
  return built.image;
}

const openPipelines: Pipeline[] = [];

/** A copy of `src` with `edits` applied to main.go, built with the builtin base. */
async function buildEdited(src: string, edits: Array<[string, string]>): Promise<Image> {
  const dir = await makeTempDir('local-src');
  await cp(src, dir, { recursive: true });
  await writeFile(join(dir, 'tsko.config.ts'), "export default { defaultBaseImage: 'builtin://static' };\n");
  let main = await readFile(join(dir, 'main.go'), 'utf8');
  for (const [from, to] of edits) {
    assert.ok(main.includes(from), `main.go of ${src} contains ${from}`);
    main = main.replace(from, to);
  }
  await writeFile(join(dir, 'main.go'), main);
  return buildImage(dir, '.');
}

interface Images {
  v1: Image;
  v2: Image;
  probe: Image;
  exits: Image;
  sleeps: Image;
  kodata: Image;
}

let images: Images;

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, text: await res.text() };
}

/** Pids of live (not zombie) processes whose command line starts under `dir`. */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmdline.startsWith(dir) && !isZombie(Number(name))) pids.push(Number(name));
    } catch {
      // Gone while we looked.
    }
  }
  return pids;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`) && !isZombie(pid);
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(20);
  }
}

interface Harness {
  target: LocalTarget;
  workDir: string;
  events: TskoEvent[];
  bus: EventBus;
  /** Both steps, each as the iteration runner times it: the `deploy` stage, then the `ready` stage. */
  deploy(image: Image, iteration: number, options?: { service?: string; signal?: AbortSignal }): Promise<DeployResult>;
}

async function harness(t: { after(fn: () => unknown): void }, options: Partial<LocalTargetOptions> = {}): Promise<Harness> {
  const workDir = await makeTempDir('local-target', t);
  const bus = createEventBus();
  const events: TskoEvent[] = [];
  bus.subscribe((event) => events.push(event));
  const target = await createLocalTarget({ port: 0, workDir, events: bus, ...options });
  t.after(() => target.close());
  return {
    target,
    workDir,
    events,
    bus,
    deploy: async (image, iteration, o = {}) => {
      const service = o.service ?? 'hello';
      const events = withFields(bus, { service, iteration });
      const signal = o.signal ?? new AbortController().signal;
      const request = { service, iteration, reference: `127.0.0.1:5000/${service}@${image.manifestDigest}`, importPath: `example.com/${service}`, image, events, signal };
      const rollout = await stage(events, 'deploy', () => target.deploy(request), {}, signal);
      return stage(events, 'ready', () => rollout.ready(), {}, signal);
    },
  };
}

function isDeployError(pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof TskoError, `a TskoError, got ${String(err)}`);
    assert.equal(err.code, 'DEPLOY', err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('local target', { timeout: 240_000 }, () => {
  before(async () => {
    const hello = join(repoRoot, 'examples/hello');
    const probe = join(repoRoot, 'test/fixtures/local-target/probe');
    const [v1, v2, probeImage, exits, sleeps, kodata] = await Promise.all([
      buildImage(repoRoot, './examples/hello'),
      buildEdited(hello, [['"hello v1"', '"hello v2"']]),
      buildEdited(probe, []),
      buildEdited(probe, [['const mode = "serve"', 'const mode = "exit"']]),
      buildEdited(probe, [['const mode = "serve"', 'const mode = "sleep"']]),
      buildImage(repoRoot, './examples/with-kodata'),
    ]);
    images = { v1, v2, probe: probeImage, exits, sleeps, kodata };
  });
  after(() => Promise.all(openPipelines.map((pipeline) => pipeline.close())));

  it('answers 503 before the first revision, then serves v1, then v2; the old process and its rootfs go', async (t) => {
    const h = await harness(t);
    const before = await get(h.target.url);
    assert.equal(before.status, 503);
    assert.match(before.text, /no revision is serving yet/);

    const first = await h.deploy(images.v1, 1);
    assert.deepEqual(first, { revision: 'hello-00001', url: h.target.url });
    assert.match(h.target.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v1\n' });
    const v1Pids = processesUnder(join(h.target.revisionsDir, 'hello-00001'));
    assert.equal(v1Pids.length, 1, 'one process runs from the revision dir');

    const second = await h.deploy(images.v2, 2);
    assert.equal(second.revision, 'hello-00002');
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v2\n' });
    await waitFor('the old revision to stop', () => !alive(v1Pids[0] as number));
    await waitFor('the old rootfs to be removed', () => !existsSync(join(h.target.revisionsDir, 'hello-00001')));
    assert.deepEqual(await readdir(h.target.revisionsDir), ['hello-00002']);

    // The revision's own lines arrive as revision.log events, named and with their stream.
    const logs = h.events.filter((e) => e.type === 'revision.log');
    assert.ok(logs.some((e) => e.revision === 'hello-00001' && e.stream === 'stderr' && /hello: listening on :\d+/.test(e.line) && e.service === 'hello' && e.iteration === 1));
    assert.ok(logs.some((e) => e.revision === 'hello-00002'));
    // The target's own call (unpack, start) and the wait for it to answer are two stages that follow each other.
    const stages = h.events.filter((e) => (e.type === 'stage.start' || e.type === 'stage.end') && e.iteration === 2).map((e) => (e.type === 'stage.end' ? `${e.stage}:${e.ok}` : `${e.type === 'stage.start' ? e.stage : ''}`));
    assert.deepEqual(stages, ['deploy', 'deploy:true', 'ready', 'ready:true']);
    assert.ok(h.events.some((e) => e.type === 'log' && e.level === 'debug' && /^hello-00002: unpacked 3 layers in \d+ ms \(2 from cache\), ready in \d+ ms$/.test(e.message)));
  });

  it('serves a revision started before its push ended, keeps the one before until the push settles, and switches back to it when the push fails', async (t) => {
    const h = await harness(t);
    await h.deploy(images.v1, 1);
    const [v1Pid] = processesUnder(join(h.target.revisionsDir, 'hello-00001'));
    assert.ok(v1Pid);
    const early = (iteration: number, pushed: Promise<string>) => {
      const events = withFields(h.bus, { service: 'hello', iteration });
      const request = { service: 'hello', iteration, importPath: 'example.com/hello', runnable: runnableOf(images.v2), pushed, events, signal: new AbortController().signal };
      return (h.target.deployBeforePush as NonNullable<LocalTarget['deployBeforePush']>)(request);
    };

    // A push that fails after the revision served: the one before it serves again.
    let failPush!: (err: Error) => void;
    const failing = await early(2, new Promise<string>((_resolve, reject) => (failPush = reject)));
    assert.equal((await failing.ready()).revision, 'hello-00002');
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v2\n' }, 'it serves before its push has ended');
    assert.ok(alive(v1Pid), 'the revision before it still runs');
    failPush(new TskoError('REGISTRY_UNREACHABLE', 'cannot reach the registry'));
    await failing.settled?.();
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v1\n' }, 'the previous revision serves again');
    assert.equal(h.target.current(), 'hello-00001');
    await waitFor('the revision whose image was not pushed to stop', () => processesUnder(join(h.target.revisionsDir, 'hello-00002')).length === 0);
    assert.ok(
      h.events.some((e) => e.type === 'log' && e.level === 'warn' && e.message === 'switched away from hello-00002: its image was not pushed (cannot reach the registry); hello-00001 serves again'),
      JSON.stringify(h.events.filter((e) => e.type === 'log')),
    );

    // A push that completes: the one before is retired only then.
    let completePush!: (reference: string) => void;
    const completing = await early(3, new Promise<string>((resolve) => (completePush = resolve)));
    await completing.ready();
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v2\n' });
    await delay(300);
    assert.ok(alive(v1Pid), 'kept while the push runs');
    completePush(`127.0.0.1:5000/hello@${images.v2.manifestDigest}`);
    await completing.settled?.();
    await waitFor('the previous revision to stop once the push completed', () => !alive(v1Pid));
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v2\n' });
  });

  it('starts the entrypoint with the image env mapped into the rootfs, PORT and K_*; KO_DATA_PATH serves kodata', async (t) => {
    const h = await harness(t, { env: { PROBE_EXTRA: 'extra', PORT: '1' } });
    const { revision } = await h.deploy(images.probe, 1, { service: 'probe' });
    const rootfs = join(h.target.revisionsDir, revision);
    const info = (await (await fetch(`${h.target.url}/env`)).json()) as { env: Record<string, string>; cwd: string; pid: number; childPid: number };
    assert.match(info.env.PORT as string, /^\d+$/);
    assert.notEqual(info.env.PORT, String(h.target.port), 'the revision has its own port behind the front port');
    assert.notEqual(info.env.PORT, '1', 'PORT is reserved');
    assert.equal(info.env.K_SERVICE, 'probe');
    assert.equal(info.env.K_REVISION, revision);
    assert.equal(info.env.K_CONFIGURATION, 'probe');
    assert.equal(info.env.PROBE_EXTRA, 'extra');
    assert.equal(info.env.KO_DATA_PATH, join(rootfs, 'var/run/ko'));
    assert.equal(info.env.SSL_CERT_FILE, join(rootfs, 'etc/ssl/certs/ca-certificates.crt'));
    assert.ok((info.env.PATH as string).split(':').includes(join(rootfs, 'ko-app')), info.env.PATH);
    assert.equal(info.cwd, rootfs);
    assert.equal(info.env.HOME, join(rootfs, 'home/nonroot'), 'HOME of the image user 65532 from its /etc/passwd');

    const k = await harness(t);
    await k.deploy(images.kodata, 1, { service: 'with-kodata' });
    const index = await get(`${k.target.url}/index.html`);
    assert.equal(index.status, 200);
    assert.equal(index.text, await readFile(join(repoRoot, 'examples/with-kodata/kodata/index.html'), 'utf8'));
    const css = await get(`${k.target.url}/assets/style.css`);
    assert.equal(css.text, await readFile(join(repoRoot, 'examples/with-kodata/kodata/assets/style.css'), 'utf8'));
  });

  it('loses no request while the front port switches between revisions', async (t) => {
    const h = await harness(t);
    await h.deploy(images.v1, 1);
    let deploying = true;
    const hammer = async () => {
      let ok = 0;
      const failures: string[] = [];
      const bodies = new Set<string>();
      const deadline = Date.now() + 15_000;
      // Bounded by time and count; ends as soon as the redeploys are done.
      while (deploying && Date.now() < deadline && ok + failures.length < 20_000) {
        try {
          const res = await get(h.target.url);
          if (res.status === 200) {
            ok++;
            bodies.add(res.text);
          } else {
            failures.push(`${res.status} ${res.text}`);
          }
        } catch (err) {
          failures.push(String(err));
        }
      }
      return { ok, failures, bodies };
    };
    const hammers = [hammer(), hammer()];
    let iteration = 1;
    for (const image of [images.v2, images.v1, images.v2, images.v1]) {
      iteration++;
      await h.deploy(image, iteration);
      await delay(30);
    }
    deploying = false;
    const results = await Promise.all(hammers);
    const failures = results.flatMap((r) => r.failures);
    const ok = results.reduce((n, r) => n + r.ok, 0);
    assert.deepEqual(failures, [], 'no failed request');
    assert.ok(ok >= 20, `the requests overlapped the redeploys (${ok} answered)`);
    const bodies = new Set(results.flatMap((r) => [...r.bodies]));
    assert.deepEqual([...bodies].sort(), ['hello v1\n', 'hello v2\n']);
    assert.equal((await get(h.target.url)).text, 'hello v1\n');
    await waitFor('retired revisions to stop', () => processesUnder(h.target.revisionsDir).length === 1);
  });

  it('lets a request in flight finish on the old revision before stopping it', async (t) => {
    const h = await harness(t, { gracePeriodMs: 3000 });
    await h.deploy(images.probe, 1, { service: 'probe' });
    const started = Date.now();
    const slow = get(`${h.target.url}/slow?ms=600`);
    await delay(100);
    await h.deploy(images.v2, 2, { service: 'probe' });
    assert.equal((await get(h.target.url)).text, 'hello v2\n', 'new requests go to the new revision at once');
    const answer = await slow;
    assert.deepEqual(answer, { status: 200, text: 'probe v1\n' });
    assert.ok(Date.now() - started >= 600);
    await waitFor('the old revision to stop', () => processesUnder(join(h.target.revisionsDir, 'probe-00001')).length === 0);
  });

  it('does not switch to a revision that exits at once: its logs come with the error, the last good one serves on', async (t) => {
    const h = await harness(t);
    await h.deploy(images.v1, 1);
    await assert.rejects(
      h.deploy(images.exits, 2),
      isDeployError(/^revision hello-00002 exited with code 3 before listening on PORT \d+$/),
    );
    const failure = await h.deploy(images.exits, 3).catch((err: unknown) => err as TskoError);
    assert.ok(failure instanceof TskoError);
    assert.match(failure.detail ?? '', /probe: giving up/);
    assert.match(failure.hint ?? '', /hello-00001 keeps serving$/);
    assert.ok(h.events.some((e) => e.type === 'revision.log' && e.revision === 'hello-00003' && e.line === 'probe: giving up'));
    assert.ok(h.events.some((e) => e.type === 'stage.end' && e.iteration === 3 && e.stage === 'ready' && !e.ok));
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v1\n' });
    assert.equal(h.target.current(), 'hello-00001');
    assert.deepEqual(await readdir(h.target.revisionsDir), ['hello-00001'], 'the failed revisions are cleaned up');
    // The next good deploy recovers.
    assert.equal((await h.deploy(images.v2, 4)).revision, 'hello-00004');
    assert.equal((await get(h.target.url)).text, 'hello v2\n');
  });

  it('refuses an image whose entrypoint is not in it, or that is for another platform, before starting anything', async (t) => {
    const h = await harness(t);
    await h.deploy(images.v1, 1);
    const config = images.v1.config;
    const missing: Image = { ...images.v1, config: { ...config, config: { ...config.config, Entrypoint: ['/ko-app/missing'] } } };
    await assert.rejects(h.deploy(missing, 2), isDeployError(/^the image's entrypoint \/ko-app\/missing is not an executable file in the image$/));
    const byName: Image = { ...images.v1, config: { ...config, config: { ...config.config, Entrypoint: ['hello'], Cmd: ['--flag'] } } };
    assert.equal((await h.deploy(byName, 3)).revision, 'hello-00003', 'a bare name is found through the image PATH (/ko-app); the failed one used up 00002');
    const arm: Image = { ...images.v1, config: { ...config, architecture: 'arm64' } };
    await assert.rejects(h.deploy(arm, 4), isDeployError(/runs revisions on this machine \(linux\/amd64\), but the image is linux\/arm64/));
    assert.equal((await get(h.target.url)).text, 'hello v1\n');
    assert.equal(h.target.current(), 'hello-00003');
  });

  it('gives up on a revision that never listens after readyTimeoutMs, and kills it even though it ignores SIGTERM', async (t) => {
    const h = await harness(t, { readyTimeoutMs: 700 });
    await h.deploy(images.v1, 1);
    const started = Date.now();
    const failure = await h.deploy(images.sleeps, 2).catch((err: unknown) => err);
    assert.ok(isDeployError(/^revision hello-00002 did not answer on PORT \d+ within 0\.7 s$/)(failure));
    assert.match((failure as TskoError).detail ?? '', /probe: not listening/);
    assert.ok(Date.now() - started < 5000);
    assert.deepEqual(processesUnder(join(h.target.revisionsDir, 'hello-00002')), []);
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v1\n' });
  });

  it('stops a revision that ignores SIGTERM with SIGKILL after the grace period', async (t) => {
    const h = await harness(t, { gracePeriodMs: 300, env: { PROBE_IGNORE_TERM: '1' } });
    await h.deploy(images.probe, 1, { service: 'probe' });
    const info = (await (await fetch(`${h.target.url}/env`)).json()) as { pid: number; childPid: number };
    assert.ok(alive(info.pid) && alive(info.childPid));
    await h.deploy(images.probe, 2, { service: 'probe' });
    await delay(150);
    assert.ok(alive(info.pid), 'SIGTERM alone does not stop it');
    await waitFor('SIGKILL after the grace period', () => !alive(info.pid) && !alive(info.childPid), 3000);
  });

  it('answers a 503 page naming the crash when the serving revision dies, reports it once, and recovers on the next deploy', async (t) => {
    const h = await harness(t);
    await h.deploy(images.probe, 1, { service: 'probe' });
    assert.equal((await get(`${h.target.url}/exit`)).text, 'bye\n');
    await waitFor('the proxy to notice', async () => (await get(h.target.url)).status === 503);
    const answer = await get(h.target.url);
    assert.match(answer.text, /^tsko: revision probe-00001 crashed \(it exited with code 1\)\nSave a file or press r/);
    const exits = h.events.filter((e) => e.type === 'revision.exit');
    assert.equal(exits.length, 1, JSON.stringify(exits));
    assert.deepEqual(
      exits.map((e) => e.type === 'revision.exit' && [e.revision, e.phase, e.code, e.signal]),
      [['probe-00001', 'serving', 1, null]],
    );
    await h.deploy(images.v2, 2, { service: 'probe' });
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v2\n' });
    await waitFor('the dead revision\'s child to be stopped too', () => processesUnder(join(h.target.revisionsDir, 'probe-00001')).length === 0);
  });

  it('kills processes an earlier run left in its revision dir before serving on the same port', async (t) => {
    const workDir = await makeTempDir('local-stray', t);
    const port = await freePort();
    const strayDir = join(workDir, 'revisions', String(port), 'hello-00007');
    await mkdir(strayDir, { recursive: true });
    await cp('/bin/sleep', join(strayDir, 'sleep'));
    const stray = spawn(join(strayDir, 'sleep'), ['60'], { detached: true, stdio: 'ignore' });
    t.after(() => {
      try {
        process.kill(stray.pid as number, 'SIGKILL');
      } catch {
        // Already gone, as it should be.
      }
    });
    await waitFor('the stray to run', () => alive(stray.pid as number));
    const target = await createLocalTarget({ port, workDir, events: createEventBus() });
    t.after(() => target.close());
    await waitFor('the stray to be killed', () => !alive(stray.pid as number));
    assert.equal(existsSync(strayDir), false);
  });

  it('fails fast on a busy front port, naming it and --port', async (t) => {
    const port = await freePort();
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const workDir = await makeTempDir('local-busy', t);
    await assert.rejects(createLocalTarget({ port, workDir, events: createEventBus() }), (err: unknown) => {
      assert.ok(err instanceof TskoError);
      assert.equal(err.code, 'DEPLOY');
      assert.equal(err.message, `cannot serve on 127.0.0.1:${port}: the port is already in use`);
      assert.match(err.hint ?? '', /--port/);
      return true;
    });
  });

  it('on abort, stops the half-started revision and keeps the current one serving', async (t) => {
    const h = await harness(t);
    await h.deploy(images.v1, 1);

    // Aborted once the new revision runs (it never gets ready).
    const controller = new AbortController();
    const unsubscribe = h.bus.subscribe((e) => {
      if (e.type === 'revision.log' && e.revision === 'hello-00002') controller.abort();
    });
    const started = Date.now();
    await assert.rejects(h.deploy(images.sleeps, 2, { signal: controller.signal }), (err: unknown) => err instanceof TskoError && err.code === 'ABORTED');
    unsubscribe();
    assert.ok(Date.now() - started < 3000, 'abort does not wait for the ready timeout');
    assert.deepEqual(processesUnder(join(h.target.revisionsDir, 'hello-00002')), []);
    assert.equal(existsSync(join(h.target.revisionsDir, 'hello-00002')), false);

    // Aborted while its layers are still being read: no process is started at all. (Without
    // `files`, so the top layer is read and extracted rather than linked from the build.)
    const early = new AbortController();
    const slow: Image = {
      ...images.v2,
      layers: images.v2.layers.map(({ files: _linkable, ...layer }) => ({
        ...layer,
        open: async (signal?: AbortSignal) => {
          early.abort();
          await delay(50);
          return layer.open(signal);
        },
      })),
    };
    await assert.rejects(h.deploy(slow, 3, { signal: early.signal }), (err: unknown) => err instanceof TskoError && err.code === 'ABORTED');
    assert.equal(h.events.filter((e) => e.type === 'revision.log' && e.revision === 'hello-00003').length, 0);
    assert.deepEqual(await get(h.target.url), { status: 200, text: 'hello v1\n' });
    assert.equal(h.target.current(), 'hello-00001');
  });

  it('deploys one at a time in call order and never lets an older iteration replace a newer one', async (t) => {
    const h = await harness(t);
    const newer = h.deploy(images.v2, 5);
    const older = h.deploy(images.v1, 4);
    assert.equal((await newer).revision, 'hello-00001');
    await assert.rejects(older, (err: unknown) => err instanceof TskoError && err.code === 'ABORTED' && /iteration 5 is newer/.test(err.message));
    assert.equal((await get(h.target.url)).text, 'hello v2\n');
    // The older one's turn comes only once the newer one is serving: its deploy stage (which
    // includes the wait for its turn) ends after the newer one's ready stage, and it never gets ready.
    const ends = h.events.filter((e) => e.type === 'stage.end').map((e) => (e.type === 'stage.end' ? `${e.iteration}:${e.stage}:${e.ok}` : ''));
    assert.deepEqual(ends, ['5:deploy:true', '5:ready:true', '4:deploy:false']);
  });

  it('close() stops every revision and its children within about 2 s, however long their grace, and frees the front port', async (t) => {
    // Revisions that ignore SIGTERM and a 10 s grace: close() must not wait for it.
    const h = await harness(t, { gracePeriodMs: 10_000, env: { PROBE_IGNORE_TERM: '1' } });
    await h.deploy(images.probe, 1, { service: 'probe' });
    const first = (await (await fetch(`${h.target.url}/env`)).json()) as { pid: number; childPid: number };
    // The first one is now retiring (SIGTERM sent, ignored), the second one serving.
    await h.deploy(images.probe, 2, { service: 'probe' });
    const second = (await (await fetch(`${h.target.url}/env`)).json()) as { pid: number; childPid: number };
    assert.notEqual(second.pid, first.pid);
    // One more deploy in flight (never ready) while closing.
    const pending = h.deploy(images.sleeps, 3, { service: 'probe' }).catch((err: unknown) => err);
    await waitFor('the third revision to start', () => h.events.some((e) => e.type === 'revision.log' && e.revision === 'probe-00003'));
    assert.ok(alive(first.pid), 'the retiring revision ignores SIGTERM');
    const started = Date.now();
    await h.target.close();
    const ms = Date.now() - started;
    assert.ok(ms < 2500, `closed in ${ms} ms`);
    const failure = await pending;
    assert.ok(failure instanceof TskoError && failure.code === 'ABORTED', String(failure));
    for (const pid of [first.pid, first.childPid, second.pid, second.childPid]) assert.equal(alive(pid), false, `pid ${pid} is gone`);
    assert.deepEqual(processesUnder(h.workDir), []);
    await assert.rejects(fetch(h.target.url, { signal: AbortSignal.timeout(2000) }));
    await assert.rejects(h.deploy(images.v1, 4), (err: unknown) => err instanceof TskoError && err.code === 'ABORTED');
    await h.target.close();
  });
});
