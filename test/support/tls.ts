import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from './scratch.js';

export interface TestCert {
  dir: string;
  certFile: string;
  keyFile: string;
}

/** selfSignedCert makes a P-256 certificate for 127.0.0.1 and localhost with openssl. */
export function selfSignedCert(dir = scratchDir('berth-tls-'), cn = '127.0.0.1'): TestCert {
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return { dir, certFile, keyFile };
}

export interface TestClientCert {
  /** caFile is the CA that signed the client certificate (what the server trusts). */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * clientCert makes, with openssl, a CA and a client certificate it signs for `cn` (extended key
 * usage clientAuth), as `<dir>/<name>-ca.crt`, `<dir>/<name>.crt` and `<dir>/<name>.key`.
 */
export function clientCert(dir: string, name: string, cn: string): TestClientCert {
  const caFile = join(dir, `${name}-ca.crt`);
  const caKey = join(dir, `${name}-ca.key`);
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  openssl(
    'req',
    '-x509',
    ...ec,
    '-days',
    '2',
    '-subj',
    `/CN=${name}-ca`,
    '-keyout',
    caKey,
    '-out',
    caFile,
  );
  openssl('req', ...ec, '-subj', `/CN=${cn}`, '-keyout', keyFile, '-out', csr);
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
  openssl(
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    caFile,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    certFile,
  );
  return { caFile, certFile, keyFile };
}
