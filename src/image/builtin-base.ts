// `builtin://static`: an offline base image in the spirit of distroless/chainguard static — a CA
// bundle, passwd/group with the `nonroot` user 65532, /tmp and a home — so every example and test
// works with no network. It is deterministic: the same tsko (and Node, whose root store supplies
// the CA bundle) gives the same digest on every machine.
import { rootCertificates } from 'node:tls';
import { sha256 } from './digest.js';
import { writeLayer, type TarEntry } from './layer-writer.js';
import { OCI_LAYER_GZIP, OCI_MANIFEST } from './media-types.js';
import type { BaseImage, Layer, Platform } from './types.js';

export const BUILTIN_STATIC = 'builtin://static';

const NONROOT = 65532;
const CA_FILE = 'etc/ssl/certs/ca-certificates.crt';

function file(name: string, text: string, mode = 0o644): TarEntry {
  return { name, type: 'file', mode, content: Buffer.from(text) };
}

function builtinEntries(): TarEntry[] {
  return [
    { name: 'etc', type: 'directory', mode: 0o755 },
    file('etc/passwd', 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n'),
    file('etc/group', 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n'),
    // Go's resolver reads this to decide between /etc/hosts and DNS.
    file('etc/nsswitch.conf', 'hosts: files dns\n'),
    { name: 'etc/ssl', type: 'directory', mode: 0o755 },
    { name: 'etc/ssl/certs', type: 'directory', mode: 0o755 },
    file(CA_FILE, rootCertificates.join('\n') + '\n'),
    { name: 'home', type: 'directory', mode: 0o755 },
    { name: 'home/nonroot', type: 'directory', mode: 0o700, uid: NONROOT, gid: NONROOT },
    { name: 'root', type: 'directory', mode: 0o700 },
    { name: 'tmp', type: 'directory', mode: 0o1777 },
  ];
}

let layerPromise: Promise<Layer> | undefined;

/** The one layer of the builtin base; computed once per process. */
function builtinLayer(): Promise<Layer> {
  layerPromise ??= writeLayer(builtinEntries(), OCI_LAYER_GZIP);
  return layerPromise;
}

export async function builtinStaticBase(platform: Platform): Promise<BaseImage> {
  const layer = await builtinLayer();
  const config = {
    created: '1970-01-01T00:00:00Z',
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      User: String(NONROOT),
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', `SSL_CERT_FILE=/${CA_FILE}`],
      WorkingDir: '/',
    },
    rootfs: { type: 'layers' as const, diff_ids: [layer.diffId] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: 'tsko builtin://static', author: 'tsko' }],
  };
  // The base has no registry manifest of its own; its identity for the base.digest annotation is
  // the digest of its config and layer, which is what makes it this base.
  const identity = sha256(JSON.stringify({ config, layer: layer.digest }));
  return { name: BUILTIN_STATIC, digest: identity, manifestMediaType: OCI_MANIFEST, config, layers: [layer] };
}
