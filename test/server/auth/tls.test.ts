import { afterEach, describe, expect, it, vi } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { connect, type ConnectionOptions } from 'node:tls';
import { startServer, type RunningServer } from '../../../server/server.js';
import { silentLogger } from '../../../server/util/log.js';
import { InMemoryDriver } from '../../../server/storage/drivers/inmemory.js';
import { testConfig } from '../../support/server.js';
import { selfSignedCert, type TestCert } from '../../support/tls.js';

/**
 * handshake connects, sends GET /v2/ and reports the server certificate's fingerprint, whether an
 * HTTP 200 came back, and the error code if the connection failed.
 */
function handshake(
  url: string,
  o: ConnectionOptions,
): Promise<{ fingerprint?: string; served?: boolean; error?: string }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    let served = false;
    const sock = connect(
      { host: u.hostname, port: Number(u.port), rejectUnauthorized: false, ...o },
      () => {
        const fp = sock.getPeerX509Certificate()?.fingerprint256;
        // A TLS 1.3 server may reject a missing client certificate only after the handshake.
        sock.on('data', (d: Buffer) => (served ||= d.toString().startsWith('HTTP/1.1 200')));
        sock.write('GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        sock.once('close', () => resolve({ fingerprint: fp, served }));
      },
    );
    sock.once('error', (e: NodeJS.ErrnoException) =>
      resolve({ served, error: e.code ?? e.message }),
    );
  });
}

const fingerprint = (c: TestCert) => new X509Certificate(readFileSync(c.certFile)).fingerprint256;

describe('TLS listener', () => {
  let running: RunningServer | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  const start = async (tls: { certFile: string; keyFile: string; clientCaFile?: string }) => {
    running = await startServer(testConfig({ http: { tls } }), {
      log: silentLogger,
      driver: new InMemoryDriver(),
      tlsPollMs: 20,
    });
    return running;
  };

  it('GIVEN certificate files WHEN a client connects with TLS 1.2+ THEN it is served over https; TLS 1.1 is refused', async () => {
    const cert = selfSignedCert();
    const s = await start(cert);
    expect(s.url).toMatch(/^https:\/\//);
    expect((await handshake(s.url, { minVersion: 'TLSv1.2' })).fingerprint).toBe(fingerprint(cert));
    const old = await handshake(s.url, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
    expect(old.error).toBeDefined();
  });

  it('GIVEN a running https server WHEN the certificate files are replaced THEN new connections get the new certificate', async () => {
    const cert = selfSignedCert();
    const s = await start(cert);
    const next = selfSignedCert(undefined, 'rotated');
    copyFileSync(next.keyFile, cert.keyFile);
    copyFileSync(next.certFile, cert.certFile);
    await vi.waitFor(
      async () => expect((await handshake(s.url, {})).fingerprint).toBe(fingerprint(next)),
      { timeout: 5000, interval: 50 },
    );
  });

  it('GIVEN clientCaFile WHEN a client has no certificate THEN the connection is refused; with one signed by the CA it is served', async () => {
    const server = selfSignedCert();
    const client = selfSignedCert(undefined, 'client');
    const s = await start({ ...server, clientCaFile: client.certFile });
    const without = await handshake(s.url, {});
    expect(without.served).not.toBe(true);
    const withCert = await handshake(s.url, {
      cert: readFileSync(client.certFile),
      key: readFileSync(client.keyFile),
    });
    expect(withCert.fingerprint).toBe(fingerprint(server));
    expect(withCert).toEqual({ fingerprint: fingerprint(server), served: true });
  });
});
