import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../../server/server.js';
import { startTestRegistry } from '../../support/server.js';

let srv: RunningServer;

beforeAll(async () => {
  srv = await startTestRegistry({ config: { limits: { headerBytes: 4096 } } });
});

afterAll(async () => {
  await srv.close();
});

/** raw sends `request` as bytes and returns everything the server answers until it closes. */
async function raw(request: string | Buffer): Promise<string> {
  const { hostname, port } = new URL(srv.url);
  const sock = connect(Number(port), hostname);
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  await new Promise<void>((resolve) => sock.once('connect', resolve));
  sock.write(request);
  await new Promise<void>((resolve) => {
    sock.once('close', () => resolve());
  });
  return Buffer.concat(chunks).toString('latin1');
}

function parse(answer: string): { status: number; headers: string; body: unknown } {
  const [head = '', body = ''] = answer.split('\r\n\r\n', 2);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  return { status, headers: head.toLowerCase(), body: body === '' ? undefined : JSON.parse(body) };
}

const CASES: [string, string | Buffer, number, string][] = [
  [
    'oversized headers',
    `GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`,
    431,
    'SIZE_INVALID',
  ],
  [
    'a malformed Content-Length',
    'PUT /v2/a/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n',
    400,
    'SIZE_INVALID',
  ],
  [
    'two different Content-Lengths',
    'PUT /v2/a/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
    400,
    'SIZE_INVALID',
  ],
  [
    'Content-Length with Transfer-Encoding',
    'PUT /v2/a/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    400,
    'BAD_REQUEST',
  ],
  [
    'chunked garbage',
    'PUT /v2/a/manifests/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n',
    400,
    'BAD_REQUEST',
  ],
  ['a bad method', 'G@T /v2/ HTTP/1.1\r\nHost: x\r\n\r\n', 405, 'UNSUPPORTED'],
  ['a bad version', 'GET /v2/ HTTP/7.3\r\nHost: x\r\n\r\n', 400, 'BAD_REQUEST'],
  [
    'raw bytes in the URL',
    Buffer.concat([Buffer.from('GET /v2/a\x01b'), Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n')]),
    400,
    'BAD_REQUEST',
  ],
];

describe('requests the HTTP parser rejects', () => {
  it.each(CASES)(
    'GIVEN %s WHEN sent THEN the answer is the OCI error JSON with the right status, and the connection closes',
    async (_name, request, status, code) => {
      const { status: got, headers, body } = parse(await raw(request));

      expect(got).toBe(status);
      expect(headers).toContain('content-type: application/json');
      expect(headers).toContain('connection: close');
      expect(body).toMatchObject({ errors: [{ code }] });
    },
  );

  it('GIVEN the rejected requests above WHEN metrics are read THEN each is counted by its status and parser reason', async () => {
    const { body } = await srv.services.metrics!.exposition();
    const counted = [
      ...body.matchAll(
        /^registry_http_requests_total\{[^}]*handler="protocol_error"[^}]*\} (\d+)/gm,
      ),
    ]
      .map((m) => Number(m[1]))
      .reduce((a, b) => a + b, 0);
    expect(counted).toBeGreaterThanOrEqual(CASES.length);
    expect(body).toMatch(
      /^berth_http_protocol_errors_total\{reason="HPE_HEADER_OVERFLOW"\} [1-9]/m,
    );
  });
});
