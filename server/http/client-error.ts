import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { Errors, errorBody, type RegistryError } from '../errors.js';
import type { Logger } from '../util/log.js';

const API_VERSION = 'registry/2.0';

/** ProtocolObserver hears each request the parser rejected (metrics). */
export type ProtocolObserver = (reason: string, status: number | undefined) => void;

/** ParserError is what node:http hands a 'clientError' listener. */
type ParserError = Error & { code?: string };

/**
 * protocolError maps a node:http parser error to the error table; undefined when no answer
 * can or should be sent (the client is gone).
 */
export function protocolError(err: ParserError): RegistryError | undefined {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
    case 'HPE_INVALID_EOF_STATE':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return Errors.headersTooLarge({ reason: err.code });
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return Errors.sizeInvalid({ reason: err.code }, undefined, 'invalid Content-Length');
    case 'HPE_INVALID_METHOD':
      return Errors.methodUnsupported({ reason: err.code });
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return Errors.requestTimeout({ reason: err.code });
    default:
      return Errors.badRequest({ reason: (err.code ?? 'unknown').slice(0, 64) });
  }
}

/**
 * onClientError is node:http's 'clientError' listener: a request the parser rejected
 * before routing (oversized headers, a bad or duplicate Content-Length, Content-Length with
 * Transfer-Encoding, chunked garbage, a bad method or version, raw bytes in the URL) gets
 * the OCI error JSON and `Connection: close` instead of Node's bodiless answer, when the
 * socket still allows an answer, and is counted. Logged at info: it is the client's fault.
 */
export function onClientError(log: Logger, observe?: ProtocolObserver) {
  return (err: ParserError, socket: Duplex): void => {
    const reason = (err.code ?? 'unknown').slice(0, 64);
    const e = protocolError(err);
    // A response already under way on this connection cannot be followed by another one.
    const busy = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
      ?.headersSent;
    if (!e || !socket.writable || busy === true) {
      observe?.(reason, undefined);
      socket.destroy();
      return;
    }
    observe?.(reason, e.status);
    log.info({ reason, status: e.status }, 'malformed request rejected');
    const body = JSON.stringify(errorBody(e));
    socket.end(
      `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? 'Error'}\r\n` +
        'Content-Type: application/json\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `Docker-Distribution-API-Version: ${API_VERSION}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  };
}
