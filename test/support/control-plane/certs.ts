// The control plane's key material, made with openssl in its temp dir: one CA, the apiserver's
// serving cert (SANs 127.0.0.1, localhost and the in-cluster names), the stand-in kubelet's serving
// cert (127.0.0.1, so the apiserver verifies it when it proxies pods/log), a client cert the
// apiserver presents to the kubelet, and the service-account signing key pair.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ControlPlaneCerts {
  caCert: string;
  caKey: string;
  apiserverCert: string;
  apiserverKey: string;
  kubeletCert: string;
  kubeletKey: string;
  kubeletClientCert: string;
  kubeletClientKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

function openssl(args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { timeout: 60_000, ...(signal ? { signal } : {}) }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args[0] ?? ''} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

async function signedCert(dir: string, name: string, subject: string, ext: string, caCert: string, caKey: string, signal?: AbortSignal): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, ext);
  await openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', subject], signal);
  await openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '3', '-sha256', '-extfile', extFile], signal);
  return { cert, key };
}

export async function makeCerts(dir: string, signal?: AbortSignal): Promise<ControlPlaneCerts> {
  const caCert = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caCert, '-days', '3', '-subj', '/CN=tsko-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature'], signal);
  const serverExt = (sans: string): string =>
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${sans}\n`;
  const [apiserver, kubelet, kubeletClient] = await Promise.all([
    signedCert(dir, 'apiserver', '/CN=kube-apiserver', serverExt('IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local'), caCert, caKey, signal),
    signedCert(dir, 'kubelet', '/CN=tsko-node', serverExt('IP:127.0.0.1,DNS:localhost,DNS:tsko-node'), caCert, caKey, signal),
    signedCert(dir, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n', caCert, caKey, signal),
  ]);
  const serviceAccountKey = join(dir, 'sa.key');
  const serviceAccountPub = join(dir, 'sa.pub');
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', serviceAccountKey], signal);
  await openssl(['pkey', '-in', serviceAccountKey, '-pubout', '-out', serviceAccountPub], signal);
  return {
    caCert,
    caKey,
    apiserverCert: apiserver.cert,
    apiserverKey: apiserver.key,
    kubeletCert: kubelet.cert,
    kubeletKey: kubelet.key,
    kubeletClientCert: kubeletClient.cert,
    kubeletClientKey: kubeletClient.key,
    serviceAccountKey,
    serviceAccountPub,
  };
}
