import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { SecureContextOptions } from 'node:tls';
import type { Server } from 'node:https';
import type { TlsConfig } from '../config/types.js';
import type { Logger } from '../util/log.js';

/** MIN_TLS_VERSION: nothing older than TLS 1.2 is offered. */
export const MIN_TLS_VERSION = 'TLSv1.2';

/** secureContext reads the certificate, key and optional client CA from their files now. */
export function secureContext(t: TlsConfig): SecureContextOptions {
  return {
    cert: readFileSync(t.certFile),
    key: readFileSync(t.keyFile),
    ...(t.clientCaFile !== undefined && { ca: readFileSync(t.clientCaFile) }),
    minVersion: MIN_TLS_VERSION,
  };
}

/** serverOptions are the https.createServer options for `t`. */
export function serverOptions(t: TlsConfig): SecureContextOptions & {
  requestCert: boolean;
  rejectUnauthorized: boolean;
} {
  const client = t.clientCaFile !== undefined;
  return { ...secureContext(t), requestCert: client, rejectUnauthorized: client };
}

/**
 * watchTls re-reads the files whenever one changes (cert-manager rotates them in place) and
 * swaps the server's secure context; connections already open keep theirs. A broken pair is
 * logged and the previous context stays. Returns a function that stops watching.
 */
export function watchTls(server: Server, t: TlsConfig, log: Logger, intervalMs = 1000): () => void {
  const files = [t.certFile, t.keyFile, ...(t.clientCaFile !== undefined ? [t.clientCaFile] : [])];
  const reload = () => {
    try {
      server.setSecureContext(secureContext(t));
      log.info({ certFile: t.certFile }, 'tls certificate reloaded');
    } catch (err) {
      log.warn(
        { err, certFile: t.certFile },
        'tls reload failed, keeping the previous certificate',
      );
    }
  };
  for (const f of files) watchFile(f, { interval: intervalMs, persistent: false }, reload);
  return () => {
    for (const f of files) unwatchFile(f, reload);
  };
}
